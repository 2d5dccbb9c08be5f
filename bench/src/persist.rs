//! Persistence benchmarks: samples/s made durable by the real persister
//! (a producer thread feeding a graph, the persistence thread draining node
//! outputs into the log with `fsync: batch` on the budgeted schedule) beside
//! a naive baseline (one JSON line per sample, flushed); bytes per sample,
//! file actions used and per day, the Parquet roll rate, and restart time
//! for 1M keys.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dav2d_core::{Builtin, Clock, Graph, GraphOptions, Keys, NodeSpec, SharedGraph, SystemClock};
use dav2d_store::persist::Schedule;
use dav2d_store::{PersistStats, Persister, Store, StoreOptions};

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            match entry.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The system clock moved to just after the next midnight UTC: the file-action
/// budget is a UTC day's, so on the real clock the persister plans for the
/// hours left of today (fewer actions a second late in the evening than
/// just after midnight) and the figures would depend on when `make bench`
/// ran. On this clock it plans for a whole day, and the actions measured
/// extrapolate to one.
struct DayStartClock {
    offset_ns: i64,
}

impl DayStartClock {
    fn new() -> DayStartClock {
        const DAY_NS: i64 = 86_400 * 1_000_000_000;
        let now = SystemClock.now_ns();
        DayStartClock {
            offset_ns: DAY_NS - now.rem_euclid(DAY_NS) + 1_000_000,
        }
    }
}

impl Clock for DayStartClock {
    fn now_ns(&self) -> i64 {
        SystemClock.now_ns().saturating_add(self.offset_ns)
    }
}

/// A graph with one native node, `avg` = moving_average(4) of `temp`,
/// without key limits (the restart benchmark holds a million keys).
fn graph_with_avg(clock: Arc<dyn Clock>) -> Graph {
    let options = GraphOptions {
        limits: dav2d_core::Limits::unbounded(),
        ..GraphOptions::default()
    };
    let mut graph = Graph::new(options, clock);
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 4 },
        ))
        .unwrap_or_else(|e| panic!("registering: {e}"));
    graph
}

