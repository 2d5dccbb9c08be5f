//! Restart = checkpoint + replay of the newer log: after it, `latest()`,
//! windows and constraint states are what they were at the last durable
//! flush, and what was never flushed is not there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::PathBuf;
use std::sync::Arc;

use dav2d_core::{
    Builtin, ConstraintSpec, Graph, GraphOptions, ManualClock, NodeSpec, Subscription,
    SubscriptionMode, Value,
};
use dav2d_store::{Store, StoreOptions};

const SECOND: i64 = 1_000_000_000;
const PERSISTED: [&str; 4] = ["temp", "avg", "smooth", "hot"];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-restart-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn graph(clock: &ManualClock) -> Graph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph
        .register_all(vec![
            NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 3 }),
            NodeSpec::builtin("smooth", "temp", Builtin::Ewma { alpha: 0.5 }),
            NodeSpec::constraint(
                "hot",
                "avg",
                ConstraintSpec {
                    reset: Some(70.0),
                    ..ConstraintSpec::above(80.0)
                },
            ),
        ])
        .unwrap();
    graph
}

fn push(graph: &mut Graph, from: i64, to: i64) {
    for i in from..to {
        let key = format!("dev-{}", i % 3);
        let value = 60.0 + ((i * 7) % 40) as f64;
        graph
            .push("temp", &key, Value::Float(value), Some(i * SECOND))
            .unwrap();
        graph.run_wave();
    }
}

fn log_all(store: &mut Store, subscription: &Subscription) {
    while let Some(update) = subscription.try_next() {
        store.log(&update).unwrap();
    }
}

fn readings(graph: &Graph) -> Vec<(String, String, Vec<Option<Value>>)> {
    let mut all = Vec::new();
    for name in PERSISTED {
        for key in ["dev-0", "dev-1", "dev-2"] {
            let window = graph.window(name, key, 8).unwrap();
            all.push((
                name.to_string(),
                key.to_string(),
                (0..window.len()).map(|i| window.value(i)).collect(),
            ));
        }
    }
    all
}

#[test]
fn a_restart_brings_back_the_last_durable_flush() {
    let dir = scratch("durable");
    let clock = ManualClock::new(1_000 * SECOND);
    let mut live = graph(&clock);
    let (mut store, restored) = Store::open(
        &dir,
        StoreOptions::default(),
        Arc::new(clock.clone()),
        &mut live,
    )
    .unwrap();
    assert!(!restored.checkpoint && restored.replayed == 0);
    let updates = live
        .subscribe_many(&PERSISTED, SubscriptionMode::EveryChange, 1 << 20)
        .unwrap();

    push(&mut live, 0, 40);
    log_all(&mut store, &updates);
    store.flush().unwrap();
    store.checkpoint(&live).unwrap();
    push(&mut live, 40, 70);
    log_all(&mut store, &updates);
    store.flush().unwrap();
    let durable = readings(&live);
    // Logged but never flushed, then the process dies.
    push(&mut live, 70, 80);
    log_all(&mut store, &updates);
    assert!(store.pending() > 0);
    drop(store);

    let mut back = graph(&clock);
    let (_, restored) = Store::open(
        &dir,
        StoreOptions::default(),
        Arc::new(clock.clone()),
        &mut back,
    )
    .unwrap();
    assert!(restored.checkpoint, "the checkpoint was loaded");
    assert!(restored.replayed > 0, "and the newer log replayed");
    assert_eq!(restored.skipped_records, 0);
    assert_eq!(readings(&back), durable);
    // The restored graph goes on: a new sample continues each window.
    push(&mut back, 70, 71);
    assert_eq!(
        back.latest("temp", "dev-1")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value,
        Value::Float(60.0 + ((70 * 7) % 40) as f64)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_checkpoint_drops_the_log_it_covers() {
    let dir = scratch("drops");
    let clock = ManualClock::new(0);
    let mut live = graph(&clock);
    let (mut store, _) = Store::open(
        &dir,
        StoreOptions::default(),
        Arc::new(clock.clone()),
        &mut live,
    )
    .unwrap();
    let updates = live
        .subscribe_many(&PERSISTED, SubscriptionMode::EveryChange, 1 << 20)
        .unwrap();
    for round in 0..3 {
        push(&mut live, round * 10, round * 10 + 10);
        log_all(&mut store, &updates);
        store.flush().unwrap();
        store.checkpoint(&live).unwrap();
    }
    let segments = dav2d_store::wal::segments(&dir).unwrap();
    assert_eq!(
        segments.len(),
        1,
        "only the segment after the last checkpoint remains: {segments:?}"
    );
    let mut back = graph(&clock);
    let (_, restored) =
        Store::open(&dir, StoreOptions::default(), Arc::new(clock), &mut back).unwrap();
    assert_eq!(restored.replayed, 0, "everything came from the checkpoint");
    assert_eq!(readings(&back), readings(&live));
    std::fs::remove_dir_all(&dir).ok();
}
