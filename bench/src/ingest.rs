//! Ingestion benchmarks: a large JSON body over HTTP until applied, the
//! JSON parsers single-threaded on the same bytes, and POST → `/events`.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dav2d_core::{Bounds, Builtin, Graph, GraphOptions, NodeSpec, SharedGraph, SystemClock};
use dav2d_runtime::{HttpConfig, IntakeConfig, Plan, Runtime};
use serde::Deserialize;

fn graph() -> SharedGraph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(SystemClock));
    graph
        .declare_stream("temp", Bounds::default(), None)
        .unwrap_or_else(|e| panic!("declaring the stream: {e}"));
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 5 },
        ))
        .unwrap_or_else(|e| panic!("registering the node: {e}"));
    SharedGraph::new(graph)
}

fn server(graph: SharedGraph, workers: usize) -> Runtime {
    // Room for the 100 MB body of the size series (1, 10 and 100 MB).
    let intake = IntakeConfig {
        workers,
        parse: dav2d_wire::ParseOptions {
            max_body: 256 << 20,
            ..dav2d_wire::ParseOptions::default()
        },
        body_budget: 512 << 20,
        ..IntakeConfig::default()
    };
    let plan = Plan {
        http: Some(HttpConfig {
            listen: dav2d_runtime::ListenConfig::loopback(0),
            max_body: 256 << 20,
            ..HttpConfig::default()
        }),
        intake,
        ..Plan::default()
    };
    Runtime::start(plan, graph).unwrap_or_else(|e| panic!("starting the server: {e}"))
}

/// Writes the head of a JSON POST of `length` bytes.
fn write_head(stream: &mut TcpStream, path: &str, length: usize) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("sending: {e}"));
}

/// Sends one request on a keep-alive connection.
fn send(stream: &mut TcpStream, path: &str, body: &[u8]) {
    write_head(stream, path, body.len());
    stream
        .write_all(body)
        .unwrap_or_else(|e| panic!("sending: {e}"));
}

/// Sends one request on a keep-alive connection and reads the answer.
fn post(stream: &mut TcpStream, path: &str, body: &[u8]) -> (u16, String) {
    send(stream, path, body);
    read_response(stream)
}

fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream
            .read(&mut buffer)
            .unwrap_or_else(|e| panic!("reading: {e}"));
        assert!(n > 0, "the server closed the connection");
        raw.extend_from_slice(&buffer[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (
                    status,
                    String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string(),
                );
            }
        }
    }
}

/// POSTs the body in the file at `path` `repeats` times, each to a fresh
/// server with `workers` parser workers (the body's samples carry their
/// timestamps, so a second POST to the same graph would be refused as late
/// and measure a refusal). `send` writes one request and returns the
/// instant its timing starts. Returns the body's length, the best time from
/// that instant to the answer, and the fewest samples an answer accepted.
fn best_post(
    path: &str,
    workers: usize,
    repeats: usize,
    send: impl Fn(&mut TcpStream, &[u8]) -> Instant,
) -> (usize, f64, u64) {
    let body = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut best = f64::MAX;
    let mut accepted = u64::MAX;
    for _ in 0..repeats {
        let server = server(graph(), workers);
        let address = server
            .address("http")
            .unwrap_or_else(|| panic!("no HTTP address"));
        let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("connecting: {e}"));
        let _ = stream.set_nodelay(true);
        let start = send(&mut stream, &body);
        let (status, answer) = read_response(&mut stream);
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        accepted = accepted.min(answer["accepted"].as_u64().unwrap_or(0));
        best = best.min(seconds);
    }
    (body.len(), best, accepted)
}

