//! Engine semantics at the crate boundary: streams, windows, built-ins,
//! waves, conflation, early cutoff, constraints and subscriptions
//! (registration and refusals: `registration.rs`). Time comes from a manual clock, so nothing here
//! depends on how fast the machine is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dav2d_core::{
    BatchReport, Bounds, Builtin, ConstraintSpec, ConstraintState, EdgePolicy, Graph, Keys,
    NodeSpec, Outcome, RejectReason, Rejection, SampleIn, SubscriptionMode, Value, ValueType,
};

mod common;

use common::*;

/// Feeds `values` (1 s apart) through one built-in and checks its output.
fn check_builtin(builtin: Builtin, values: &[f64], expected: Option<f64>) {
    let (mut graph, _clock) = graph();
    graph
        .register(NodeSpec::builtin("out", "in", builtin))
        .unwrap();
    for (i, v) in values.iter().enumerate() {
        graph
            .push("in", "k", Value::Float(*v), Some(i as i64 * SECOND))
            .unwrap();
        graph.run_wave();
    }
    assert_eq!(
        latest_f64(&graph, "out", "k"),
        expected,
        "{builtin} over {values:?}"
    );
}

#[test]
fn builtins_compute_what_their_names_say() {
    check_builtin(
        Builtin::MovingAverage { n: 3 },
        &[1.0, 2.0, 3.0, 10.0],
        Some(5.0),
    );
    check_builtin(Builtin::MovingAverage { n: 5 }, &[2.0, 4.0], Some(3.0));
    check_builtin(
        Builtin::Ewma { alpha: 0.5 },
        &[10.0, 20.0, 20.0],
        Some(17.5),
    );
    check_builtin(Builtin::Min { n: 2 }, &[1.0, 5.0, 3.0], Some(3.0));
    check_builtin(Builtin::Max { n: 2 }, &[9.0, 5.0, 3.0], Some(5.0));
    check_builtin(Builtin::Sum { n: 2 }, &[1.0, 5.0, 3.0], Some(8.0));
    check_builtin(Builtin::Rate, &[10.0, 14.0], Some(4.0));
    check_builtin(Builtin::Rate, &[10.0], None);
    check_builtin(Builtin::Delta, &[10.0, 7.0], Some(-3.0));
    check_builtin(Builtin::Clamp { lo: 0.0, hi: 5.0 }, &[7.0], Some(5.0));
    check_builtin(Builtin::Scale { a: 2.0, b: 1.0 }, &[3.0], Some(7.0));
}

#[test]
fn each_key_keeps_its_latest_and_window() {
    let (mut graph, _clock) = graph();
    for (key, value) in [("a", 1.0), ("b", 10.0), ("a", 2.0), ("a", 3.0)] {
        graph.push("s", key, Value::Float(value), None).unwrap();
    }
    assert_eq!(latest_f64(&graph, "s", "a"), Some(3.0));
    assert_eq!(latest_f64(&graph, "s", "b"), Some(10.0));
    assert_eq!(
        graph.window("s", "a", 3).unwrap().numbers(),
        &[1.0, 2.0, 3.0]
    );
    let reading = graph.latest("s", "a").unwrap().unwrap().sample.unwrap();
    assert_eq!(reading.seq, 2);
    assert_eq!(graph.latest("s", "nobody").unwrap(), None);
}

#[test]
fn values_of_every_type_travel() {
    let (mut graph, _clock) = graph();
    let bytes: Arc<[u8]> = Arc::from(vec![1u8, 2, 3]);
    let values = [
        Value::Int(7),
        Value::Bool(true),
        Value::from("hello"),
        Value::Record(Arc::new(vec![(
            Arc::from("t"),
            dav2d_core::Scalar::Float(1.5),
        )])),
        Value::Bytes(Arc::clone(&bytes)),
    ];
    for value in values {
        graph.push("s", "k", value.clone(), None).unwrap();
        let got = graph
            .latest("s", "k")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value;
        assert_eq!(got, value);
    }
    let Some(Value::Bytes(held)) = graph
        .latest("s", "k")
        .unwrap()
        .unwrap()
        .sample
        .map(|s| s.value)
    else {
        panic!("expected bytes");
    };
    assert!(
        Arc::ptr_eq(&held, &bytes),
        "byte buffers are shared, not copied"
    );
}

