//! `push_series` (rows naming interned (stream, key) pairs, as the parse
//! workers build them) against `push_records` (the same samples one by one):
//! the same report, rejections, readings, windows and counters, whatever
//! each sample meets (bounds, key limits, late samples, refused streams).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::borrow::Cow;
use std::sync::Arc;

use dav2d_core::{
    BatchReport, Bounds, Builtin, Graph, GraphOptions, LatePolicy, Limits, ManualClock, NodeSpec,
    RejectReason, SampleIn, SeriesRow, SubscriptionMode, Value, ValueType,
};

use common::SECOND;

fn twin() -> Graph {
    let options = GraphOptions {
        limits: Limits {
            max_keys: 100,
            ..Limits::default()
        },
        ..GraphOptions::default()
    };
    let mut graph = Graph::new(options, Arc::new(ManualClock::new(1_000 * SECOND)));
    let bounds = Bounds {
        min: Some(0.0),
        max: Some(100.0),
        finite_only: true,
    };
    graph.declare_stream("temp", bounds, None).unwrap();
    graph.set_late_policy("temp", LatePolicy::Drop).unwrap();
    // A stream that refuses every float.
    graph.declare_type("label", ValueType::String).unwrap();
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 4 },
        ))
        .unwrap();
    graph
}

type Sample = (&'static str, String, f64, Option<i64>);

/// Samples meeting every check: good ones, out of bounds, more keys than
/// allowed, late, a node's output stream, an auto-created stream, a stream
/// whose type refuses numbers.
fn samples() -> Vec<Sample> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..5_000)
        .map(|i| {
            let r = next();
            let stream = match r % 50 {
                0 => "avg",
                1 => "other",
                2 => "label",
                _ => "temp",
            };
            let key = format!("k{}", next() % 60);
            let value = match r % 37 {
                0 => 150.0,
                1 => f64::NAN,
                _ => (next() % 1000) as f64 / 10.0,
            };
            let ts = match r % 11 {
                0 => None,
                1 => Some(i64::from(i) * SECOND - 50 * SECOND),
                _ => Some(i64::from(i) * SECOND),
            };
            (stream, key, value, ts)
        })
        .collect()
}

#[test]
fn series_rows_apply_as_the_same_samples_one_by_one() {
    check_series_against_records(false);
}

#[test]
fn series_rows_seen_by_a_subscriber_apply_in_body_order() {
    check_series_against_records(true);
}

/// `push_series` against `push_records` on twin graphs; with `subscribed`,
/// a subscriber on `temp` sees every sample, and must see them in body
/// order (applying a series' rows together would change it).
fn check_series_against_records(subscribed: bool) {
    let samples = samples();
    let mut one_by_one = twin();
    let mut interned = twin();
    let subscriptions = subscribed.then(|| {
        let mode = SubscriptionMode::EveryChange;
        (
            one_by_one.subscribe("temp", mode, 1 << 20).unwrap(),
            interned.subscribe("temp", mode, 1 << 20).unwrap(),
        )
    });
    let mut report_a = BatchReport::default();
    one_by_one.push_records(
        samples
            .iter()
            .enumerate()
            .map(|(index, (s, k, v, ts))| SampleIn {
                index: 100 + index,
                stream: s,
                key: k,
                value: Value::Float(*v),
                ts_ns: *ts,
            }),
        &mut report_a,
    );
    one_by_one.run_wave();

    // The same samples as rows of interned pairs, in two calls (the
    // engine's lock holds), the second from where the first stopped.
    let mut series: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    let rows: Vec<SeriesRow> = samples
        .iter()
        .enumerate()
        .map(|(index, (s, k, v, ts))| {
            let pair = (Cow::Borrowed(*s), Cow::Borrowed(k.as_str()));
            let number = match series.iter().position(|p| *p == pair) {
                Some(number) => number,
                None => {
                    series.push(pair);
                    series.len() - 1
                }
            };
            SeriesRow {
                index: index as u32,
                series: number as u32,
                value: *v,
                ts_ns: *ts,
            }
        })
        .collect();
    let mut report_b = BatchReport::default();
    interned.push_series(&series, &rows[..1234], 100, &mut report_b);
    interned.push_series(&series, &rows[1234..], 100, &mut report_b);
    interned.run_wave();

    assert!(report_a.rejected > 500, "the samples meet every check");
    assert!(report_a.accepted > 2500);
    assert_eq!(report_a.accepted, report_b.accepted);
    assert_eq!(report_a.rejected, report_b.rejected);
    // Compared as written: a NaN in a rejection is never equal to itself.
    assert!(format!("{:?}", report_a.errors) == format!("{:?}", report_b.errors));
    assert_eq!(report_a.by_reason, report_b.by_reason);
    for reason in [
        RejectReason::TypeMismatch,
        RejectReason::AboveMax,
        RejectReason::NotFinite,
        RejectReason::Late,
    ] {
        assert!(
            report_b
                .by_reason
                .iter()
                .any(|(r, n)| *r == reason && *n > 0),
            "{reason:?} is among the rejections: {:?}",
            report_b.by_reason
        );
    }
    assert_eq!(report_b.error, None);
    let (a, b) = (one_by_one.stats(), interned.stats());
    assert_eq!(
        (a.samples_in, a.accepted, a.rejected, a.late),
        (b.samples_in, b.accepted, b.rejected, b.late)
    );
    if let Some((a, b)) = subscriptions {
        let drain = |s: &dav2d_core::Subscription| {
            std::iter::from_fn(|| s.try_next())
                .map(|u| format!("{} {:?} {}", u.key, u.value, u.ts_ns))
                .collect::<Vec<_>>()
        };
        let (seen_a, seen_b) = (drain(&a), drain(&b));
        assert!(
            seen_a.len() > 2500,
            "every accepted sample: {}",
            seen_a.len()
        );
        assert_eq!(
            seen_a, seen_b,
            "the subscriber sees the same samples in the same order"
        );
    }
    for key in (0..60).map(|k| format!("k{k}")) {
        for name in ["temp", "avg", "other"] {
            // As written, for the NaNs of the stream without bounds.
            let show = |g: &Graph| {
                format!(
                    "{:?} {:?}",
                    g.latest(name, &key).ok(),
                    g.window(name, &key, 8).map(|w| w.numbers().to_vec()).ok()
                )
            };
            assert_eq!(show(&one_by_one), show(&interned), "{name}/{key}");
        }
    }
}

#[test]
fn a_row_naming_no_series_is_skipped_and_named() {
    let mut graph = twin();
    let series = [(Cow::Borrowed("temp"), Cow::Borrowed("a"))];
    let rows = [
        SeriesRow {
            index: 0,
            series: 0,
            value: 1.0,
            ts_ns: None,
        },
        SeriesRow {
            index: 1,
            series: 7,
            value: 2.0,
            ts_ns: None,
        },
    ];
    let mut report = BatchReport::default();
    graph.push_series(&series, &rows, 0, &mut report);
    assert_eq!(report.accepted, 1);
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("sample 1 names series 7")),
        "{:?}",
        report.error
    );
}
