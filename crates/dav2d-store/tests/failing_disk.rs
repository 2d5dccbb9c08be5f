//! A disk that refuses writes: persistence degrades (reported, with the OS
//! error) while the engine keeps running in memory, retries, and recovers by
//! itself once writes succeed again, with nothing lost, duplicated or half
//! written. The failing writes are real: a child process lowers its own
//! file-size limit (`RLIMIT_FSIZE`), so the kernel refuses to let the log,
//! the checkpoint or a Parquet file grow (EFBIG), exactly where a full disk
//! would refuse (ENOSPC); then it raises the limit again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use dav2d_core::{Builtin, Clock, Graph, GraphOptions, Keys, ManualClock, NodeSpec, SharedGraph};
use dav2d_store::history::{self, Query};
use dav2d_store::persist::Schedule;
use dav2d_store::{PersistStats, Persister, Store, StoreOptions};

const SECOND: i64 = 1_000_000_000;
const START: i64 = 40_000 * 86_400 * SECOND;

fn graph(clock: &ManualClock) -> SharedGraph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 3 },
        ))
        .unwrap();
    SharedGraph::new(graph)
}

fn push(graph: &SharedGraph, clock: &ManualClock, n: usize, pushed: &mut usize) {
    let mut graph = graph.lock();
    for _ in 0..n {
        let ts = clock.now_ns();
        let key = ["a", "b"][*pushed % 2];
        graph.push_numbers("temp", Keys::Many(&[key]), &[*pushed as f64], Some(&[ts]));
        graph.run_wave();
        clock.advance(SECOND / 100);
        *pushed += 1;
    }
}

fn set_file_size_limit(bytes: Option<u64>) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a valid, exclusively borrowed struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.map_or(limit.rlim_max, |b| b as libc::rlim_t);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn log_size(dir: &std::path::Path) -> u64 {
    dav2d_store::wal::segments(dir)
        .unwrap()
        .iter()
        .map(|&n| {
            std::fs::metadata(dav2d_store::wal::segment_file(dir, n))
                .unwrap()
                .len()
        })
        .sum()
}

/// Runs in the child: persist, fail, keep running, recover. Prints what
/// the parent checks.
#[test]
fn failing_disk_child() {
    let Ok(dir) = std::env::var("DAV2D_FAILING_DISK_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    // Past the limit the kernel sends SIGXFSZ, which kills by default: the
    // process must see EFBIG from write instead.
    // SAFETY: setting a signal to be ignored.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let clock = ManualClock::new(START);
    let shared = graph(&clock);
    let stats = Arc::new(PersistStats::default());
    let schedule = Schedule {
        flush_interval_ns: SECOND,
        checkpoint_interval_ns: 10 * SECOND,
        segment_bytes: 64 << 20,
    };
    let (mut persister, _) = Persister::open(
        &dir,
        StoreOptions::default(),
        schedule,
        &["temp".to_string()],
        &shared,
        Arc::clone(&stats),
    )
    .unwrap();
    let mut pushed = 0;

    // Healthy: a flush and a checkpoint.
    push(&shared, &clock, 200, &mut pushed);
    clock.advance(10 * SECOND);
    persister.step(&shared, false);
    assert!(stats.problem().is_none(), "{:?}", stats.problem());
    let checkpoints = stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(checkpoints, 1);

    // The disk fills: no file may grow more than 100 bytes past the log.
    let good = log_size(&dir);
    set_file_size_limit(Some(good + 100));
    for _ in 0..3 {
        push(&shared, &clock, 100, &mut pushed);
        clock.advance(10 * SECOND);
        persister.step(&shared, false);
        let problem = stats.problem().expect("persistence reports the failure");
        assert!(
            problem.contains("File too large"),
            "the OS error: {problem}"
        );
        assert_eq!(
            log_size(&dir),
            good,
            "a failed write leaves no half record behind"
        );
    }
    // The engine kept running in memory.
    let latest = shared
        .lock()
        .latest("avg", "b")
        .unwrap()
        .unwrap()
        .sample
        .unwrap();
    assert_eq!(
        latest.ts_ns,
        clock.now_ns() - 10 * SECOND - SECOND / 100,
        "the newest update"
    );

    // The disk has room again: the next round writes everything held.
    set_file_size_limit(None);
    clock.advance(10 * SECOND);
    persister.step(&shared, false);
    assert!(
        stats.problem().is_none(),
        "recovered: {:?}",
        stats.problem()
    );
    persister.step(&shared, true);
    assert!(stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed) > checkpoints);
    println!("pushed {pushed} latest {} {}", latest.ts_ns, latest.value);
}

#[test]
fn a_disk_that_refuses_writes_degrades_persistence_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("dav2d-failing-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "failing_disk_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("DAV2D_FAILING_DISK_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("pushed ").map(|(_, rest)| rest))
        .expect("the child reports");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let pushed: usize = fields[0].parse().unwrap();
    let (latest_ts, latest_value): (i64, &str) = (fields[2].parse().unwrap(), fields[3]);

    // A fresh process sees every update: no gap, no duplicate, no damage.
    let clock = ManualClock::new(START + 3_600 * SECOND);
    let reopened = graph(&clock);
    let (_store, restored) = Store::open(
        &dir,
        StoreOptions::default(),
        Arc::new(clock.clone()),
        &mut reopened.lock(),
    )
    .unwrap();
    assert!(restored.damage.is_empty(), "{:?}", restored.damage);
    let latest = reopened
        .lock()
        .latest("avg", "b")
        .unwrap()
        .unwrap()
        .sample
        .unwrap();
    assert_eq!(
        (latest.ts_ns, latest.value.to_string()),
        (latest_ts, latest_value.to_string())
    );
    let mut temps = Vec::new();
    history::scan(
        &dir,
        &Query {
            name: Some("temp".into()),
            ..Query::default()
        },
        |_| {},
        |rows| {
            temps.extend(rows.value.iter().map(|v| v.unwrap() as usize));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        temps,
        (0..pushed).collect::<Vec<_>>(),
        "every input once, in order"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