#[test]
fn invalid_samples_are_rejected_counted_and_never_become_latest() {
    let (mut graph, _clock) = graph();
    let bounds = Bounds {
        min: Some(-40.0),
        max: Some(150.0),
        finite_only: true,
    };
    graph.declare_stream("temp", bounds, None).unwrap();
    graph.push("temp", "k", Value::Float(20.0), None).unwrap();
    let cases = [
        (Value::Float(200.0), "above_max"),
        (Value::Float(-41.0), "below_min"),
        (Value::Float(f64::NAN), "not_finite"),
        (Value::from("hot"), "not_a_number"),
    ];
    for (value, reason) in cases {
        let rejection = graph.push("temp", "k", value, None).unwrap_err();
        assert_eq!(rejection.reason().as_str(), reason);
    }
    assert_eq!(latest_f64(&graph, "temp", "k"), Some(20.0));
    let stats = graph.stats();
    assert_eq!((stats.accepted, stats.rejected), (1, 4));
    assert!(
        stats
            .rejected_by_reason
            .contains(&(dav2d_core::RejectReason::AboveMax, 1))
    );

    // A batch applies its good samples beside the bad ones.
    let report = graph.push_numbers("temp", Keys::One("k"), &[21.0, 999.0, 22.0], None);
    assert_eq!((report.accepted, report.rejected), (2, 1));
    assert_eq!(report.errors[0].0, 1);
    assert_eq!(latest_f64(&graph, "temp", "k"), Some(22.0));
}

#[test]
fn samples_cannot_be_pushed_to_a_node_output() {
    let (mut graph, _clock) = graph();
    graph
        .register(NodeSpec::builtin(
            "avg",
            "s",
            Builtin::MovingAverage { n: 2 },
        ))
        .unwrap();
    let rejection = graph.push("avg", "k", Value::Float(1.0), None).unwrap_err();
    assert!(
        matches!(rejection, Rejection::NodeOutput { .. }),
        "{rejection}"
    );
}

#[test]
fn diamonds_are_glitch_free() {
    let (mut graph, _clock) = graph();
    let seen: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let log = Arc::clone(&seen);
    graph
        .register_all(vec![
            NodeSpec::builtin("b", "a", Builtin::Scale { a: 1.0, b: 100.0 }),
            NodeSpec::builtin("c", "a", Builtin::Scale { a: 1.0, b: 200.0 }),
            custom("d", &[("b", 1), ("c", 1)], move |_, w| {
                let (b, c) = (w[0][0], w[1][0]);
                log.lock().unwrap().push((b, c));
                Outcome::Output(Value::Float(b + c))
            }),
        ])
        .unwrap();
    for value in [1.0, 2.0, 3.0] {
        graph.push("a", "k", Value::Float(value), None).unwrap();
        graph.run_wave();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(101.0, 201.0), (102.0, 202.0), (103.0, 203.0)]);
    assert_eq!(latest_f64(&graph, "d", "k"), Some(306.0));
}

#[test]
fn latest_edges_conflate_and_windows_keep_every_sample() {
    let (mut graph, _clock) = graph();
    let calls: Arc<Mutex<Vec<Vec<f64>>>> = Arc::default();
    let log = Arc::clone(&calls);
    graph
        .register(custom("avg", &[("s", 5)], move |_, w| {
            log.lock().unwrap().push(w[0].clone());
            Outcome::Output(Value::Float(w[0].iter().sum::<f64>() / w[0].len() as f64))
        }))
        .unwrap();
    let report = graph.push_numbers("s", Keys::One("k"), &[1.0, 2.0, 3.0, 4.0], None);
    assert_eq!(report.accepted, 4);
    graph.run_wave();
    assert_eq!(*calls.lock().unwrap(), vec![vec![1.0, 2.0, 3.0, 4.0]]);
    let avg = graph.nodes().into_iter().find(|n| n.name == "avg").unwrap();
    assert_eq!((avg.stats.evaluations, avg.stats.conflated), (1, 3));
    assert_eq!(graph.stats().conflated, 3);
}

