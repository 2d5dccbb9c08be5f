//! Checkpoints on real files: the engine's state round-trips exactly, a
//! damaged or cut-short file is refused with a reason (never partly read),
//! and writing costs a fixed handful of file actions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::PathBuf;
use std::sync::Arc;

use dav2d_core::{
    Builtin, ConstraintSpec, Graph, GraphOptions, ManualClock, NodeSpec, Scalar, Value,
};
use dav2d_store::{FileAction, Ledger, checkpoint};

const SECOND: i64 = 1_000_000_000;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-checkpoint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn graph(clock: &ManualClock) -> Graph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    let spec = ConstraintSpec {
        hold_ns: 5 * SECOND,
        ..ConstraintSpec::above(80.0)
    };
    graph
        .register_all(vec![
            NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 3 }),
            NodeSpec::builtin("smooth", "temp", Builtin::Ewma { alpha: 0.5 }),
            NodeSpec::constraint("hot", "avg", spec),
        ])
        .unwrap();
    graph
}

fn busy_graph(clock: &ManualClock) -> Graph {
    let mut graph = graph(clock);
    for i in 0..50 {
        let key = format!("dev-{}", i % 7);
        graph
            .push(
                "temp",
                &key,
                Value::Float(60.0 + f64::from(i)),
                Some(i64::from(i) * SECOND),
            )
            .unwrap();
        graph.run_wave();
    }
    let record = Value::Record(Arc::new(vec![
        (Arc::from("door"), Scalar::Str(Arc::from("open"))),
        (Arc::from("level"), Scalar::Int(3)),
        (Arc::from("ok"), Scalar::Bool(true)),
    ]));
    graph.push("events", "dev-1", record, Some(5)).unwrap();
    graph
        .push(
            "events",
            "dev-2",
            Value::Bytes(Arc::from(vec![0u8, 1, 2])),
            Some(6),
        )
        .unwrap();
    graph
        .push("events", "dev-3", Value::Int(-4), Some(7))
        .unwrap();
    graph
}

#[test]
fn the_state_round_trips_exactly() {
    let dir = scratch("roundtrip");
    let clock = ManualClock::new(100 * SECOND);
    let before = busy_graph(&clock);
    let state = before.export_state();
    let mut ledger = Ledger::new(Ledger::DEFAULT_BUDGET, Arc::new(clock.clone()));
    checkpoint::write(&dir, &state, 7, &mut ledger).unwrap();
    let (read, wal_from) = checkpoint::read(&dir).unwrap().expect("a checkpoint");
    assert_eq!((&read, wal_from), (&state, 7));
    let mut after = graph(&clock);
    // "events" was pushed to the busy graph only; the twin reports it skipped.
    assert_eq!(after.import_state(&read), vec!["events".to_string()]);
    for key in ["dev-0", "dev-3", "dev-6"] {
        for name in ["temp", "avg", "smooth", "hot"] {
            assert_eq!(
                after.latest(name, key).unwrap(),
                before.latest(name, key).unwrap(),
                "{name}/{key}"
            );
        }
    }
    // One create, one write, two fsyncs (file and directory), one rename.
    let counts = ledger.by_kind();
    let count = |kind| {
        counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        [
            FileAction::Create,
            FileAction::Write,
            FileAction::Fsync,
            FileAction::Rename
        ]
        .map(count),
        [1, 1, 2, 1]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_checkpoint_is_not_an_error() {
    let dir = scratch("none");
    assert!(checkpoint::read(&dir).unwrap().is_none());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_checkpoint_is_refused_with_a_reason() {
    let dir = scratch("damaged");
    let clock = ManualClock::new(0);
    let state = busy_graph(&clock).export_state();
    let mut ledger = Ledger::new(Ledger::DEFAULT_BUDGET, Arc::new(clock));
    checkpoint::write(&dir, &state, 7, &mut ledger).unwrap();
    let path = dir.join(checkpoint::FILE);
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let error = checkpoint::read(&dir).unwrap_err().to_string();
    assert!(
        error.contains("checksum does not match") && error.contains("move it aside"),
        "{error}"
    );
    std::fs::write(&path, &good[..good.len() - 9]).unwrap();
    assert!(
        checkpoint::read(&dir)
            .unwrap_err()
            .to_string()
            .contains("not a readable checkpoint")
    );
    std::fs::write(&path, b"something else entirely").unwrap();
    assert!(
        checkpoint::read(&dir)
            .unwrap_err()
            .to_string()
            .contains("checkpoint marker")
    );
    std::fs::remove_dir_all(&dir).ok();
}