/// POSTs the body at `path` `repeats` times with `workers` parser workers
/// (a `.gz` file as a gzip body, its bytes counted as sent).
pub fn body(path: &str, workers: usize, repeats: usize) {
    let gzip = path.ends_with(".gz");
    let (bytes, best, accepted) = best_post(path, workers, repeats, |stream, body| {
        let start = Instant::now();
        if gzip {
            let head = format!(
                "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(body))
                .unwrap_or_else(|e| panic!("sending: {e}"));
        } else {
            send(stream, "/upload", body);
        }
        start
    });
    println!(
        "{{\"bytes\": {bytes}, \"samples\": {accepted}, \"seconds\": {best}, \"gbps\": {}}}",
        bytes as f64 / best / 1e9
    );
}

/// POSTs the body as a sender on a ~100 MB/s link would (1 MiB every 10 ms)
/// and measures the time from its last byte to the answer: what is left to
/// parse and apply once the body is in.
pub fn paced(path: &str, workers: usize, repeats: usize) {
    let (bytes, best, accepted) = best_post(path, workers, repeats, |stream, body| {
        let mut start = Instant::now();
        write_head(stream, "/upload", body.len());
        for (i, part) in body.chunks(1 << 20).enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            stream
                .write_all(part)
                .unwrap_or_else(|e| panic!("sending: {e}"));
            start = Instant::now();
        }
        start
    });
    println!(
        "{{\"bytes\": {bytes}, \"samples\": {accepted}, \"after_last_byte_seconds\": {best}}}"
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Sample<'a> {
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    value: f64,
    ts: i64,
}

fn best_of(repeats: usize, mut run: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut count = 0;
    for _ in 0..repeats {
        let start = Instant::now();
        count = run();
        best = best.min(start.elapsed().as_secs_f64());
    }
    (best, count)
}

/// Parses the body into typed samples, single-threaded, with each parser.
pub fn parsers(path: &str, repeats: usize) {
    let body = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let (serde_seconds, n1) = best_of(repeats, || {
        serde_json::from_slice::<Vec<Sample<'_>>>(&body).map_or(0, |v| v.len())
    });
    let (sonic_seconds, n2) = best_of(repeats, || {
        sonic_rs::from_slice::<Vec<Sample<'_>>>(&body).map_or(0, |v| v.len())
    });
    // simd-json parses in place: each run gets a fresh copy, made outside the timing.
    let mut simd_best = f64::MAX;
    let mut n3 = 0;
    for _ in 0..repeats {
        let mut copy = body.clone();
        let start = Instant::now();
        n3 = simd_json::serde::from_slice::<Vec<Sample<'_>>>(&mut copy).map_or(0, |v| v.len());
        simd_best = simd_best.min(start.elapsed().as_secs_f64());
    }
    assert!(
        n1 > 0 && n1 == n2 && n2 == n3,
        "every parser read every sample: {n1} {n2} {n3}"
    );
    // Splitting the array into elements: dav2d's structural scan vs sonic-rs' lazy iterator.
    let (scan_seconds, n4) = best_of(repeats, || {
        dav2d_wire::scan::split_array(&body, 32).map_or(0, |v| v.len())
    });
    let (skip_seconds, n5) = best_of(repeats, || {
        sonic_rs::to_array_iter(&body[..])
            .filter(|v| v.is_ok())
            .count()
    });
    assert_eq!(n4, n5, "both splits find every element");
    // dav2d's own parse of the body on one thread (the flat scanner into
    // interned columns, or the typed path), as an ingest worker runs it.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap_or_else(|e| panic!("a thread pool: {e}"));
    let options = dav2d_wire::ParseOptions {
        max_body: usize::MAX,
        parallel_threshold: usize::MAX,
        ..dav2d_wire::ParseOptions::default()
    };
    let (dav2d_seconds, n6) = best_of(repeats, || {
        dav2d_wire::parse_then(&body, dav2d_wire::Format::Json, None, &options, &one, |p| {
            p.len()
        })
        .unwrap_or(0)
    });
    assert_eq!(n6, n1, "dav2d's parse read every sample");
    let gbps = |s: f64| body.len() as f64 / s / 1e9;
    println!(
        "{{\"samples\": {n1}, \"dav2d_gbps\": {}, \"serde_json_gbps\": {}, \"sonic_rs_gbps\": {}, \"simd_json_gbps\": {}, \"dav2d_scan_gbps\": {}, \"sonic_rs_skip_gbps\": {}}}",
        gbps(dav2d_seconds),
        gbps(serde_seconds),
        gbps(sonic_seconds),
        gbps(simd_best),
        gbps(scan_seconds),
        gbps(skip_seconds)
    );
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// POSTs one sample every `1/rate` s and measures when `/events` delivers
/// the node output, from the sample's timestamp (the send time).
pub fn events(rate: f64, seconds: f64) {
    let server = server(graph(), 0);
    let address = server
        .address("http")
        .unwrap_or_else(|| panic!("no HTTP address"));
    let mut events = TcpStream::connect(address).unwrap_or_else(|e| panic!("connecting: {e}"));
    events
        .write_all(b"GET /events?names=avg HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap_or_else(|e| panic!("subscribing: {e}"));
    let total = (rate * seconds) as usize;
    let reader = std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(total);
        let mut pending = Vec::new();
        let mut buffer = [0u8; 65536];
        let _ = events.set_read_timeout(Some(Duration::from_secs(5)));
        while latencies.len() < total {
            let n = match events.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let received = now_ns();
            pending.extend_from_slice(&buffer[..n]);
            while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: "))
                    && let Ok(json) = serde_json::from_str::<serde_json::Value>(data)
                    && let Some(ts) = json["ts"].as_i64()
                {
                    latencies.push(received - ts);
                }
            }
        }
        latencies
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("connecting: {e}"));
    let _ = stream.set_nodelay(true);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    for i in 0..total {
        while Instant::now() < next {
            std::thread::sleep(Duration::from_micros(50));
        }
        next += period;
        let body = format!("{{\"key\": \"k\", \"value\": {i}, \"ts\": {}}}", now_ns());
        let (status, answer) = post(&mut stream, "/ingest/temp", body.as_bytes());
        assert_eq!(status, 200, "{answer}");
    }
    let mut latencies = reader.join().unwrap_or_default();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e3
    };
    println!(
        "{{\"samples\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
        latencies.len(),
        pick(0.5),
        pick(0.99),
        latencies.last().copied().unwrap_or(0) as f64 / 1e3
    );
}

/// Parses the body once, then applies its samples to a fresh graph
/// `repeats` times on this thread, as the intake's single apply does
/// (chunks in body order, then the wave): the serial part of a body's cost.
pub fn apply(path: &str, repeats: usize) {
    let body = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    // Cut and parsed as the HTTP route does a body that came in at once.
    let mut cutter = dav2d_wire::ArrayCutter::new(body.len() / 8);
    cutter.push(body.into());
    let jobs: Vec<_> = cutter.cut().into_iter().chain(cutter.finish()).collect();
    let pieces: Vec<_> = jobs.into_iter().map(|job| job.parse(None)).collect();
    let parsed = dav2d_wire::assemble(&pieces).unwrap_or_else(|| panic!("{path} parsed"));
    let mut best = f64::MAX;
    let mut accepted = 0;
    for _ in 0..repeats {
        let shared = graph();
        let mut graph = shared.lock();
        let mut report = dav2d_core::BatchReport::default();
        let start = Instant::now();
        for chunk in parsed.chunks(16_384) {
            chunk.push_into(&mut graph, &mut report);
        }
        graph.run_wave();
        best = best.min(start.elapsed().as_secs_f64());
        accepted = report.accepted;
    }
    println!(
        "{{\"samples\": {accepted}, \"seconds\": {best}, \"ns_per_sample\": {}}}",
        best * 1e9 / accepted.max(1) as f64
    );
}
