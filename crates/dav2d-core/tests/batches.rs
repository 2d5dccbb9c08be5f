//! Batches and snapshots at the crate boundary: a batch run evaluated
//! column-wise gives what one wave per sample gives, and an exported state
//! restores readings, windows, errors and timers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::sync::Arc;

use dav2d_core::{
    Builtin, ConstraintSpec, EdgePolicy, Graph, GraphOptions, Keys, ManualClock, NodeSpec, Outcome,
    SubscriptionMode, Value,
};

use common::*;

/// Builds the same graph twice, feeds one sample at a time (a wave each) to
/// one and the whole run as one batch (column-wise) to the other, and checks
/// every output, window and transition agrees.
fn check_columnar_matches_per_sample(
    make: fn() -> Vec<NodeSpec>,
    outputs: &[&str],
    constraint: Option<&str>,
) {
    let (mut one_by_one, _c1) = graph();
    let (mut batched, _c2) = graph();
    one_by_one.register_all(make()).unwrap();
    batched.register_all(make()).unwrap();
    let subscriptions = constraint.map(|name| {
        (
            one_by_one
                .subscribe(name, SubscriptionMode::EveryChange, 1 << 20)
                .unwrap(),
            batched
                .subscribe(name, SubscriptionMode::EveryChange, 1 << 20)
                .unwrap(),
        )
    });
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<f64> = (0..10_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1000) as f64 / 10.0
        })
        .collect();
    let ts: Vec<i64> = (0..values.len() as i64).map(|i| i * SECOND / 100).collect();
    for (v, t) in values.iter().zip(&ts) {
        one_by_one
            .push("in", "k", Value::Float(*v), Some(*t))
            .unwrap();
        one_by_one.run_wave();
    }
    // Two runs, so the second starts from windows the first left behind; the
    // first is longer than one column chunk (4096), the split is uneven.
    let half = 4100;
    batched.push_numbers("in", Keys::One("k"), &values[..half], Some(&ts[..half]));
    batched.run_wave();
    batched.push_numbers("in", Keys::One("k"), &values[half..], Some(&ts[half..]));
    batched.run_wave();
    for name in outputs {
        assert_eq!(
            one_by_one.latest(name, "k").unwrap(),
            batched.latest(name, "k").unwrap(),
            "latest of {name}"
        );
        assert_eq!(
            one_by_one.window(name, "k", 8).unwrap().numbers(),
            batched.window(name, "k", 8).unwrap().numbers(),
            "window of {name}"
        );
    }
    let evaluations = |g: &Graph| {
        g.nodes()
            .into_iter()
            .map(|n| (n.name, n.stats.evaluations, n.stats.cutoffs))
            .collect::<Vec<_>>()
    };
    let (a, b) = (evaluations(&one_by_one), evaluations(&batched));
    for ((name, eval_a, cut_a), (_, eval_b, cut_b)) in a.iter().zip(&b) {
        if outputs.contains(&name.as_str()) || Some(name.as_str()) == constraint {
            assert_eq!(
                (eval_a, cut_a),
                (eval_b, cut_b),
                "evaluations and cutoffs of {name}"
            );
        }
    }
    if let Some((s1, s2)) = subscriptions {
        let drain = |s: &dav2d_core::Subscription| {
            std::iter::from_fn(|| s.try_next())
                .filter_map(|u| u.transition)
                .map(|t| (t.from, t.to, t.value))
                .collect::<Vec<_>>()
        };
        let (t1, t2) = (drain(&s1), drain(&s2));
        assert!(!t1.is_empty(), "the data trips the constraint");
        assert_eq!(t1, t2, "transitions");
    }
}

#[test]
fn columnar_runs_match_per_sample_waves() {
    check_columnar_matches_per_sample(
        || {
            vec![
                NodeSpec::builtin("avg", "in", Builtin::MovingAverage { n: 5 })
                    .with_policy(EdgePolicy::All),
                NodeSpec::constraint(
                    "alert",
                    "avg",
                    ConstraintSpec {
                        reset: Some(40.0),
                        ..ConstraintSpec::above(60.0)
                    },
                )
                .with_policy(EdgePolicy::All),
            ]
        },
        &["avg"],
        Some("alert"),
    );
    check_columnar_matches_per_sample(
        || {
            vec![
                NodeSpec::builtin("smooth", "in", Builtin::Ewma { alpha: 0.2 })
                    .with_policy(EdgePolicy::All),
                NodeSpec::builtin("slope", "smooth", Builtin::Rate)
                    .with_policy(EdgePolicy::All)
                    .with_deadband(5.0),
                NodeSpec::builtin("peak", "slope", Builtin::Max { n: 7 })
                    .with_policy(EdgePolicy::All),
                NodeSpec::builtin("floor", "in", Builtin::Clamp { lo: 20.0, hi: 80.0 })
                    .with_policy(EdgePolicy::All),
                NodeSpec::builtin("sum", "floor", Builtin::Sum { n: 3 }),
            ]
        },
        &["smooth", "slope", "peak", "floor"],
        None,
    );
}

