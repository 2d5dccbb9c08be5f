//! A log replayed at start is checkpointed, so the next start does not
//! replay it again: a crash leaves updates in the log only; the start after
//! it replays them and checkpoints at once, and a start that applies
//! nothing and then stops cleanly leaves a checkpoint covering everything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::PathBuf;
use std::sync::Arc;

use dav2d_core::{Builtin, Graph, GraphOptions, Keys, ManualClock, NodeSpec, SharedGraph};
use dav2d_store::persist::Schedule;
use dav2d_store::{PersistStats, Persister, StoreOptions};

const SECOND: i64 = 1_000_000_000;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn graph(clock: &ManualClock) -> SharedGraph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 4 },
        ))
        .unwrap();
    SharedGraph::new(graph)
}

/// A checkpoint an hour away: only a start that replayed, or a stop, makes one.
fn schedule() -> Schedule {
    Schedule {
        flush_interval_ns: SECOND,
        checkpoint_interval_ns: 3600 * SECOND,
        segment_bytes: 1 << 20,
    }
}

fn open(
    dir: &std::path::Path,
    clock: &ManualClock,
) -> (Persister, dav2d_store::Restored, SharedGraph) {
    let graph = graph(clock);
    let (persister, restored) = Persister::open(
        dir,
        StoreOptions::default(),
        schedule(),
        &[],
        &graph,
        Arc::new(PersistStats::default()),
    )
    .unwrap();
    (persister, restored, graph)
}

#[test]
fn a_replayed_log_is_checkpointed_so_it_is_not_replayed_again() {
    let dir = scratch("log");
    let clock = ManualClock::new(1_700_000_000 * SECOND);
    // A run that logs 500 updates and flushes them, then "crashes": no
    // checkpoint is ever written.
    {
        let (mut persister, restored, graph) = open(&dir, &clock);
        assert!(!restored.checkpoint);
        for i in 0..500 {
            let mut locked = graph.lock();
            locked.push_numbers("temp", Keys::One("k"), &[f64::from(i)], None);
            locked.run_wave();
        }
        clock.advance(2 * SECOND);
        persister.step(&graph, false);
        std::mem::forget(persister); // SIGKILL: nothing more is written.
    }
    // The next start replays them and checkpoints at once (its first step),
    // though its own schedule is an hour away; then it crashes too.
    {
        let (mut persister, restored, graph) = open(&dir, &clock);
        assert!(!restored.checkpoint);
        assert_eq!(restored.replayed, 500);
        persister.step(&graph, false);
        std::mem::forget(persister);
    }
    // The one after finds that checkpoint and nothing to replay.
    {
        let (mut persister, restored, graph) = open(&dir, &clock);
        assert!(restored.checkpoint, "a checkpoint was written at start");
        assert_eq!(restored.replayed, 0);
        let avg = graph
            .lock()
            .latest("avg", "k")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value;
        assert_eq!(avg.as_f64(), Some((496.0 + 497.0 + 498.0 + 499.0) / 4.0));
        // Then 100 more are logged and flushed, and it crashes.
        for i in 500..600 {
            let mut locked = graph.lock();
            locked.push_numbers("temp", Keys::One("k"), &[f64::from(i)], None);
            locked.run_wave();
        }
        clock.advance(2 * SECOND);
        persister.step(&graph, false);
        std::mem::forget(persister);
    }
    // A start that applies nothing and stops cleanly leaves a checkpoint of
    // what it replayed.
    {
        let (mut persister, restored, graph) = open(&dir, &clock);
        assert_eq!(restored.replayed, 100);
        persister.step(&graph, true);
    }
    let (_persister, restored, _graph) = open(&dir, &clock);
    assert!(restored.checkpoint);
    assert_eq!(
        restored.replayed, 0,
        "the stop's checkpoint covered the log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
