//! The engine's limits: keys per stream and in total, key and stream-name
//! length, streams, value size and retained bytes. Each refusal carries its
//! reason and is counted, and the samples beside it are applied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use dav2d_core::{Graph, GraphOptions, Keys, Limits, ManualClock, RejectReason, SampleIn, Value};

fn limited(limits: Limits) -> Graph {
    let options = GraphOptions {
        limits,
        ..GraphOptions::default()
    };
    Graph::new(options, Arc::new(ManualClock::new(1)))
}

fn sample<'a>(index: usize, stream: &'a str, key: &'a str) -> SampleIn<'a> {
    SampleIn {
        index,
        stream,
        key,
        value: Value::Float(1.0),
        ts_ns: None,
    }
}

fn rejected(graph: &Graph, reason: RejectReason) -> u64 {
    graph
        .stats()
        .rejected_by_reason
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

#[test]
fn keys_per_stream_are_bounded_and_known_keys_still_update() {
    let mut graph = limited(Limits {
        max_keys_per_stream: 3,
        ..Limits::default()
    });
    let keys = ["a", "b", "c", "d", "e", "a"];
    let report = graph.push_numbers(
        "s",
        Keys::Many(&keys),
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        None,
    );
    assert_eq!(report.accepted, 4, "a, b, c and a again: {report:?}");
    assert_eq!(report.rejected, 2);
    assert_eq!(report.errors[0].0, 3);
    assert_eq!(report.errors[0].1.reason(), RejectReason::TooManyKeys);
    assert!(
        report.errors[0]
            .1
            .to_string()
            .contains("3 keys on this stream"),
        "{}",
        report.errors[0].1
    );
    // Another stream has its own allowance.
    graph.push("t", "d", Value::Float(1.0), None).unwrap();
    graph.run_wave();
    assert_eq!(common::latest_f64(&graph, "s", "a"), Some(6.0));
    assert_eq!(rejected(&graph, RejectReason::TooManyKeys), 2);
}

#[test]
fn keys_in_total_are_bounded_over_every_stream() {
    let mut graph = limited(Limits {
        max_keys: 2,
        ..Limits::default()
    });
    graph.push("s", "a", Value::Float(1.0), None).unwrap();
    graph.push("t", "a", Value::Float(1.0), None).unwrap();
    let refused = graph.push("u", "a", Value::Float(1.0), None).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::TooManyKeys);
    assert!(
        refused.to_string().contains("over all streams"),
        "{refused}"
    );
    // The columnar path (one key, many numbers) is bounded too.
    let report = graph.push_numbers("v", Keys::One("k"), &[1.0, 2.0, 3.0], None);
    assert_eq!((report.accepted, report.rejected), (0, 3));
    assert_eq!(rejected(&graph, RejectReason::TooManyKeys), 4);
}

#[test]
fn long_keys_and_names_and_too_many_streams_are_refused() {
    let mut graph = limited(Limits {
        max_key_len: 8,
        max_name_len: 5,
        max_streams: 2,
        ..Limits::default()
    });
    let long_key = "k".repeat(9);
    let records = vec![
        sample(0, "s", "ok"),
        sample(1, "s", &long_key),
        sample(2, "stream", "ok"),
        sample(3, "t", "ok"),
        sample(4, "u", "ok"),
    ];
    let mut report = dav2d_core::BatchReport::default();
    graph.push_records(records, &mut report);
    assert_eq!(report.accepted, 2, "{report:?}");
    let reasons: Vec<_> = report
        .errors
        .iter()
        .map(|(i, r)| (*i, r.reason()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, RejectReason::KeyTooLong),
            (2, RejectReason::NameTooLong),
            (4, RejectReason::TooManyStreams),
        ]
    );
    assert_eq!(graph.streams().len(), 2);
}

#[test]
fn values_are_bounded_one_by_one_and_together() {
    let mut graph = limited(Limits {
        max_value_bytes: 100,
        max_retained_bytes: 250,
        ..Limits::default()
    });
    graph
        .declare_stream("s", Default::default(), Some(2))
        .unwrap();
    let big = Value::from("x".repeat(101).as_str());
    let err = graph.push("s", "a", big, None).unwrap_err();
    assert_eq!(err.reason(), RejectReason::ValueTooLarge);
    let hundred = || Value::from("y".repeat(100).as_str());
    graph.push("s", "a", hundred(), None).unwrap();
    graph.push("s", "b", hundred(), None).unwrap();
    let full = graph.push("s", "c", hundred(), None).unwrap_err();
    assert_eq!(full.reason(), RejectReason::RetainedFull);
    // Numbers hold no bytes and still pass.
    graph.push("s", "c", Value::Float(1.0), None).unwrap();
    // A key keeps 4 samples (the default): four numbers on `a` evict its
    // string and free its bytes.
    for v in 0..4 {
        graph
            .push("s", "a", Value::Float(f64::from(v)), None)
            .unwrap();
    }
    graph.push("s", "c", hundred(), None).unwrap();
    assert_eq!(rejected(&graph, RejectReason::ValueTooLarge), 1);
    assert_eq!(rejected(&graph, RejectReason::RetainedFull), 1);
}

#[test]
fn limits_are_set_by_name_within_their_bounds() {
    let mut limits = Limits::default();
    limits.set("keys", 10).unwrap();
    assert_eq!(limits.max_keys, 10);
    for (name, _, _) in Limits::FIELDS {
        assert!(limits.set(name, 1).is_ok(), "{name}");
    }
    let zero = limits.set("keys", 0).unwrap_err();
    assert!(zero.contains("between 1 and"), "{zero}");
    let huge = limits.set("keys", usize::MAX).unwrap_err();
    assert!(huge.contains("between 1 and"), "{huge}");
    let unknown = limits.set("keyz", 1).unwrap_err();
    assert!(unknown.contains("did you mean 'keys'"), "{unknown}");
}

#[test]
fn windows_are_bounded_by_their_bytes_and_new_keys_past_them_refused() {
    // A window of 1,000 samples is 32,000 bytes a key: room for 10 keys.
    let per_key = 1000 * dav2d_core::WINDOW_SAMPLE_BYTES;
    let mut graph = limited(Limits {
        max_window_bytes: 10 * per_key,
        ..Limits::default()
    });
    graph
        .declare_stream("s", dav2d_core::Bounds::default(), Some(1000))
        .unwrap();
    assert_eq!(graph.window_bytes_per_key(), per_key);
    let keys: Vec<String> = (0..15).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let report = graph.push_numbers("s", Keys::Many(&keys), &[1.0; 15], None);
    assert_eq!(report.accepted, 10, "{report:?}");
    assert_eq!(report.rejected, 5);
    assert_eq!(report.errors[0].1.reason(), RejectReason::WindowsFull);
    assert!(
        report.errors[0]
            .1
            .to_string()
            .contains("limits.window_bytes")
    );
    assert_eq!(rejected(&graph, RejectReason::WindowsFull), 5);
    assert_eq!(graph.window_bytes(), 10 * per_key);
    // Known keys still update.
    let report = graph.push_numbers("s", Keys::One("k3"), &[2.0], None);
    assert_eq!(report.accepted, 1);
}
