//! Node windows from YAML (`window: 30s` on event time, `window: 16`,
//! `max_samples`) and `kind: python` nodes, which this Rust process (no
//! Python in it) refuses at their line with what to run instead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::Path;
use std::sync::Arc;

use dav2d_core::{Graph, GraphOptions, ManualClock, Value};
use dav2d_runtime::Config;

const S: i64 = 1_000_000_000;

fn graph_of(yaml: &str) -> Result<Graph, String> {
    let options = GraphOptions {
        auto_create_streams: false,
        ..GraphOptions::default()
    };
    let mut graph = Graph::new(options, Arc::new(ManualClock::new(0)));
    Config::parse(yaml, Path::new("w.yaml"))
        .and_then(|config| config.build(&mut graph))
        .map(|()| graph)
        .map_err(|error| error.to_string())
}

fn latest(graph: &Graph, name: &str, key: &str) -> Option<f64> {
    graph
        .latest(name, key)
        .unwrap()
        .and_then(|r| r.sample)
        .and_then(|s| s.value.as_f64())
}

#[test]
fn built_ins_over_a_duration_and_a_count_from_yaml() {
    let mut graph = graph_of(
        "streams:\n  - name: temp\nnodes:\n\
         \x20 - name: avg\n    kind: moving_average\n    input: temp\n    window: 30s\n\
         \x20 - name: peak\n    kind: max\n    input: temp\n    window: 1m\n    max_samples: 2\n\
         \x20 - name: last3\n    kind: sum\n    input: temp\n    window: 3\n\
         \x20 - name: per_s\n    kind: rate\n    input: temp\n    window: 10s\n",
    )
    .unwrap();
    for (at, value) in [(0, 10.0), (10, 20.0), (20, 30.0), (40, 50.0)] {
        graph
            .push("temp", "k", Value::Float(value), Some(at * S))
            .unwrap();
        graph.run_wave();
    }
    assert_eq!(latest(&graph, "avg", "k"), Some(40.0));
    assert_eq!(latest(&graph, "peak", "k"), Some(50.0));
    assert_eq!(latest(&graph, "last3", "k"), Some(100.0));
    assert_eq!(latest(&graph, "per_s", "k"), None);
    let peak = graph
        .nodes()
        .into_iter()
        .find(|n| n.name == "peak")
        .unwrap();
    // Three and then four samples within the minute; two are kept.
    assert_eq!(peak.stats.window_overflow, 2);
    assert!(peak.logic.ends_with("over 1m"), "{}", peak.logic);
    assert_eq!(peak.inputs[0].span_ns, Some(60 * S));
    assert_eq!(peak.inputs[0].window, 2);
}

#[test]
fn a_bad_window_is_located_and_says_what_to_write() {
    let node = |extra: &str| {
        format!(
            "streams:\n  - name: t\nnodes:\n  - name: a\n    kind: moving_average\n    input: t\n{extra}"
        )
    };
    let cases = [
        (
            node("    window: soon\n"),
            "w.yaml:7:13: nodes[0].window: 'soon' is not a duration",
        ),
        (
            node("    window: 0s\n"),
            "w.yaml:7:13: nodes[0].window: a time window must be longer than 0",
        ),
        (
            node("    window: 0\n"),
            "w.yaml:7:13: nodes[0].window: a window of 0 samples",
        ),
        (
            node("    n: 4\n    window: 30s\n"),
            "w.yaml:8:13: nodes[0].window: give `n` or `window` to moving_average, not both",
        ),
        (
            node("    window: 30s\n    max_samples: 0\n"),
            "w.yaml:8:18: nodes[0].max_samples: max_samples must be a whole number from 1",
        ),
        (
            node("    n: 4\n    max_samples: 10\n"),
            "w.yaml:8:18: nodes[0].max_samples: max_samples caps a time window",
        ),
        (
            "streams:\n  - name: t\nnodes:\n  - name: e\n    kind: ewma\n    alpha: 0.5\n    input: t\n    window: 30s\n".to_string(),
            "w.yaml:8:13: nodes[0].window: ewma reads only the newest sample; remove `window`",
        ),
        (
            node("    logic: m:f\n"),
            "w.yaml:7:12: nodes[0].logic: `logic` is for `kind: python` nodes",
        ),
        (
            "streams:\n  - name: t\n  - name: u\nnodes:\n  - name: a\n    kind: max\n    n: 2\n    inputs: [t, u]\n".to_string(),
            "w.yaml:8:17: nodes[0].inputs[1]: max reads one input; only `kind: python` nodes read several",
        ),
    ];
    for (yaml, expected) in cases {
        let error = graph_of(&yaml).map(|_| ()).expect_err("an error");
        assert!(
            error.starts_with(expected),
            "got {error}\nexpected {expected}\nfor\n{yaml}"
        );
    }
}

#[test]
fn a_python_node_is_refused_where_no_python_runs_it() {
    let yaml = "streams:\n  - name: t\nnodes:\n  - name: p\n    kind: python\n    logic: plant:smooth\n    input: t\n";
    let error = graph_of(yaml).map(|_| ()).expect_err("an error");
    assert!(
        error.starts_with("w.yaml:6:12: nodes[0].logic: kind: python runs a Python function"),
        "{error}"
    );
    assert!(error.contains("pip install dav2d"), "{error}");
    let yaml = "streams:\n  - name: t\nnodes:\n  - name: p\n    kind: python\n    input: t\n";
    let error = graph_of(yaml).map(|_| ()).expect_err("an error");
    assert!(
        error.starts_with(
            "w.yaml:5:11: nodes[0].logic: kind: python needs `logic: module:function`"
        ),
        "{error}"
    );
}