/// Pushes `n` samples over `keys` keys into a graph with one native node as
/// fast as one producer thread can, while the persister (default schedule:
/// flush every 1 s, checkpoint every minute, 64 MiB segments, 160,000
/// actions a day) makes every node output durable; then the naive baseline.
pub fn persist(n: usize, keys: usize, scratch: &Path) {
    let dir = scratch.join("store");
    let _ = std::fs::remove_dir_all(&dir);
    let shared = SharedGraph::new(graph_with_avg(Arc::new(DayStartClock::new())));
    let options = StoreOptions::default();
    let schedule = Schedule {
        flush_interval_ns: 1_000_000_000,
        checkpoint_interval_ns: 60_000_000_000,
        segment_bytes: options.wal.segment_bytes,
    };
    let stats = Arc::new(PersistStats::default());
    let (mut persister, _) =
        Persister::open(&dir, options, schedule, &[], &shared, Arc::clone(&stats))
            .unwrap_or_else(|e| panic!("opening the store: {e}"));
    let used_at_open = persister.store().ledger().used_today();
    let done = Arc::new(AtomicBool::new(false));
    let names: Vec<String> = (0..keys).map(|k| format!("dev-{k:07}")).collect();
    let start = Instant::now();
    let producer = {
        let (shared, done) = (shared.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut values = vec![0.0; keys];
            let mut pushed = 0;
            while pushed < n {
                let round = pushed / keys;
                for (k, v) in values.iter_mut().enumerate() {
                    *v = 20.0 + ((round * 7 + k) % 1000) as f64 * 0.01;
                }
                let mut graph = shared.lock();
                graph.push_numbers("temp", Keys::Many(&refs), &values, None);
                graph.run_wave();
                drop(graph);
                pushed += keys;
            }
            done.store(true, Ordering::Release);
            pushed
        })
    };
    let mut max_undrained = 0;
    while !done.load(Ordering::Acquire) {
        let due = persister.step(&shared, false);
        max_undrained = max_undrained.max(persister.undrained());
        std::thread::sleep(Duration::from_nanos(
            due.clamp(1_000_000, dav2d_store::persist::DRAIN_INTERVAL_NS) as u64,
        ));
    }
    let pushed = producer
        .join()
        .unwrap_or_else(|_| panic!("the producer panicked"));
    // What the producer made since the last flush is made durable now.
    persister
        .flush_now()
        .unwrap_or_else(|e| panic!("flushing: {e}"));
    let seconds = start.elapsed().as_secs_f64();
    let durable = stats.flushed.load(Ordering::Relaxed);
    let used_run = persister.store().ledger().used_today() - used_at_open;
    let in_force = persister.schedule();
    let bytes = dir_bytes(&dir);
    let rate = durable as f64 / seconds;
    let bytes_per_sample = bytes as f64 / durable.max(1) as f64;
    // Today as planned: what is used, plus the schedule in force for the
    // rest of the UTC day at this rate.
    let day_left = persister.store().ledger().day_left_ns();
    let used_today = persister.store().ledger().used_today();
    let planned_today =
        used_today as f64 + in_force.demand(rate * bytes_per_sample / 1e9, 2.0) * day_left as f64;
    // The stop: one checkpoint, rolling the whole log into Parquet.
    let roll_start = Instant::now();
    persister.step(&shared, true);
    let roll_seconds = roll_start.elapsed().as_secs_f64();
    let problem = stats.problem();

    // The log alone (no graph): updates logged and flushed a group at a
    // time, the same work the naive baseline below does.
    let log_dir = scratch.join("log-only");
    let _ = std::fs::remove_dir_all(&log_dir);
    let (mut log_only, _) = Store::open(
        &log_dir,
        StoreOptions::default(),
        Arc::new(SystemClock),
        &mut Graph::new(GraphOptions::default(), Arc::new(SystemClock)),
    )
    .unwrap_or_else(|e| panic!("opening the store: {e}"));
    let key_names: Vec<Arc<str>> = (0..keys)
        .map(|k| Arc::from(format!("dev-{k:07}").as_str()))
        .collect();
    let avg: Arc<str> = Arc::from("avg");
    let log_start = Instant::now();
    for i in 0..n {
        let update = dav2d_core::Update {
            name: Arc::clone(&avg),
            key: Arc::clone(&key_names[i % keys]),
            value: Some(dav2d_core::Value::Float(20.0 + (i % 1000) as f64 * 0.01)),
            ts_ns: 1_700_000_000_000_000_000 + i as i64,
            seq: (i / keys) as u64,
            error: None,
            transition: None,
        };
        log_only
            .log(&update)
            .unwrap_or_else(|e| panic!("logging: {e}"));
        if (i + 1) % 1_000_000 == 0 {
            log_only.flush().unwrap_or_else(|e| panic!("flushing: {e}"));
        }
    }
    log_only.flush().unwrap_or_else(|e| panic!("flushing: {e}"));
    let log_rate = n as f64 / log_start.elapsed().as_secs_f64();
    drop(log_only);
    let _ = std::fs::remove_dir_all(&log_dir);

    // The naive baseline: one JSON line per sample, flushed each time.
    let naive_path = scratch.join("naive.ndjson");
    let file = std::fs::File::create(&naive_path).unwrap_or_else(|e| panic!("creating: {e}"));
    let mut writer = std::io::BufWriter::new(file);
    let naive_n = n.min(500_000);
    let start = Instant::now();
    for i in 0..naive_n {
        writeln!(
            writer,
            "{{\"stream\":\"avg\",\"key\":\"dev-{:07}\",\"value\":{},\"ts\":{}}}",
            i % keys,
            20.0 + (i % 1000) as f64 * 0.01,
            1_700_000_000_000_000_000i64 + i as i64
        )
        .unwrap_or_else(|e| panic!("writing: {e}"));
        writer.flush().unwrap_or_else(|e| panic!("flushing: {e}"));
    }
    let naive_seconds = start.elapsed().as_secs_f64();
    let naive_bytes = std::fs::metadata(&naive_path).map_or(0, |m| m.len());
    println!(
        "{{\"samples\": {pushed}, \"durable\": {durable}, \"seconds\": {seconds}, \"rate\": {rate}, \
         \"bytes_per_sample\": {bytes_per_sample}, \"file_actions_run\": {used_run}, \
         \"file_actions_per_day_measured\": {}, \"file_actions_today_planned\": {planned_today}, \"day_left_h\": {}, \
         \"flush_interval_s\": {}, \"segment_bytes\": {}, \"max_undrained\": {max_undrained}, \
         \"parquet_rows_per_s\": {}, \"log_only_rate\": {log_rate}, \"problem\": {}, \"naive_rate\": {}, \"naive_bytes_per_sample\": {}, \
         \"naive_file_actions_per_day\": {}}}",
        used_run as f64 / seconds * 86_400.0,
        day_left as f64 / 3.6e12,
        in_force.flush_interval_ns as f64 / 1e9,
        in_force.segment_bytes,
        durable as f64 / roll_seconds,
        problem.map_or("null".to_string(), |p| format!("{p:?}")),
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
    let build = || graph_with_avg(Arc::new(SystemClock));
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
