//! Registration and the engine's refusals at its boundary: errors that
//! name the culprit, batches in any order, late nodes over existing keys,
//! the built-in table's checks, undeclared and late samples, and nodes that
//! waited for their inputs. Time comes from a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::sync::Arc;

use dav2d_core::{
    Bounds, Builtin, Graph, GraphError, Keys, NodeSpec, Outcome, RejectReason, Value,
};

mod common;

use common::*;

#[test]
fn registration_errors_name_the_culprit() {
    let (mut graph, _clock) = graph();
    let cycle = graph
        .register_all(vec![
            NodeSpec::builtin("a", "c", Builtin::Delta),
            NodeSpec::builtin("b", "a", Builtin::Delta),
            NodeSpec::builtin("c", "b", Builtin::Delta),
        ])
        .unwrap_err();
    assert_eq!(
        cycle.to_string(),
        "the graph would have a cycle: a -> b -> c -> a; a node cannot depend on its own output"
    );
    assert!(
        graph.nodes().is_empty(),
        "nothing is registered from a failing batch"
    );

    let self_loop = graph
        .register(NodeSpec::builtin("x", "x", Builtin::Delta))
        .unwrap_err();
    assert!(matches!(self_loop, GraphError::Cycle { .. }), "{self_loop}");

    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 5 },
        ))
        .unwrap();
    let duplicate = graph
        .register(NodeSpec::builtin("avg", "temp", Builtin::Delta))
        .unwrap_err();
    assert!(
        duplicate
            .to_string()
            .contains("'avg' is already taken by a node"),
        "{duplicate}"
    );
    let stream_name = graph
        .register(NodeSpec::builtin("temp", "avg", Builtin::Delta))
        .unwrap_err();
    assert!(
        stream_name
            .to_string()
            .contains("already taken by a stream"),
        "{stream_name}"
    );

    let zero = graph
        .register(custom("z", &[("temp", 0)], |_, _| Outcome::Skip))
        .unwrap_err();
    assert_eq!(
        zero,
        GraphError::ZeroWindow {
            node: "z".into(),
            input: "temp".into()
        }
    );

    let mut strict = strict_graph();
    strict
        .declare_stream("temperature", Bounds::default(), None)
        .unwrap();
    let unknown = strict
        .register(NodeSpec::builtin("avg", "temperatur", Builtin::Delta))
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "node 'avg' reads 'temperatur', which is neither a declared stream nor a node (did you mean 'temperature'?)"
    );
}

#[test]
fn batches_register_in_topological_order_whatever_the_listing_order() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            NodeSpec::builtin("rate", "avg", Builtin::Rate),
            NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 2 }),
        ])
        .unwrap();
    let order: Vec<String> = graph.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(order, vec!["avg", "rate"]);
    graph
        .push("temp", "k", Value::Float(10.0), Some(0))
        .unwrap();
    graph
        .push("temp", "k", Value::Float(20.0), Some(SECOND))
        .unwrap();
    graph.run_wave();
    graph
        .push("temp", "k", Value::Float(30.0), Some(2 * SECOND))
        .unwrap();
    graph.run_wave();
    assert_eq!(latest_f64(&graph, "rate", "k"), Some(10.0));
}

#[test]
fn a_node_registered_late_evaluates_existing_keys() {
    let (mut graph, _clock) = graph();
    graph.push("s", "a", Value::Float(1.0), None).unwrap();
    graph.push("s", "b", Value::Float(2.0), None).unwrap();
    graph
        .register(NodeSpec::builtin(
            "x10",
            "s",
            Builtin::Scale { a: 10.0, b: 0.0 },
        ))
        .unwrap();
    graph.run_wave();
    assert_eq!(latest_f64(&graph, "x10", "a"), Some(10.0));
    assert_eq!(latest_f64(&graph, "x10", "b"), Some(20.0));
}

#[test]
fn windows_grow_when_a_consumer_needs_more() {
    let (mut graph, _clock) = graph();
    graph.push_numbers("s", Keys::One("k"), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], None);
    graph
        .register(NodeSpec::builtin("sum", "s", Builtin::Sum { n: 10 }))
        .unwrap();
    graph.push_numbers("s", Keys::One("k"), &[7.0, 8.0], None);
    graph.run_wave();
    // The ring held the default history (4) before the node asked for 10.
    assert_eq!(
        latest_f64(&graph, "sum", "k"),
        Some(3.0 + 4.0 + 5.0 + 6.0 + 7.0 + 8.0)
    );
}

