//! Engine-level benchmarks, driven by `bench/run.py` (which prints them beside
//! their bars and peers). Each subcommand prints one JSON object.
//!
//! - `chain N`: stream → moving_average(5) → constraint over N samples of one
//!   key, `all` edges so every sample is evaluated, pushed as one batch.
//! - `latency RATE SECONDS`: a producer thread pushes one sample at a time at
//!   RATE samples/s; a subscriber thread waits on the node's output. Reports
//!   push→seen latency percentiles (HDR), beside the oversleep of a thread
//!   that only sleeps 50 us, measured in the same run.
//! - `ingest-body FILE WORKERS REPEATS`: POSTs a JSON body over loopback
//!   until its samples are applied (best of REPEATS), with WORKERS parser
//!   workers (0 = one per core).
//! - `apply-body FILE REPEATS`: the body parsed once, then applied to a
//!   fresh graph on one thread (best of REPEATS): the serial apply alone.
//! - `parsers FILE REPEATS`: the same bytes parsed single-threaded into
//!   typed samples by serde_json, sonic-rs and simd-json.
//! - `events-latency RATE SECONDS`: HTTP POST → `/events` delivery latency.
//! - `persist N KEYS`: N samples through a graph made durable by the persister (fsync
//!   batch) beside one JSON line per sample with a flush.
//! - `restart KEYS`: restoring a checkpoint of KEYS keys into a fresh graph.

mod cluster;
mod ingest;
mod persist;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dav2d_core::{
    Builtin, ConstraintSpec, EdgePolicy, Graph, GraphOptions, Keys, NodeSpec, SharedGraph,
    SubscriptionMode, SystemClock, Value,
};

fn chain_graph() -> Graph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(SystemClock));
    let spec = ConstraintSpec {
        reset: Some(0.4),
        ..ConstraintSpec::above(0.6)
    };
    graph
        .register_all(vec![
            NodeSpec::builtin("avg", "s", Builtin::MovingAverage { n: 5 })
                .with_policy(EdgePolicy::All),
            NodeSpec::constraint("alert", "avg", spec).with_policy(EdgePolicy::All),
        ])
        .unwrap_or_else(|error| panic!("the bench graph is valid: {error}"));
    graph
}

fn chain(n: usize) {
    let mut rng = fastrand::Rng::with_seed(1);
    let values: Vec<f64> = (0..n).map(|_| rng.f64()).collect();
    let mut graph = chain_graph();
    let start = Instant::now();
    let report = graph.push_numbers("s", Keys::One("k"), &values, None);
    graph.run_wave();
    let seconds = start.elapsed().as_secs_f64();
    let stats = graph.stats();
    println!(
        "{{\"samples\": {}, \"seconds\": {seconds}, \"evaluations\": {}, \"transitions\": {}}}",
        report.accepted, stats.evaluations, stats.transitions
    );
}

fn latency(rate: f64, seconds: f64) {
    let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
    graph
        .lock()
        .register(NodeSpec::builtin(
            "avg",
            "s",
            Builtin::MovingAverage { n: 5 },
        ))
        .unwrap_or_else(|error| panic!("the bench graph is valid: {error}"));
    let subscription = graph
        .lock()
        .subscribe("avg", SubscriptionMode::EveryChange, 1 << 16)
        .unwrap_or_else(|error| panic!("subscribing works: {error}"));
    let base = Instant::now();
    let total = (rate * seconds) as usize;
    let producer_graph = graph.clone();
    let producer = std::thread::spawn(move || {
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut next = Instant::now();
        for i in 0..total {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            next += period;
            let ts = base.elapsed().as_nanos() as i64;
            let mut graph = producer_graph.lock();
            // A new value each time so the output always changes.
            let _ = graph.push("s", "k", Value::Float(i as f64), Some(ts));
            graph.run_wave();
        }
    });
    // The machine's own scheduling noise, in the same run: a thread that
    // only sleeps 50 us and records how much longer it slept.
    let noise_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let stop = Arc::clone(&noise_stop);
        std::thread::spawn(move || {
            let mut oversleep = histogram();
            let asked = Duration::from_micros(50);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                std::thread::sleep(asked);
                let late = started.elapsed().saturating_sub(asked).as_nanos() as u64;
                oversleep.saturating_record(late.max(1));
            }
            oversleep
        })
    };
    let mut latencies = histogram();
    let mut seen = 0;
    while seen < total {
        match subscription.next_timeout(Duration::from_secs(5)) {
            Some(update) => {
                let late = (base.elapsed().as_nanos() as i64 - update.ts_ns).max(1);
                latencies.saturating_record(late as u64);
                seen += 1;
            }
            None => break,
        }
    }
    let _ = producer.join();
    noise_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let noise = noise.join().unwrap_or_else(|_| histogram());
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    println!(
        "{{\"samples\": {}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}, \"conflated\": {}, \"noise_samples\": {}, \"noise_p50_us\": {}, \"noise_p99_us\": {}, \"noise_p999_us\": {}, \"noise_max_us\": {}}}",
        latencies.len(),
        us(&latencies, 0.5),
        us(&latencies, 0.99),
        us(&latencies, 0.999),
        latencies.max() as f64 / 1e3,
        subscription.conflated(),
        noise.len(),
        us(&noise, 0.5),
        us(&noise, 0.99),
        us(&noise, 0.999),
        noise.max() as f64 / 1e3,
    );
}

/// A histogram of ns from 1 ns to 100 s at 3 significant digits.
pub(crate) fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .unwrap_or_else(|error| panic!("the histogram's bounds are valid: {error}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: f64| {
        args.get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(default)
    };
    match args.get(1).map(String::as_str) {
        Some("chain") => chain(number(2, 1e6) as usize),
        Some("latency") => latency(number(2, 10_000.0), number(3, 3.0)),
        Some("ingest-body") => ingest::body(
            args.get(2).map_or("body.json", String::as_str),
            number(3, 0.0) as usize,
            number(4, 5.0) as usize,
        ),
        Some("ingest-paced") => ingest::paced(
            args.get(2).map_or("body.json", String::as_str),
            number(3, 0.0) as usize,
            number(4, 5.0) as usize,
        ),
        Some("apply-body") => ingest::apply(
            args.get(2).map_or("body.json", String::as_str),
            number(3, 5.0) as usize,
        ),
        Some("parsers") => ingest::parsers(
            args.get(2).map_or("body.json", String::as_str),
            number(3, 5.0) as usize,
        ),
        Some("events-latency") => ingest::events(number(2, 1000.0), number(3, 3.0)),
        Some("persist") => persist::persist(
            number(2, 5e6) as usize,
            number(3, 10_000.0) as usize,
            &std::env::temp_dir(),
        ),
        Some("restart") => persist::restart(number(2, 1e6) as usize, &std::env::temp_dir()),
        Some("cluster") => cluster::run(number(2, 100_000.0) as usize),
        Some("cluster-one") => cluster::one(number(2, 100_000.0) as usize, number(3, 1.0) as usize),
        _ => {
            eprintln!(
                "usage: dav2d-bench chain N | latency RATE SECONDS | ingest-body FILE WORKERS REPEATS | ingest-paced FILE WORKERS REPEATS | apply-body FILE REPEATS | parsers FILE REPEATS | events-latency RATE SECONDS | persist N KEYS | restart KEYS | cluster SAMPLES | cluster-one SAMPLES [PRODUCERS]"
            );
            std::process::exit(2);
        }
    }
}
