//! The distribution layer's figures: samples POSTed to one instance until
//! every key is applied by its owner, with 1, 2 and 3 clustered instances
//! beside one instance without clustering; failover (an instance stopped
//! until the survivors answer for all its keys) and the replay speed of the
//! new owners; and one instance with and without clustering fed by 4
//! producers at once (so batches' acknowledgements overlap). Needs
//! `nats-server` (Debian's package); prints JSON.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dav2d_core::{Graph, GraphOptions, SharedGraph, SystemClock};
use dav2d_runtime::{Config, Overrides, Plan, Runtime};

const KEYS: usize = 1_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn nats_server() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/local/sbin/nats-server",
        "/usr/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn yaml(nats: Option<u16>, instance: usize, http: Option<u16>) -> String {
    let http = match http {
        Some(p) => format!("http:\n  bind: 127.0.0.1:{p}\n"),
        None => "http:\n  enabled: false\n".to_string(),
    };
    let cluster = match nats {
        Some(port) => format!(
            "cluster:\n  url: nats://127.0.0.1:{port}\n  partitions: 12\n  instance: b{instance}\n  lease_ttl: 1s\n"
        ),
        None => String::new(),
    };
    format!(
        "streams:\n  - name: temperature\nnodes:\n  - name: avg\n    kind: moving_average\n    n: 3\n    input: temperature\n{cluster}{http}tcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    )
}

fn start(yaml: &str) -> Result<(Runtime, SharedGraph), String> {
    let config = Config::parse(yaml, Path::new("bench.yaml")).map_err(|e| e.to_string())?;
    let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
    let plan = Plan::new(config, Overrides::default()).map_err(|e| e.to_string())?;
    let runtime = Runtime::start(plan, graph.clone()).map_err(|e| e.to_string())?;
    Ok((runtime, graph))
}

fn body(from: usize, to: usize) -> String {
    body_of("", KEYS, from, to)
}

/// [`body`] for one of several producers: its own `keys` keys, named after
/// `prefix`, so that no key gets samples from two producers out of order.
fn body_of(prefix: &str, keys: usize, from: usize, to: usize) -> String {
    let records: Vec<String> = (from..to)
        .map(|i| {
            format!(
                "{{\"key\":\"{prefix}k{}\",\"value\":{},\"ts\":{}}}",
                i % keys,
                (i % 97) as f64,
                1_700_000_000_000_000_000i64 + i as i64
            )
        })
        .collect();
    format!("[{}]", records.join(","))
}

fn post(address: SocketAddr, body: &str) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST /ingest/temperature HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(answer.lines().next().unwrap_or("").to_string())
    }
}

/// Samples applied across `graphs` (their engines' accepted counts).
fn applied(graphs: &[&SharedGraph]) -> u64 {
    graphs.iter().map(|g| g.lock().stats().accepted).sum()
}

