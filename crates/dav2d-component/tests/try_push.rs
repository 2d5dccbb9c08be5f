//! The intake's door for a caller that must not wait (Python, holding the
//! GIL): `try_push_numbers`/`try_push_values` apply when the graph is free
//! and, when it is held, apply and count nothing, so the caller can let go
//! and take the door that waits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::sync::Arc;

use dav2d_component::metrics::Metrics;
use dav2d_component::{HealthBoard, Intake, IntakeConfig, NativeSample, Outcome};
use dav2d_core::{Graph, GraphOptions, Keys, SharedGraph, SystemClock, Value};

fn intake() -> (Intake, SharedGraph) {
    let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
    let metrics = Arc::new(Metrics::new(graph.clone(), HealthBoard::default()));
    let intake = Intake::new(&IntakeConfig::default(), graph.clone(), metrics).expect("an intake");
    (intake, graph)
}

#[test]
fn a_held_graph_makes_the_try_door_decline_without_counting() {
    let (intake, graph) = intake();
    let held = graph.lock();
    assert!(
        intake
            .try_push_numbers("s", Keys::One("k"), &[1.0, 2.0], None)
            .is_none()
    );
    let sample = [NativeSample {
        key: "k",
        value: Value::Float(3.0),
        ts: None,
    }];
    assert!(intake.try_push_values("s", &sample).is_none());
    drop(held);
    assert_eq!(
        graph.lock().stats().accepted,
        0,
        "a declined push applied something"
    );
    match intake.try_push_numbers("s", Keys::One("k"), &[1.0, 2.0], None) {
        Some(Outcome::Applied(report)) => assert_eq!(report.accepted, 2),
        other => panic!("a free graph was not applied: {other:?}"),
    }
    match intake.try_push_values("s", &sample) {
        Some(Outcome::Applied(report)) => assert_eq!(report.accepted, 1),
        other => panic!("a free graph was not applied: {other:?}"),
    }
    assert_eq!(graph.lock().stats().accepted, 3);
}