#[test]
fn all_edges_evaluate_every_sample_in_order() {
    let (mut graph, _clock) = graph();
    let calls: Arc<Mutex<Vec<f64>>> = Arc::default();
    let log = Arc::clone(&calls);
    let spec = custom("every", &[("s", 1)], move |_, w| {
        log.lock().unwrap().push(w[0][0]);
        Outcome::Output(Value::Float(w[0][0]))
    })
    .with_policy(EdgePolicy::All);
    graph.register(spec).unwrap();
    let report = graph.push_numbers("s", Keys::One("k"), &[1.0, 2.0, 3.0, 4.0], None);
    graph.run_wave();
    assert_eq!(report.accepted, 4);
    assert_eq!(*calls.lock().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(graph.stats().conflated, 0);
}

#[test]
fn unchanged_output_wakes_no_children() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            NodeSpec::builtin("clamped", "s", Builtin::Clamp { lo: 0.0, hi: 10.0 }),
            NodeSpec::builtin("doubled", "clamped", Builtin::Scale { a: 2.0, b: 0.0 }),
        ])
        .unwrap();
    for value in [20.0, 30.0, 40.0] {
        graph.push("s", "k", Value::Float(value), None).unwrap();
        graph.run_wave();
    }
    let nodes = graph.nodes();
    assert_eq!(nodes[0].stats.evaluations, 3);
    assert_eq!(nodes[0].stats.cutoffs, 2);
    assert_eq!(
        nodes[1].stats.evaluations, 1,
        "the clamp's unchanged output woke nothing"
    );
    assert_eq!(latest_f64(&graph, "doubled", "k"), Some(20.0));
}

#[test]
fn changes_inside_the_deadband_wake_no_children() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            NodeSpec::builtin("smooth", "s", Builtin::Scale { a: 1.0, b: 0.0 }).with_deadband(0.5),
            NodeSpec::builtin("child", "smooth", Builtin::Scale { a: 1.0, b: 0.0 }),
        ])
        .unwrap();
    for value in [10.0, 10.2, 10.4, 10.6] {
        graph.push("s", "k", Value::Float(value), None).unwrap();
        graph.run_wave();
    }
    assert_eq!(latest_f64(&graph, "smooth", "k"), Some(10.6));
    assert_eq!(
        graph.window("smooth", "k", 4).unwrap().numbers(),
        &[10.0, 10.6]
    );
    assert_eq!(graph.nodes()[1].stats.evaluations, 2);
}

#[test]
fn multi_input_nodes_join_by_key() {
    let (mut graph, _clock) = graph();
    graph
        .register(custom("diff", &[("a", 1), ("b", 1)], |_, w| {
            Outcome::Output(Value::Float(w[0][0] - w[1][0]))
        }))
        .unwrap();
    graph.push("a", "x", Value::Float(10.0), None).unwrap();
    graph.run_wave();
    assert_eq!(
        graph.latest("diff", "x").unwrap(),
        None,
        "waits until both inputs have key x"
    );
    graph.push("b", "x", Value::Float(3.0), None).unwrap();
    graph.push("b", "y", Value::Float(1.0), None).unwrap();
    graph.run_wave();
    assert_eq!(latest_f64(&graph, "diff", "x"), Some(7.0));
    assert_eq!(graph.latest("diff", "y").unwrap(), None);
}

#[test]
fn a_failing_key_keeps_its_error_until_the_next_good_evaluation() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            custom("fragile", &[("s", 1)], |_, w| {
                if w[0][0] < 0.0 {
                    Outcome::Failed(Arc::from("ValueError: negative"))
                } else {
                    Outcome::Output(Value::Float(w[0][0].sqrt()))
                }
            }),
            NodeSpec::builtin("sturdy", "s", Builtin::Scale { a: 1.0, b: 1.0 }),
        ])
        .unwrap();
    graph.push("s", "k", Value::Float(4.0), None).unwrap();
    graph.push("s", "other", Value::Float(9.0), None).unwrap();
    graph.run_wave();
    graph.push("s", "k", Value::Float(-1.0), None).unwrap();
    graph.run_wave();
    let reading = graph.latest("fragile", "k").unwrap().unwrap();
    assert_eq!(reading.error.as_deref(), Some("ValueError: negative"));
    assert_eq!(
        reading.sample.unwrap().value,
        Value::Float(2.0),
        "the last good value is kept"
    );
    assert_eq!(latest_f64(&graph, "fragile", "other"), Some(3.0));
    assert_eq!(
        latest_f64(&graph, "sturdy", "k"),
        Some(0.0),
        "other nodes keep running"
    );
    graph.push("s", "k", Value::Float(16.0), None).unwrap();
    graph.run_wave();
    let reading = graph.latest("fragile", "k").unwrap().unwrap();
    assert_eq!(reading.error, None);
    assert_eq!(latest_f64(&graph, "fragile", "k"), Some(4.0));
    assert_eq!(graph.stats().errors, 1);
}