#[test]
fn custom_logic_over_a_run_matches_per_sample_waves_in_one_batch_per_chunk() {
    // Python-like logic on an `all` edge: it outputs, skips and fails.
    fn make() -> Vec<NodeSpec> {
        let spread = |_: &str, windows: &[Vec<f64>]| {
            let w = &windows[0];
            match w.last() {
                Some(&last) if last > 99.0 => Outcome::Failed(Arc::from("too hot")),
                _ if w.len() < 3 => Outcome::Skip,
                Some(&last) => Outcome::Output(Value::Float(last - w[0])),
                None => Outcome::Skip,
            }
        };
        vec![
            custom("spread", &[("in", 4)], spread).with_policy(EdgePolicy::All),
            NodeSpec::builtin("wide", "spread", Builtin::Max { n: 3 }),
        ]
    }
    // `wide` reads `latest`: once per run, as a wave after the batch would.
    check_columnar_matches_per_sample(make, &["spread"], None);
    let (mut graph, _clock) = graph();
    graph.register_all(make()).unwrap();
    let values: Vec<f64> = (0..5000).map(|i| f64::from(i % 90)).collect();
    graph.push_numbers("in", Keys::Many(&vec!["k"; 5000]), &values, None);
    graph.run_wave();
    let spread = &graph.nodes()[0];
    assert_eq!(
        (spread.stats.evaluations, spread.stats.batches),
        (5000, 2),
        "one key given per value is one run: a batch per 4,096-sample chunk"
    );
}

#[test]
fn a_latest_reader_of_a_batched_all_stream_runs_once_and_counts_the_rest() {
    let (mut graph, _clock) = graph();
    graph
        .register_all(vec![
            NodeSpec::builtin("every", "in", Builtin::Scale { a: 1.0, b: 0.0 })
                .with_policy(EdgePolicy::All),
            NodeSpec::builtin("newest", "in", Builtin::Scale { a: 2.0, b: 0.0 }),
        ])
        .unwrap();
    graph.push_numbers("in", Keys::One("k"), &[1.0, 2.0, 3.0], None);
    graph.run_wave();
    let nodes = graph.nodes();
    assert_eq!(
        (nodes[0].stats.evaluations, nodes[0].stats.conflated),
        (3, 0)
    );
    assert_eq!(
        (nodes[1].stats.evaluations, nodes[1].stats.conflated),
        (1, 2)
    );
    assert_eq!(latest_f64(&graph, "newest", "k"), Some(6.0));
    assert_eq!(
        graph.window("every", "k", 3).unwrap().numbers(),
        &[1.0, 2.0, 3.0]
    );
}

fn restart_twin(clock: &ManualClock) -> Graph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    let hold = ConstraintSpec {
        reset: Some(75.0),
        hold_ns: 5 * SECOND,
        stale_after_ns: Some(60 * SECOND),
        ..ConstraintSpec::above(80.0)
    };
    graph
        .register_all(vec![
            NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 3 }),
            NodeSpec::builtin("smooth", "temp", Builtin::Ewma { alpha: 0.3 }),
            NodeSpec::constraint("hot", "avg", hold),
            custom("fragile", &[("temp", 1)], |_, w| {
                if w[0][0] > 90.0 {
                    Outcome::Failed(Arc::from("too hot to handle"))
                } else {
                    Outcome::Output(Value::Float(w[0][0]))
                }
            }),
        ])
        .unwrap();
    graph
}

#[test]
fn exported_state_restores_readings_windows_errors_and_timers() {
    let clock = ManualClock::new(1_000 * SECOND);
    let mut before = restart_twin(&clock);
    for (i, (key, value)) in [
        ("a", 70.0),
        ("b", 10.0),
        ("a", 95.0),
        ("a", 96.0),
        ("b", 12.0),
        ("a", 97.0),
    ]
    .iter()
    .enumerate()
    {
        before
            .push("temp", key, Value::Float(*value), Some(i as i64 * SECOND))
            .unwrap();
        before.run_wave();
    }
    before
        .push("notes", "a", Value::from("door open"), Some(7))
        .unwrap();
    // "hot" for key a is holding (for = 5 s), not tripped yet; "fragile" failed for a.
    assert_eq!(
        before
            .latest("hot", "a")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value,
        Value::from("ok")
    );
    let state = before.export_state();

    let mut after = restart_twin(&clock);
    let skipped = after.import_state(&state);
    assert_eq!(
        skipped,
        vec!["notes".to_string()],
        "a stream the new graph lacks is reported, not invented"
    );
    for (name, key) in [
        ("temp", "a"),
        ("temp", "b"),
        ("avg", "a"),
        ("smooth", "a"),
        ("hot", "a"),
        ("fragile", "a"),
        ("fragile", "b"),
    ] {
        assert_eq!(
            after.latest(name, key).unwrap(),
            before.latest(name, key).unwrap(),
            "{name}/{key}"
        );
        let values = |g: &Graph| {
            let w = g.window(name, key, 8).unwrap();
            (0..w.len()).map(|i| w.value(i)).collect::<Vec<_>>()
        };
        assert_eq!(values(&after), values(&before), "{name}/{key} window");
    }
    assert!(
        after
            .latest("fragile", "a")
            .unwrap()
            .unwrap()
            .error
            .is_some(),
        "error states survive"
    );
    // Both graphs go on identically: the hold timer trips both, new samples
    // continue the same sequence numbers and the same ewma.
    for graph in [&mut before, &mut after] {
        graph
            .push("temp", "a", Value::Float(98.0), Some(10 * SECOND))
            .unwrap();
        graph.run_wave();
    }
    clock.advance(6 * SECOND);
    before.tick();
    after.tick();
    for (name, key) in [("temp", "a"), ("avg", "a"), ("smooth", "a"), ("hot", "a")] {
        assert_eq!(
            after.latest(name, key).unwrap(),
            before.latest(name, key).unwrap(),
            "{name}/{key} after"
        );
    }
    assert_eq!(
        after
            .latest("hot", "a")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value,
        Value::from("tripped")
    );
}
