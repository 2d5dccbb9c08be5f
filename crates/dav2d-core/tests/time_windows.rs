//! Time windows: built-ins and custom logic over the last duration of event
//! time, capped with the overflow counted, alike on the per-sample and the
//! batch paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{SECOND, custom, graph, latest_f64};
use dav2d_core::{
    Builtin, DEFAULT_SPAN_SAMPLES, EdgePolicy, InputSpec, Keys, NodeSpec, Outcome,
    SubscriptionMode, Value,
};

fn moving_average_over(seconds: i64) -> NodeSpec {
    let builtin =
        Builtin::from_params_in("moving_average", &[], Some(DEFAULT_SPAN_SAMPLES)).unwrap();
    NodeSpec::builtin("avg", "x", builtin).with_span(seconds * SECOND, DEFAULT_SPAN_SAMPLES)
}

#[test]
fn a_builtin_over_a_duration_sees_the_samples_of_that_much_event_time() {
    let (mut g, _clock) = graph();
    g.register(moving_average_over(30)).unwrap();
    for (at, value) in [(0, 10.0), (10, 20.0), (20, 30.0), (40, 50.0)] {
        g.push("x", "k", Value::Float(value), Some(at * SECOND))
            .unwrap();
        g.run_wave();
    }
    // (10 s, 40 s]: the samples at 20 and 40 s.
    assert_eq!(latest_f64(&g, "avg", "k"), Some(40.0));
    let info = g.nodes().into_iter().find(|n| n.name == "avg").unwrap();
    assert!(info.logic.ends_with("over 30s"), "{}", info.logic);
    assert_eq!(info.stats.window_overflow, 0);
}

#[test]
fn rate_and_delta_over_a_duration_span_the_window_ends() {
    let (mut g, _clock) = graph();
    let rate = Builtin::from_params("rate", &[]).unwrap();
    let delta = Builtin::from_params("delta", &[]).unwrap();
    g.register(NodeSpec::builtin("rate", "x", rate).with_span(10 * SECOND, 100))
        .unwrap();
    g.register(NodeSpec::builtin("delta", "x", delta).with_span(10 * SECOND, 100))
        .unwrap();
    for (at, value) in [(0, 0.0), (4, 4.0), (8, 16.0), (12, 20.0)] {
        g.push("x", "k", Value::Float(value), Some(at * SECOND))
            .unwrap();
        g.run_wave();
    }
    // (2 s, 12 s]: from 4.0 at 4 s to 20.0 at 12 s.
    assert_eq!(latest_f64(&g, "rate", "k"), Some(2.0));
    assert_eq!(latest_f64(&g, "delta", "k"), Some(16.0));
    // The count-window built-ins still read the two newest samples.
    let (mut g, _clock) = graph();
    g.register(NodeSpec::builtin("rate", "x", rate)).unwrap();
    for (at, value) in [(0, 0.0), (4, 4.0), (8, 16.0)] {
        g.push("x", "k", Value::Float(value), Some(at * SECOND))
            .unwrap();
        g.run_wave();
    }
    assert_eq!(latest_f64(&g, "rate", "k"), Some(3.0));
}

#[test]
fn a_capped_time_window_keeps_the_newest_and_counts_each_cut() {
    let (mut g, _clock) = graph();
    let mut sizes = Vec::new();
    let spy = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&spy);
    let spec = custom("n", &[("x", 1)], move |_, windows| {
        seen.lock().unwrap().push(windows[0].clone());
        Outcome::Output(Value::Float(windows[0].len() as f64))
    })
    .with_span(60 * SECOND, 3)
    .with_policy(EdgePolicy::All);
    g.register(spec).unwrap();
    for i in 0..6 {
        g.push("x", "k", Value::Float(i as f64), Some(i * SECOND))
            .unwrap();
        g.run_wave();
    }
    for window in spy.lock().unwrap().iter() {
        sizes.push(window.len());
    }
    assert_eq!(sizes, [1, 2, 3, 3, 3, 3]);
    assert_eq!(spy.lock().unwrap().last().unwrap(), &[3.0, 4.0, 5.0]);
    let info = g.nodes().into_iter().find(|n| n.name == "n").unwrap();
    assert_eq!(info.stats.window_overflow, 3);
}

#[test]
fn a_batch_of_numbers_gives_what_one_sample_at_a_time_gives() {
    let ts: Vec<i64> = (0..500).map(|i| i * SECOND / 4).collect();
    let values: Vec<f64> = (0..500).map(|i| ((i * 37) % 101) as f64).collect();
    let mut results = Vec::new();
    for batched in [false, true] {
        let (mut g, _clock) = graph();
        let max = Builtin::from_params_in("max", &[], Some(64)).unwrap();
        let spec = NodeSpec::builtin("peak", "x", max)
            .with_span(5 * SECOND, 64)
            .with_policy(EdgePolicy::All);
        g.register(spec).unwrap();
        let outputs = g
            .subscribe("peak", SubscriptionMode::EveryChange, 10_000)
            .unwrap();
        if batched {
            g.push_numbers("x", Keys::One("k"), &values, Some(&ts));
            g.run_wave();
        } else {
            for (&t, &v) in ts.iter().zip(&values) {
                g.push("x", "k", Value::Float(v), Some(t)).unwrap();
                g.run_wave();
            }
        }
        let seen: Vec<f64> = std::iter::from_fn(|| outputs.try_next())
            .filter_map(|u| u.value.and_then(|v| v.as_f64()))
            .collect();
        results.push(seen);
    }
    assert!(!results[0].is_empty());
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_bad_time_window_is_refused_with_its_reason() {
    let (mut g, _clock) = graph();
    let spec = custom("a", &[], |_, _| Outcome::Skip);
    let mut zero = spec;
    zero.inputs = vec![InputSpec::over("x", 0, 10)];
    let error = g.register(zero).unwrap_err().to_string();
    assert!(error.contains("longer than 0"), "{error}");
    let mut uncapped = custom("b", &[], |_, _| Outcome::Skip);
    uncapped.inputs = vec![InputSpec::over("x", SECOND, 0)];
    let error = g.register(uncapped).unwrap_err().to_string();
    assert!(error.contains("max_samples"), "{error}");
}