#[test]
fn builtins_reject_non_numbers_with_an_error_state() {
    let (mut graph, _clock) = graph();
    // A stream declared to take anything lets a string reach the node.
    graph.declare_type("s", ValueType::Any).unwrap();
    graph
        .register(NodeSpec::builtin(
            "avg",
            "s",
            Builtin::MovingAverage { n: 2 },
        ))
        .unwrap();
    graph.push("s", "k", Value::from("warm"), None).unwrap();
    graph.run_wave();
    let error = graph.latest("avg", "k").unwrap().unwrap().error.unwrap();
    assert!(
        error.contains("holds a string") && error.contains("needs numbers"),
        "{error}"
    );
}

#[test]
fn a_stream_numeric_nodes_read_takes_numbers_and_refuses_the_rest_at_the_door() {
    let (mut graph, _clock) = graph();
    graph
        .register(NodeSpec::builtin(
            "avg",
            "mix",
            Builtin::MovingAverage { n: 3 },
        ))
        .unwrap();
    let values = [Value::Float(1.0), Value::from("oops"), Value::Float(3.0)];
    let mut report = BatchReport::default();
    graph.push_records(
        values.iter().enumerate().map(|(index, value)| SampleIn {
            index,
            stream: "mix",
            key: "mix",
            value: value.clone(),
            ts_ns: None,
        }),
        &mut report,
    );
    graph.run_wave();
    assert_eq!((report.accepted, report.rejected), (2, 1));
    let (index, rejection) = &report.errors[0];
    assert_eq!(*index, 1);
    assert_eq!(rejection.reason(), RejectReason::TypeMismatch);
    assert_eq!(
        rejection.to_string(),
        "stream 'mix' takes number values (read by numeric node 'avg'), got a string; declare its type (e.g. `type: any`) to take others"
    );
    let reading = graph.latest("avg", "mix").unwrap().unwrap();
    assert_eq!(reading.error, None, "the node never saw the string");
    assert_eq!(reading.sample.unwrap().value, Value::Float(2.0));
    // A declared type is checked the same way, and numeric nodes refuse it.
    graph.declare_type("label", ValueType::String).unwrap();
    assert!(graph.push("label", "k", Value::from("north"), None).is_ok());
    assert_eq!(
        graph
            .push("label", "k", Value::Float(1.0), None)
            .unwrap_err()
            .reason(),
        RejectReason::TypeMismatch
    );
    let report = graph.push_numbers("label", Keys::One("k"), &[1.0, 2.0], None);
    assert_eq!((report.accepted, report.rejected), (0, 2));
    let refused = graph
        .register(NodeSpec::builtin("bad", "label", Builtin::Max { n: 2 }))
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("declared to take string values"),
        "{refused}"
    );
    assert!(graph.declare_type("mix", ValueType::String).is_err());
    // A stream nothing numeric reads takes anything.
    for value in [Value::from("a"), Value::Float(1.0), Value::Bool(true)] {
        assert!(graph.push("free", "k", value, None).is_ok());
    }
}

