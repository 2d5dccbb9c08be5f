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

/// A `bgr8` frame of 5x2 with 16-byte rows, every byte `fill`.
fn frame(seq: u64, fill: u8) -> Value {
    let info = dav2d_core::FrameInfo {
        width: 5,
        height: 2,
        format: "bgr8".into(),
        seq,
        ts_ns: seq as i64 * SECOND,
        size: 32,
        skipped: seq % 2,
        strides: [16, 0, 0],
        coverage: None,
    };
    Value::Frame(dav2d_core::FrameRef(Arc::new(dav2d_core::OwnedFrame {
        info,
        bytes: vec![fill; 32],
    })))
}

#[test]
fn frames_keep_their_pixels_only_where_the_stream_opts_in() {
    let dir = scratch("pixels");
    let clock = ManualClock::new(0);
    let options = || StoreOptions {
        pixels: vec!["camera".to_string()],
        ..StoreOptions::default()
    };
    let new_graph = || {
        let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
        for stream in ["camera", "other"] {
            graph
                .declare_type(stream, dav2d_core::ValueType::Frame)
                .unwrap();
        }
        graph
    };
    let mut live = new_graph();
    let (mut store, _) = Store::open(&dir, options(), Arc::new(clock.clone()), &mut live).unwrap();
    let updates = live
        .subscribe_many(&["camera", "other"], SubscriptionMode::EveryChange, 64)
        .unwrap();
    for seq in 0..3 {
        for stream in ["camera", "other"] {
            live.push(
                stream,
                "",
                frame(seq, seq as u8 + 10),
                Some(seq as i64 * SECOND),
            )
            .unwrap();
        }
        live.run_wave();
        if seq == 1 {
            // Frames 0 and 1 go into the checkpoint, frame 2 into the log.
            log_all(&mut store, &updates);
            store.flush().unwrap();
            store.checkpoint(&live).unwrap();
        }
    }
    log_all(&mut store, &updates);
    store.flush().unwrap();
    drop(store);

    let mut back = new_graph();
    let (_, restored) = Store::open(&dir, options(), Arc::new(clock.clone()), &mut back).unwrap();
    assert!(restored.checkpoint && restored.replayed > 0, "{restored:?}");
    let window = back.window("camera", "", 8).unwrap();
    let frames: Vec<(u64, u64, Vec<u8>, [usize; 3])> = (0..window.len())
        .map(|i| match window.value(i) {
            Some(Value::Frame(frame)) => {
                let info = frame.0.info();
                (
                    info.seq,
                    info.skipped,
                    frame.0.bytes().to_vec(),
                    info.strides,
                )
            }
            other => panic!("camera keeps its pixels: {other:?}"),
        })
        .collect();
    assert_eq!(
        frames,
        (0..3)
            .map(|seq| (seq, seq % 2, vec![seq as u8 + 10; 32], [16, 0, 0]))
            .collect::<Vec<_>>()
    );
    // The stream that did not opt in kept descriptions only.
    let other = back.latest("other", "").unwrap().unwrap().sample.unwrap();
    let Value::Record(fields) = &other.value else {
        panic!("{:?}", other.value);
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("seq"), Some(dav2d_core::Scalar::Int(2)));
    assert_eq!(field("skipped"), Some(dav2d_core::Scalar::Int(0)));
    assert_eq!(
        field("format"),
        Some(dav2d_core::Scalar::Str("bgr8".into()))
    );
    std::fs::remove_dir_all(&dir).ok();
}
