//! Pushing numbers whose (stream, key) pairs were interned before they
//! reached the engine: a parser groups a batch's samples by series and hands
//! over rows that name their series by number, so the engine resolves each
//! series once per call instead of hashing a key per sample.

use std::borrow::Cow;

use super::Graph;
use super::ingest::{BatchReport, check_number};
use crate::error::Rejection;
use crate::ids::StreamId;
use crate::spec::Bounds;
use crate::value::Value;

/// One number of an interned batch: which of the batch's series it belongs
/// to, and where it stands in the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesRow {
    /// Position in the batch, counted from the batch's first index.
    pub index: u32,
    /// The row's (stream, key): an index into the batch's series.
    pub series: u32,
    /// The value.
    pub value: f64,
    /// Timestamp in ns; the clock's now when absent.
    pub ts_ns: Option<i64>,
}

/// A series as resolved within one call.
#[derive(Clone)]
enum Resolved {
    Unresolved,
    /// Its stream is known; its key is admitted with its first value that
    /// passes the stream's bounds, as `push_to` admits it.
    Stream(StreamId, FloatCheck),
    Slot(StreamId, u32, FloatCheck),
    /// Its key was refused (refusals only grow within a call: keys, windows
    /// and streams are never given back while samples are pushed).
    KeyRefused(StreamId, Rejection),
    /// Its stream was refused.
    StreamRefused(Rejection),
}

/// What a float must pass on its stream, found once per series and call
/// (a stream's bounds and type do not change while samples are pushed).
#[derive(Clone, Copy)]
enum FloatCheck {
    /// The stream takes any float.
    Any,
    /// The stream's numeric bounds.
    Bounds(Bounds),
    /// The stream refuses floats: [`Graph::check_bounds`] says why.
    Refused,
}

impl Graph {
    fn float_check(&self, stream: StreamId) -> FloatCheck {
        let bounds = self.streams[stream.index()].bounds;
        if bounds.is_numeric() {
            FloatCheck::Bounds(bounds)
        } else if self.value_type(stream).accepts(&Value::Float(0.0)) {
            FloatCheck::Any
        } else {
            FloatCheck::Refused
        }
    }

    /// Pushes `rows`, each naming its (stream, key) by an index into
    /// `series`, in order, exactly as [`Graph::push_records`] pushes the
    /// same samples one by one (the same checks, in the same order, with
    /// the same rejections), but looking each series up once per call.
    /// A row's position in the report is `first_index` plus its `index`.
    /// A row naming no series is skipped and named in `report.error`.
    pub fn push_series(
        &mut self,
        series: &[(Cow<'_, str>, Cow<'_, str>)],
        rows: &[SeriesRow],
        first_index: usize,
        report: &mut BatchReport,
    ) {
        let now = self.clock.now_ns();
        let mut resolved = vec![Resolved::Unresolved; series.len()];
        let mut last_stream: Option<(&str, Result<StreamId, Rejection>)> = None;
        for row in rows {
            let index = first_index + row.index as usize;
            let Some((stream, key)) = series.get(row.series as usize) else {
                report.error = Some(format!(
                    "sample {index} names series {} of a batch of {}; it was skipped",
                    row.series,
                    series.len()
                ));
                continue;
            };
            let entry = &mut resolved[row.series as usize];
            if let Resolved::Unresolved = entry {
                let id = match &last_stream {
                    Some((name, id)) if *name == &**stream => id.clone(),
                    _ => {
                        let id = self.input_stream(stream);
                        last_stream = Some((stream, id.clone()));
                        id
                    }
                };
                *entry = match id {
                    Ok(id) => Resolved::Stream(id, self.float_check(id)),
                    Err(rejection) => Resolved::StreamRefused(rejection),
                };
            }
            let (id, check) = match entry {
                Resolved::StreamRefused(rejection) => {
                    let rejection = self.reject(None, rejection.clone());
                    report.push_rejection(index, rejection);
                    continue;
                }
                Resolved::Stream(id, check) | Resolved::Slot(id, _, check) => (*id, *check),
                Resolved::KeyRefused(id, _) => (*id, self.float_check(*id)),
                Resolved::Unresolved => continue,
            };
            // `input_stream` refused streams that nodes write, and a float
            // holds no heap bytes: of `push_to`'s checks, the bounds remain.
            let checked = match check {
                FloatCheck::Any => Ok(()),
                FloatCheck::Bounds(bounds) => {
                    check_number(&self.streams[id.index()].name, bounds, row.value)
                }
                FloatCheck::Refused => self.check_bounds(id, &Value::Float(row.value)),
            };
            if let Err(rejection) = checked {
                let rejection = self.reject(Some(id), rejection);
                report.push_rejection(index, rejection);
                continue;
            }
            let entry = &mut resolved[row.series as usize];
            if let Resolved::Stream(id, check) = *entry {
                *entry = match self.admit_key(id, key) {
                    Ok(slot) => Resolved::Slot(id, slot, check),
                    Err(rejection) => Resolved::KeyRefused(id, rejection),
                };
            }
            match &resolved[row.series as usize] {
                Resolved::Slot(id, slot, _) => {
                    let ts = row.ts_ns.unwrap_or(now);
                    self.apply_float_arriving(*id, *slot, ts, row.value, index, report);
                }
                Resolved::KeyRefused(id, rejection) => {
                    let rejection = self.reject(Some(*id), rejection.clone());
                    report.push_rejection(index, rejection);
                }
                _ => {}
            }
        }
    }
}
