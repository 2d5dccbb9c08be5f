//! Persistence benchmarks: samples/s made durable with `fsync: batch`
//! beside a naive baseline (one JSON line per sample, flushed), bytes per
//! sample, file actions per day at that rate, and restart time for 1M keys.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use dav2d_core::{Builtin, Graph, GraphOptions, Keys, NodeSpec, SystemClock, Update, Value};
use dav2d_store::{Fsync, Store, StoreOptions};

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Logs `n` updates over `keys` keys, flushing every `per_flush` (one
/// durable group), and measures the rate; then the naive baseline.
pub fn persist(n: usize, keys: usize, per_flush: usize, scratch: &Path) {
    let dir = scratch.join("store");
    let _ = std::fs::remove_dir_all(&dir);
    let options = StoreOptions::default();
    let segment_bytes = options.wal.segment_bytes;
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(SystemClock));
    let (mut store, _) = Store::open(
        &dir,
        StoreOptions {
            wal: dav2d_store::WalOptions {
                fsync: Fsync::Batch,
                ..options.wal
            },
            ..options
        },
        Arc::new(SystemClock),
        &mut graph,
    )
    .unwrap_or_else(|e| panic!("opening the store: {e}"));
    let names: Vec<Arc<str>> = (0..keys)
        .map(|k| Arc::from(format!("dev-{k:07}").as_str()))
        .collect();
    let name: Arc<str> = Arc::from("avg");
    let start = Instant::now();
    let mut flushes = 0u64;
    for i in 0..n {
        let update = Update {
            name: Arc::clone(&name),
            key: Arc::clone(&names[i % keys]),
            value: Some(Value::Float(20.0 + (i % 1000) as f64 * 0.01)),
            ts_ns: 1_700_000_000_000_000_000 + i as i64,
            seq: (i / keys) as u64,
            error: None,
            transition: None,
        };
        store
            .log(&update)
            .unwrap_or_else(|e| panic!("logging: {e}"));
        if (i + 1) % per_flush == 0 {
            store.flush().unwrap_or_else(|e| panic!("flushing: {e}"));
            flushes += 1;
        }
    }
    store.flush().unwrap_or_else(|e| panic!("flushing: {e}"));
    flushes += 1;
    let seconds = start.elapsed().as_secs_f64();
    let used = store.ledger().used_today();
    let bytes = dir_bytes(&dir);
    let rate = n as f64 / seconds;
    let bytes_per_sample = bytes as f64 / n as f64;
    // At this rate, flushing once a second: 2 actions per flush, 2 per
    // segment roll (create + directory fsync), 5 per checkpoint a minute.
    let rolls_per_second = rate * bytes_per_sample / segment_bytes as f64;
    let per_day = 86_400.0 * (2.0 + 2.0 * rolls_per_second) + 1_440.0 * 5.0;

    // The naive baseline: one JSON line per sample, flushed each time.
    let naive_path = scratch.join("naive.ndjson");
    let file = std::fs::File::create(&naive_path).unwrap_or_else(|e| panic!("creating: {e}"));
    let mut writer = std::io::BufWriter::new(file);
    let naive_n = n.min(500_000);
    let start = Instant::now();
    for i in 0..naive_n {
        writeln!(
            writer,
            "{{\"stream\":\"avg\",\"key\":\"{}\",\"value\":{},\"ts\":{}}}",
            names[i % keys],
            20.0 + (i % 1000) as f64 * 0.01,
            1_700_000_000_000_000_000i64 + i as i64
        )
        .unwrap_or_else(|e| panic!("writing: {e}"));
        writer.flush().unwrap_or_else(|e| panic!("flushing: {e}"));
    }
    let naive_seconds = start.elapsed().as_secs_f64();
    let naive_bytes = std::fs::metadata(&naive_path).map_or(0, |m| m.len());
    println!(
        "{{\"samples\": {n}, \"rate\": {rate}, \"bytes_per_sample\": {bytes_per_sample}, \"flushes\": {flushes}, \
         \"file_actions\": {used}, \"file_actions_per_day\": {per_day}, \"naive_rate\": {}, \"naive_bytes_per_sample\": {}, \
         \"naive_file_actions_per_day\": {}}}",
        naive_n as f64 / naive_seconds,
        naive_bytes as f64 / naive_n as f64,
        // One write per sample is one file action per sample.
        (naive_n as f64 / naive_seconds) * 86_400.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&naive_path);
}

/// Checkpoints a graph holding `keys` keys (plus a node over them), then
/// times opening the store into a fresh graph.
pub fn restart(keys: usize, scratch: &Path) {
    let dir = scratch.join("restart");
    let _ = std::fs::remove_dir_all(&dir);
    let build = || {
        let mut graph = Graph::new(GraphOptions::default(), Arc::new(SystemClock));
        graph
            .register(NodeSpec::builtin(
                "avg",
                "temp",
                Builtin::MovingAverage { n: 4 },
            ))
            .unwrap_or_else(|e| panic!("registering: {e}"));
        graph
    };
    let mut graph = build();
    let names: Vec<String> = (0..keys).map(|k| format!("dev-{k:07}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let values: Vec<f64> = (0..keys).map(|k| 20.0 + (k % 100) as f64).collect();
    graph.push_numbers("temp", Keys::Many(&refs), &values, None);
    graph.run_wave();
    let (mut store, _) = Store::open(
        &dir,
        StoreOptions::default(),
        Arc::new(SystemClock),
        &mut build(),
    )
    .unwrap_or_else(|e| panic!("opening: {e}"));
    store
        .checkpoint(&graph)
        .unwrap_or_else(|e| panic!("checkpointing: {e}"));
    drop(store);
    let mut fresh = build();
    let start = Instant::now();
    let (_, restored) = Store::open(
        &dir,
        StoreOptions::default(),
        Arc::new(SystemClock),
        &mut fresh,
    )
    .unwrap_or_else(|e| panic!("restoring: {e}"));
    let seconds = start.elapsed().as_secs_f64();
    assert!(restored.checkpoint);
    let probe = &names[keys / 2];
    assert_eq!(
        fresh
            .latest("avg", probe)
            .ok()
            .flatten()
            .and_then(|r| r.sample)
            .map(|s| s.value),
        graph
            .latest("avg", probe)
            .ok()
            .flatten()
            .and_then(|r| r.sample)
            .map(|s| s.value),
        "the restored graph matches"
    );
    println!(
        "{{\"keys\": {keys}, \"seconds\": {seconds}, \"checkpoint_bytes\": {}}}",
        dir_bytes(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
