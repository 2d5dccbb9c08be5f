//! A running node's parameters changed in place: windows, memory and alert
//! states kept, every key evaluated again at once, transitions marked as
//! caused by the reload; what cannot change in place is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::sync::Arc;

use common::latest_f64;
use dav2d_core::{
    Builtin, ConstraintSpec, Graph, GraphOptions, LogicSpec, ManualClock, NodeSpec,
    SubscriptionMode, Value,
};

fn graph() -> Graph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(ManualClock::new(1)));
    graph
        .register_all(vec![
            NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 2 }),
            NodeSpec::constraint("hot", "avg", ConstraintSpec::above(80.0)),
        ])
        .unwrap();
    graph
}

fn state(graph: &Graph, key: &str) -> String {
    let reading = graph.latest("hot", key).unwrap().unwrap();
    reading.sample.unwrap().value.to_string()
}

#[test]
fn a_new_threshold_applies_in_place_and_keys_across_it_transition_once() {
    let mut graph = graph();
    let transitions = graph
        .subscribe("hot", SubscriptionMode::EveryChange, 64)
        .unwrap();
    for (key, value) in [("a", 70.0), ("a", 72.0), ("b", 90.0), ("b", 92.0)] {
        graph.push("temp", key, Value::Float(value), None).unwrap();
        graph.run_wave();
    }
    assert_eq!(
        (state(&graph, "a"), state(&graph, "b")),
        ("ok".into(), "tripped".into())
    );
    while transitions.try_next().is_some() {}
    // Lower the threshold to 60: a (at 71) trips, b stays tripped.
    graph
        .retune("hot", LogicSpec::Constraint(ConstraintSpec::above(60.0)))
        .unwrap();
    assert_eq!(
        (state(&graph, "a"), state(&graph, "b")),
        ("tripped".into(), "tripped".into())
    );
    let mut seen = Vec::new();
    while let Some(update) = transitions.try_next() {
        if let Some(t) = update.transition {
            seen.push((t.key.to_string(), t.to.as_str(), t.cause));
        }
    }
    assert_eq!(seen, vec![("a".to_string(), "tripped", Some("reload"))]);
    // The window was kept: a moving average of 2 over [72, 50] is 61.
    graph
        .retune("avg", LogicSpec::Builtin(Builtin::MovingAverage { n: 3 }))
        .unwrap();
    graph.push("temp", "a", Value::Float(50.0), None).unwrap();
    graph.run_wave();
    assert_eq!(
        latest_f64(&graph, "avg", "a"),
        Some((70.0 + 72.0 + 50.0) / 3.0),
        "the kept window, now of 3"
    );
    // A later transition is caused by a sample again.
    graph.push("temp", "a", Value::Float(0.0), None).unwrap();
    graph.push("temp", "a", Value::Float(0.0), None).unwrap();
    graph.run_wave();
    let last = std::iter::from_fn(|| transitions.try_next())
        .filter_map(|u| u.transition)
        .last()
        .unwrap();
    assert_eq!((last.to.as_str(), last.cause), ("ok", None));
}

#[test]
fn what_cannot_change_in_place_is_refused_and_changes_nothing() {
    let mut graph = graph();
    graph.push("temp", "a", Value::Float(90.0), None).unwrap();
    graph.run_wave();
    let kind = graph
        .retune("avg", LogicSpec::Constraint(ConstraintSpec::above(1.0)))
        .unwrap_err()
        .to_string();
    assert!(kind.contains("cannot change in place"), "{kind}");
    let bad = graph
        .retune("avg", LogicSpec::Builtin(Builtin::Ewma { alpha: 7.0 }))
        .unwrap_err()
        .to_string();
    assert!(bad.contains("alpha"), "{bad}");
    assert!(
        graph
            .retune("temp", LogicSpec::Builtin(Builtin::Max { n: 2 }))
            .is_err()
    );
    assert!(
        graph
            .retune("nope", LogicSpec::Builtin(Builtin::Max { n: 2 }))
            .is_err()
    );
    assert_eq!(state(&graph, "a"), "tripped");
    assert_eq!(graph.nodes()[0].logic, "moving_average(n=2)");
}

#[test]
fn a_retired_node_stops_reads_say_it_was_removed_and_its_name_is_free() {
    let mut graph = graph();
    graph.push("temp", "a", Value::Float(90.0), None).unwrap();
    graph.run_wave();
    let reads = graph.read_model();
    // A node still read by another cannot go first.
    let read = graph.retire("avg").unwrap_err().to_string();
    assert!(read.contains("hot still read it"), "{read}");
    graph.retire("hot").unwrap();
    graph.retire("avg").unwrap();
    let gone = graph.latest("hot", "a").unwrap_err().to_string();
    assert!(gone.contains("removed by a reload"), "{gone}");
    assert!(graph.nodes().is_empty());
    assert_eq!(graph.streams().len(), 1, "only temp is listed");
    graph.push("temp", "a", Value::Float(10.0), None).unwrap();
    graph.run_wave();
    let published = reads.latest("avg", "a").unwrap_err().to_string();
    assert!(published.contains("removed by a reload"), "{published}");
    // The name is free again: a new avg reads the window temp holds.
    graph
        .register(NodeSpec::builtin("avg", "temp", Builtin::Max { n: 2 }))
        .unwrap();
    graph.run_wave();
    assert_eq!(latest_f64(&graph, "avg", "a"), Some(90.0));
    assert_eq!(
        reads
            .latest("avg", "a")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value
            .as_f64(),
        Some(90.0)
    );
}