#[test]
fn constraints_trip_reset_debounce_and_go_stale() {
    let (mut graph, clock) = graph();
    let spec = ConstraintSpec {
        reset: Some(75.0),
        hold_ns: 2 * SECOND,
        stale_after_ns: Some(10 * SECOND),
        ..ConstraintSpec::above(80.0)
    };
    graph
        .register(NodeSpec::constraint("overheat", "temp", spec))
        .unwrap();
    let subscription = graph
        .subscribe("overheat", SubscriptionMode::EveryChange, 64)
        .unwrap();
    let state = |graph: &Graph| {
        graph
            .latest("overheat", "dev")
            .unwrap()
            .and_then(|r| r.sample)
            .map(|s| s.value.to_string())
    };
    let push = |graph: &mut Graph, value: f64| {
        graph
            .push("temp", "dev", Value::Float(value), None)
            .unwrap();
        graph.run_wave();
    };
    push(&mut graph, 70.0);
    assert_eq!(state(&graph).as_deref(), Some("ok"));
    push(&mut graph, 85.0);
    clock.advance(SECOND);
    graph.tick();
    assert_eq!(
        state(&graph).as_deref(),
        Some("ok"),
        "must hold for 2 s first"
    );
    clock.advance(SECOND);
    graph.tick();
    assert_eq!(state(&graph).as_deref(), Some("tripped"));
    push(&mut graph, 78.0);
    assert_eq!(state(&graph).as_deref(), Some("tripped"), "hysteresis");
    push(&mut graph, 74.0);
    assert_eq!(state(&graph).as_deref(), Some("ok"));
    clock.advance(10 * SECOND);
    graph.tick();
    assert_eq!(state(&graph).as_deref(), Some("stale"));
    let transitions: Vec<(ConstraintState, ConstraintState)> =
        std::iter::from_fn(|| subscription.try_next())
            .filter_map(|u| u.transition)
            .map(|t| (t.from, t.to))
            .collect();
    use ConstraintState::{Ok, Stale, Tripped};
    assert_eq!(transitions, vec![(Ok, Tripped), (Tripped, Ok), (Ok, Stale)]);
    assert_eq!(
        graph.constraint_keys_in("overheat", Stale).unwrap().len(),
        1
    );
}

#[test]
fn subscribers_see_node_outputs() {
    let (mut graph, _clock) = graph();
    graph
        .register(NodeSpec::builtin(
            "double",
            "s",
            Builtin::Scale { a: 2.0, b: 0.0 },
        ))
        .unwrap();
    let every = graph
        .subscribe("double", SubscriptionMode::EveryChange, 16)
        .unwrap();
    let latest = graph
        .subscribe("double", SubscriptionMode::Latest, 16)
        .unwrap();
    for value in [1.0, 2.0, 3.0] {
        graph.push("s", "k", Value::Float(value), None).unwrap();
        graph.run_wave();
    }
    let values = |s: &dav2d_core::Subscription| -> Vec<f64> {
        std::iter::from_fn(|| s.next_timeout(Duration::from_millis(1)))
            .filter_map(|u| u.value.and_then(|v| v.as_f64()))
            .collect()
    };
    assert_eq!(values(&every), vec![2.0, 4.0, 6.0]);
    assert_eq!(values(&latest), vec![6.0]);
    assert_eq!(latest.conflated(), 2);
}

#[test]
fn the_read_model_follows_each_key_through_floats_other_values_errors_and_back() {
    let (mut graph, _clock) = graph();
    graph.declare_type("s", ValueType::Any).unwrap();
    graph
        .register(custom("fragile", &[("s", 1)], |_, w| match w[0][0] {
            x if x.is_nan() => Outcome::Output(Value::Str(Arc::from("not a number"))),
            x if x < 0.0 => Outcome::Failed(Arc::from("ValueError: negative")),
            x => Outcome::Output(Value::Float(x.sqrt())),
        }))
        .unwrap();
    let model = graph.read_model();
    let steps = [
        Value::Float(-4.0), // an error before any good value
        Value::Float(4.0),
        Value::Float(9.0),
        Value::Float(-1.0), // an error beside a kept value
        Value::Float(16.0),
        Value::Str(Arc::from("warm")), // full values from here on
        Value::Float(25.0),
        Value::Int(36),
    ];
    for (step, value) in steps.into_iter().enumerate() {
        for key in ["a", "b"] {
            graph.push("s", key, value.clone(), None).unwrap();
        }
        graph.run_wave();
        for name in ["s", "fragile"] {
            for key in ["a", "b"] {
                assert_eq!(
                    model.latest(name, key).unwrap(),
                    graph.latest(name, key).unwrap(),
                    "step {step}: {name}/{key}"
                );
            }
        }
    }
    let last = model.latest("fragile", "a").unwrap().unwrap();
    assert_eq!(last.sample.unwrap().value, Value::Float(6.0));
    assert_eq!(last.error, None);
}
