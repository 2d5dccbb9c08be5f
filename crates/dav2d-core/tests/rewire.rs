//! A running node re-wired in place: new inputs, edge policy, time window,
//! deadband, priority or kind, with its keys, alert states and readers
//! kept, every key evaluated again at once with the cause `reload`; what
//! cannot be re-wired is refused and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use common::{SECOND, graph, latest_f64};
use dav2d_core::{
    Builtin, ConstraintSpec, EdgePolicy, Graph, NodeSpec, Subscription, SubscriptionMode, Value,
};

fn state(graph: &Graph, key: &str) -> String {
    let reading = graph.latest("hot", key).unwrap().unwrap();
    reading.sample.unwrap().value.to_string()
}

fn push(graph: &mut Graph, stream: &str, key: &str, value: f64) {
    graph.push(stream, key, Value::Float(value), None).unwrap();
    graph.run_wave();
}

fn transitions(sub: &Subscription) -> Vec<(String, &'static str, Option<&'static str>)> {
    std::iter::from_fn(|| sub.try_next())
        .filter_map(|u| u.transition)
        .map(|t| (t.key.to_string(), t.to.as_str(), t.cause))
        .collect()
}

#[test]
fn a_constraint_moved_to_another_input_keeps_its_states_and_its_readers() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            NodeSpec::constraint("hot", "temp", ConstraintSpec::above(80.0)),
            NodeSpec::builtin("level", "temp", Builtin::Max { n: 1 }),
            NodeSpec::builtin("peak", "level", Builtin::Max { n: 3 }),
        ])
        .unwrap();
    push(&mut graph, "temp", "a", 90.0); // a trips on temp
    push(&mut graph, "temp", "b", 10.0);
    push(&mut graph, "probe", "a", 95.0); // probe already holds a, b and c
    push(&mut graph, "probe", "b", 85.0);
    push(&mut graph, "probe", "c", 20.0);
    let sub = graph
        .subscribe("hot", SubscriptionMode::EveryChange, 64)
        .unwrap();

    graph
        .rewire(
            NodeSpec::constraint("hot", "probe", ConstraintSpec::above(80.0)),
            false,
        )
        .unwrap();
    // a stays tripped (no transition), b trips from probe's window, c is new.
    assert_eq!(
        (state(&graph, "a"), state(&graph, "b"), state(&graph, "c")),
        ("tripped".into(), "tripped".into(), "ok".into())
    );
    let seen = transitions(&sub);
    assert!(
        seen.contains(&("b".to_string(), "tripped", Some("reload"))),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|(k, _, _)| k == "a"), "{seen:?}");
    // The old input no longer wakes it; the new one does, and its reader follows.
    push(&mut graph, "temp", "a", 0.0);
    assert_eq!(state(&graph, "a"), "tripped");
    push(&mut graph, "probe", "a", 0.0);
    assert_eq!(state(&graph, "a"), "ok");
    // A node's readers follow it to its new input.
    assert_eq!(latest_f64(&graph, "peak", "a"), Some(90.0));
    graph
        .rewire(
            NodeSpec::builtin("level", "probe", Builtin::Max { n: 1 }),
            false,
        )
        .unwrap();
    assert_eq!(latest_f64(&graph, "level", "a"), Some(0.0));
    push(&mut graph, "probe", "a", 120.0);
    assert_eq!(latest_f64(&graph, "peak", "a"), Some(120.0));
    assert_eq!(graph.nodes()[0].inputs[0].name, "probe");
    assert_eq!(
        transitions(&sub).last().unwrap().2,
        None,
        "a sample's cause"
    );
}

#[test]
fn a_time_window_a_deadband_a_policy_and_a_priority_change_in_place() {
    let (mut graph, clock) = graph();
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 1000 },
        ))
        .unwrap();
    for value in [10.0, 20.0, 30.0] {
        clock.advance(SECOND);
        push(&mut graph, "temp", "a", value);
    }
    assert_eq!(latest_f64(&graph, "avg", "a"), Some(20.0));
    // Over the last half second of the window the stream holds: only 30.
    let over = NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 1000 })
        .with_span(SECOND / 2, 1000)
        .with_policy(EdgePolicy::All)
        .with_priority(7)
        .with_deadband(5.0);
    graph.rewire(over, false).unwrap();
    assert_eq!(latest_f64(&graph, "avg", "a"), Some(30.0));
    let info = &graph.nodes()[0];
    assert_eq!(
        (info.priority, info.deadband, info.inputs[0].policy),
        (7, Some(5.0), EdgePolicy::All)
    );
    assert!(info.logic.ends_with(" over 500ms"), "{}", info.logic);
    // The deadband holds a change of 2 back and lets one of 10 through.
    clock.advance(SECOND);
    push(&mut graph, "temp", "a", 32.0);
    assert_eq!(latest_f64(&graph, "avg", "a"), Some(30.0));
    clock.advance(SECOND);
    push(&mut graph, "temp", "a", 40.0);
    assert_eq!(latest_f64(&graph, "avg", "a"), Some(40.0));
}

#[test]
fn a_built_in_becomes_a_constraint_and_back() {
    let (mut graph, _clock) = graph();
    graph
        .register(NodeSpec::builtin("hot", "temp", Builtin::Max { n: 2 }))
        .unwrap();
    push(&mut graph, "temp", "a", 90.0);
    graph
        .rewire(
            NodeSpec::constraint("hot", "temp", ConstraintSpec::above(80.0)),
            false,
        )
        .unwrap();
    assert_eq!(state(&graph, "a"), "tripped");
    graph
        .rewire(
            NodeSpec::builtin("hot", "temp", Builtin::Max { n: 2 }),
            false,
        )
        .unwrap();
    push(&mut graph, "temp", "a", 10.0);
    assert_eq!(latest_f64(&graph, "hot", "a"), Some(90.0));
}

#[test]
fn what_cannot_be_rewired_is_refused_and_changes_nothing() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            NodeSpec::constraint("hot", "temp", ConstraintSpec::above(80.0)),
            NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 2 }),
        ])
        .unwrap();
    push(&mut graph, "temp", "a", 90.0);
    // avg comes after hot in evaluation order.
    let later = graph
        .rewire(
            NodeSpec::constraint("hot", "avg", ConstraintSpec::above(80.0)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(later.contains("evaluated after it"), "{later}");
    let unknown = graph
        .rewire(
            NodeSpec::constraint("hot", "tmep", ConstraintSpec::above(80.0)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("did you mean 'temp'"), "{unknown}");
    let offloaded = graph
        .rewire(
            NodeSpec::builtin("avg", "temp", Builtin::Max { n: 2 }).offloaded(),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(offloaded.contains("offloaded"), "{offloaded}");
    let kept = graph
        .rewire(
            NodeSpec::builtin("avg", "temp", Builtin::Max { n: 2 }),
            true,
        )
        .unwrap_err()
        .to_string();
    assert!(kept.contains("only custom logic"), "{kept}");
    assert!(
        graph
            .rewire(
                NodeSpec::builtin("temp", "avg", Builtin::Max { n: 1 }),
                false
            )
            .is_err()
    );
    // Nothing changed: hot still reads temp and holds its state.
    assert_eq!(state(&graph, "a"), "tripped");
    push(&mut graph, "temp", "a", 10.0);
    assert_eq!(state(&graph, "a"), "ok");
    assert_eq!(latest_f64(&graph, "avg", "a"), Some(50.0));
}