/// Waits until `graphs` applied `total` samples; the seconds it took from `since`.
fn until_applied(graphs: &[&SharedGraph], total: u64, since: Instant) -> Option<f64> {
    while since.elapsed() < Duration::from_secs(300) {
        if applied(graphs) >= total {
            return Some(since.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// One throughput run: `instances` (0: no clustering), `samples` POSTed in
/// batches of 1,000 to the first; samples/s until every owner applied them.
/// CPU seconds process `pid` (`self` for this one) has run, summed over
/// its threads from `/proc/PID/task/*/schedstat` (ns of time on a CPU).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = (tasks.flatten())
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// A throughput run: samples/s, and CPU microseconds per sample of this
/// process (the instances and the posting client) and of nats-server.
struct Run {
    rate: f64,
    dav2d_us: f64,
    nats_us: f64,
}

fn throughput(
    nats: u16,
    nats_pid: Option<u32>,
    instances: usize,
    samples: usize,
    producers: usize,
) -> Result<Run, String> {
    let producers = producers.max(1);
    let http = free_port();
    let mut running = Vec::new();
    for i in 0..instances.max(1) {
        let cluster = (instances > 0).then_some(nats);
        running.push(start(&yaml(cluster, i, (i == 0).then_some(http)))?);
    }
    let address = running[0].0.address("http").ok_or("no HTTP address")?;
    if instances > 0 {
        // Let the leases settle (claimed after one TTL), then clear the stream's history.
        let warm = Instant::now();
        post(address, &body(0, KEYS))?;
        let graphs: Vec<&SharedGraph> = running.iter().map(|(_, g)| g).collect();
        until_applied(&graphs, KEYS as u64, warm).ok_or("the warm-up never applied")?;
    }
    let graphs: Vec<&SharedGraph> = running.iter().map(|(_, g)| g).collect();
    let before = applied(&graphs);
    // Each producer POSTs its share of the bodies, one after the other.
    let bodies: Vec<Vec<String>> = (0..producers)
        .map(|p| {
            let prefix = if producers == 1 {
                String::new()
            } else {
                format!("p{p}-")
            };
            let share = samples / producers;
            (0..share)
                .step_by(1000)
                .map(|from| body_of(&prefix, KEYS / producers, from, (from + 1000).min(share)))
                .collect()
        })
        .collect();
    let samples = (samples / producers) * producers;
    let nats_cpu = || nats_pid.map_or(0.0, |pid| cpu_seconds(&pid.to_string()));
    let (own_before, nats_before) = (cpu_seconds("self"), nats_cpu());
    let started = Instant::now();
    std::thread::scope(|scope| {
        let posting: Vec<_> = bodies
            .iter()
            .map(|share| scope.spawn(move || share.iter().try_for_each(|b| post(address, b))))
            .collect();
        posting.into_iter().try_for_each(|p| {
            p.join()
                .unwrap_or_else(|_| Err("a producer panicked".into()))
        })
    })?;
    let seconds = until_applied(&graphs, before + samples as u64, started)
        .ok_or("the samples were never all applied")?;
    let per_sample = |cpu: f64| cpu * 1e6 / samples as f64;
    let run = Run {
        rate: samples as f64 / seconds,
        dav2d_us: per_sample(cpu_seconds("self") - own_before),
        nats_us: per_sample(nats_cpu() - nats_before),
    };
    for (runtime, _) in running {
        runtime.stop();
    }
    Ok(run)
}

/// Push -> output latency: `count` single-sample POSTs to one instance
/// (clustered on `nats`, or not), each timed from the start of its POST to
/// the node's update for it on the owner's graph (a subscription); p50 and
/// p99 in microseconds.
fn push_to_output(nats: Option<u16>, count: usize) -> Result<(f64, f64), String> {
    let http = free_port();
    let (runtime, graph) = start(&yaml(nats, 0, Some(http)))?;
    let address = runtime.address("http").ok_or("no HTTP address")?;
    let subscription = graph
        .lock()
        .subscribe("avg", dav2d_core::SubscriptionMode::EveryChange, 1 << 16)
        .map_err(|e| e.to_string())?;
    let one = |i: usize| format!("[{{\"key\":\"k{}\",\"value\":{}}}]", i % KEYS, i);
    if nats.is_some() {
        // The first sample waits for the leases to settle.
        post(address, &one(0))?;
        subscription
            .next_timeout(Duration::from_secs(30))
            .ok_or("the warm-up never arrived")?;
    }
    let mut latencies = crate::histogram();
    for i in 1..=count {
        let started = Instant::now();
        post(address, &one(i))?;
        subscription
            .next_timeout(Duration::from_secs(10))
            .ok_or("an update never arrived")?;
        latencies.saturating_record(started.elapsed().as_nanos() as u64);
    }
    runtime.stop();
    let us = |q: f64| latencies.value_at_quantile(q) as f64 / 1e3;
    Ok((us(0.5), us(0.99)))
}

/// Failover: three instances, `samples` applied, one stopped; the seconds
/// from the stop to the first answer for a moved key, and the samples per
/// second the new owners replayed.
fn failover(nats: u16, samples: usize) -> Result<(f64, f64), String> {
    let http = free_port();
    let mut running = Vec::new();
    for i in 0..3 {
        running.push(start(&yaml(Some(nats), i, (i == 0).then_some(http)))?);
    }
    let address = running[0].0.address("http").ok_or("no HTTP address")?;
    let bodies: Vec<String> = (0..samples)
        .step_by(1000)
        .map(|from| body(from, (from + 1000).min(samples)))
        .collect();
    for b in &bodies {
        post(address, b)?;
    }
    let graphs: Vec<&SharedGraph> = running.iter().map(|(_, g)| g).collect();
    let before = applied(&graphs);
    until_applied(&graphs, before.max(samples as u64), Instant::now()).ok_or("not applied")?;
    let third = running.pop().ok_or("no third instance")?;
    // The keys the third applies, and what it holds for them.
    let held: Vec<(String, Option<dav2d_core::Value>)> = {
        let graph = third.1.lock();
        (0..KEYS)
            .map(|k| format!("k{k}"))
            .filter_map(|key| {
                let value = graph.latest("avg", &key).ok()??.sample?.value;
                Some((key, Some(value)))
            })
            .collect()
    };
    if held.is_empty() {
        return Err("the third instance owned no partition".to_string());
    }
    let moved = held.len() as f64 / KEYS as f64 * samples as f64;
    let stopped = Instant::now();
    third.0.stop();
    let survivors: Vec<&SharedGraph> = running.iter().map(|(_, g)| g).collect();
    let answered = |key: &str, want: &Option<dav2d_core::Value>| {
        survivors.iter().any(|g| {
            g.lock()
                .latest("avg", key)
                .ok()
                .flatten()
                .and_then(|r| r.sample)
                .map(|s| s.value)
                == *want
        })
    };
    // First answer for a moved key (the leases expired and replay began),
    // then every moved key answered as the third held it (replay done).
    let (mut first, mut last) = (None, None);
    while stopped.elapsed() < Duration::from_secs(120) {
        let done = held.iter().filter(|(k, v)| answered(k, v)).count();
        if done > 0 && first.is_none() {
            first = Some(stopped.elapsed().as_secs_f64());
        }
        if done == held.len() {
            last = Some(stopped.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (first, seconds) = match (first, last) {
        (Some(first), Some(last)) => (first, last),
        _ => {
            let done = held.iter().filter(|(k, v)| answered(k, v)).count();
            let holding: Vec<usize> = survivors
                .iter()
                .map(|g| {
                    (0..KEYS)
                        .filter(|k| {
                            g.lock()
                                .latest("avg", &format!("k{k}"))
                                .ok()
                                .flatten()
                                .is_some()
                        })
                        .count()
                })
                .collect();
            return Err(format!(
                "the survivors never took the partitions over: {done} of {} moved keys answered; survivors hold {holding:?} keys",
                held.len()
            ));
        }
    };
    for (runtime, _) in running {
        runtime.stop();
    }
    let replay = moved / (seconds - first).max(1e-3);
    Ok((first, replay))
}

/// A nats-server with JetStream in a directory of its own.
struct Server {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(binary: &Path) -> Result<Server, String> {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("dav2d-bench-nats-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = std::process::Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("nats-server did not start: {e}"))?;
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Server { child, dir, port })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the figures, each on a fresh server, and prints them as JSON.
/// One clustered instance only (for a profiler): its figures as JSON.
pub fn one(samples: usize, producers: usize) {
    let Some(binary) = nats_server() else {
        println!("{{\"error\": \"nats-server is not installed\"}}");
        return;
    };
    let result = Server::start(&binary)
        .and_then(|server| throughput(server.port, Some(server.child.id()), 1, samples, producers));
    match result {
        Ok(run) => println!(
            "{{\"one\": {}, \"one_cpu_us\": {}, \"one_nats_cpu_us\": {}}}",
            run.rate, run.dav2d_us, run.nats_us
        ),
        Err(error) => println!("{{\"error\": {error:?}}}"),
    }
}

pub fn run(samples: usize) {
    let Some(binary) = nats_server() else {
        println!("{{\"error\": \"nats-server is not installed\"}}");
        return;
    };
    let result = (|| -> Result<String, String> {
        let local = throughput(0, None, 0, samples, 1)?;
        let local_four = throughput(0, None, 0, samples, 4)?;
        let one_four = {
            let server = Server::start(&binary)?;
            throughput(server.port, Some(server.child.id()), 1, samples, 4)?
        };
        let local_latency = push_to_output(None, 2_000)?;
        let one_latency = {
            let server = Server::start(&binary)?;
            push_to_output(Some(server.port), 2_000)?
        };
        let mut clustered = Vec::new();
        for n in 1..=3 {
            let server = Server::start(&binary)?;
            clustered.push(throughput(
                server.port,
                Some(server.child.id()),
                n,
                samples,
                1,
            )?);
        }
        let server = Server::start(&binary)?;
        let (failover, replay) = failover(server.port, samples)?;
        Ok(format!(
            "{{\"samples\": {samples}, \"local\": {}, \"one\": {}, \"two\": {}, \"three\": {}, \"failover_s\": {failover}, \"replay_per_s\": {replay}, \"local_cpu_us\": {}, \"one_cpu_us\": {}, \"one_nats_cpu_us\": {}, \"local_p50_us\": {}, \"local_p99_us\": {}, \"one_p50_us\": {}, \"one_p99_us\": {}, \"local_four\": {}, \"one_four\": {}, \"one_four_cpu_us\": {}, \"one_four_nats_cpu_us\": {}}}",
            local.rate,
            clustered[0].rate,
            clustered[1].rate,
            clustered[2].rate,
            local.dav2d_us,
            clustered[0].dav2d_us,
            clustered[0].nats_us,
            local_latency.0,
            local_latency.1,
            one_latency.0,
            one_latency.1,
            local_four.rate,
            one_four.rate,
            one_four.dav2d_us,
            one_four.nats_us,
        ))
    })();
    match result {
        Ok(json) => println!("{json}"),
        Err(error) => println!("{{\"error\": {error:?}}}"),
    }
}