#[test]
fn the_builtin_table_names_each_kernel_and_checks_its_parameters() {
    for def in dav2d_core::BUILTINS {
        let params: Vec<(&str, f64)> = def.params.iter().map(|p| (p.name, 1.0)).collect();
        let builtin = Builtin::from_params(def.kind, &params).unwrap();
        assert_eq!(builtin.kind(), def.kind);
        assert!(builtin.to_string().starts_with(def.kind), "{builtin}");
        assert!(!def.help.is_empty());
    }
    let cases = [
        ("moving_average", &[][..], "moving_average needs `n`"),
        (
            "moving_average",
            &[("n", 2.5)][..],
            "moving_average needs `n` to be a whole number >= 0, got 2.5",
        ),
        (
            "moving_average",
            &[("n", 3.0), ("alpha", 0.1)][..],
            "moving_average takes n; `alpha` is not one of its parameters",
        ),
        (
            "rate",
            &[("n", 3.0)][..],
            "rate takes no parameters; remove `n`",
        ),
        (
            "median",
            &[][..],
            "unknown node kind 'median'; expected one of moving_average, ewma, min, max, sum, rate, delta, clamp, scale",
        ),
    ];
    for (kind, params, expected) in cases {
        let error = Builtin::from_params(kind, params).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
    assert_eq!(
        Builtin::from_params("scale", &[("a", 3.0)]).unwrap(),
        Builtin::Scale { a: 3.0, b: 0.0 },
        "defaults come from the table"
    );
}

/// A graph whose streams must be declared, on a manual clock.
fn declared_only() -> Graph {
    Graph::new(
        dav2d_core::GraphOptions {
            auto_create_streams: false,
            ..dav2d_core::GraphOptions::default()
        },
        Arc::new(dav2d_core::ManualClock::new(0)),
    )
}

#[test]
fn a_push_to_an_undeclared_stream_names_the_closest_declared_one() {
    let mut graph = declared_only();
    graph
        .declare_stream("temperature", Bounds::default(), None)
        .unwrap();
    let error = graph
        .push("temprature", "k", Value::Float(1.0), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("stream 'temprature' is not declared (did you mean 'temperature'?)"),
        "{error}"
    );
    let far = graph
        .push("pressure", "k", Value::Float(1.0), None)
        .unwrap_err()
        .to_string();
    assert!(!far.contains("did you mean"), "{far}");
    // Turned back on, names are created again.
    graph.set_auto_create_streams(true);
    assert!(graph.push("pressure", "k", Value::Float(1.0), None).is_ok());
}

#[test]
fn a_late_sample_never_becomes_the_latest_and_is_dropped_or_inserted_by_policy() {
    let mut graph = declared_only();
    graph
        .declare_stream("t", Bounds::default(), Some(5))
        .unwrap();
    graph
        .declare_stream("u", Bounds::default(), Some(5))
        .unwrap();
    graph
        .set_late_policy("u", dav2d_core::LatePolicy::Insert { allowed_ns: 5 })
        .unwrap();
    graph
        .register(NodeSpec::builtin(
            "avg",
            "u",
            Builtin::MovingAverage { n: 3 },
        ))
        .unwrap();
    let latest = |graph: &Graph, name: &str| {
        graph
            .latest(name, "")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value
    };
    // `drop` (the default): refused with its reason, the latest stays.
    graph.push("t", "", Value::Float(1.0), Some(10)).unwrap();
    graph.push("t", "", Value::Float(2.0), Some(20)).unwrap();
    let late = graph
        .push("t", "", Value::Float(9.0), Some(15))
        .unwrap_err();
    assert_eq!(late.reason(), RejectReason::Late);
    assert!(
        late.to_string()
            .contains("5 ns older than its latest (1970-01-01T00:00:00.000Z)"),
        "{late}"
    );
    assert_eq!(latest(&graph, "t"), Value::Float(2.0));
    // The column path of a batch sends a late sample the same way.
    let report = graph.push_numbers("t", Keys::One(""), &[3.0, 4.0], Some(&[30, 25]));
    assert_eq!((report.accepted, report.rejected), (1, 1));
    assert_eq!(latest(&graph, "t"), Value::Float(3.0));
    // `insert`: into the window in timestamp order, within the allowed
    // lateness; a latest-edge reader sees the corrected window.
    graph.push("u", "", Value::Float(1.0), Some(10)).unwrap();
    graph.push("u", "", Value::Float(2.0), Some(20)).unwrap();
    graph.run_wave();
    assert_eq!(latest(&graph, "avg"), Value::Float(1.5));
    graph.push("u", "", Value::Float(6.0), Some(18)).unwrap();
    graph.run_wave();
    assert_eq!(latest(&graph, "u"), Value::Float(2.0));
    assert_eq!(
        graph.window("u", "", 5).unwrap().numbers(),
        &[1.0, 6.0, 2.0]
    );
    assert_eq!(latest(&graph, "avg"), Value::Float(3.0));
    let past = graph
        .push("u", "", Value::Float(7.0), Some(12))
        .unwrap_err();
    assert_eq!(past.reason(), RejectReason::Late);
    assert_eq!(graph.stats().late, 4); // t at 15 and 25, u at 18 and 12
    // An input stream only.
    assert!(
        graph
            .set_late_policy("avg", dav2d_core::LatePolicy::Drop)
            .is_err()
    );
}

#[test]
fn nodes_that_waited_for_their_inputs_are_registered_leaving_out_only_the_bad_ones() {
    let mut graph = strict_graph();
    graph
        .declare_stream("temp", dav2d_core::Bounds::default(), None)
        .unwrap();
    let waiting = vec![
        NodeSpec::builtin("hot", "smooth", Builtin::Delta),
        NodeSpec::builtin("smooth", "temp", Builtin::MovingAverage { n: 2 }),
        NodeSpec::builtin("typo", "tmp", Builtin::Delta),
        NodeSpec::builtin("a", "b", Builtin::Delta),
        NodeSpec::builtin("b", "a", Builtin::Delta),
    ];
    assert!(graph.check(&waiting[0]).is_ok());
    assert!(!graph.inputs_exist(&waiting[0]));
    let errors: Vec<String> = graph
        .register_waiting(waiting)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("'typo' reads 'tmp'") && errors[0].contains("did you mean 'temp'"),
        "{errors:?}"
    );
    assert!(errors[1].contains("cycle: a -> b -> a"), "{errors:?}");
    let names: Vec<String> = graph.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        ["smooth", "hot"],
        "the good ones, in dependency order"
    );
    assert!(
        graph.stream_id("a").is_none(),
        "no node of the loop became a stream"
    );
}
