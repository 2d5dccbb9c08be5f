//! Ingest: resolving input streams, the type and bounds checks, pushing
//! samples (one, records, numbers), applying them and queueing consumers.

use std::sync::Arc;

use super::*;
use crate::constraint::Transition;
use crate::error::{GraphError, Rejection};
use crate::ids::StreamId;
use crate::value::{Value, ValueType};

/// How a sample stands against its key's latest.
pub(super) enum Arrival {
    /// At or after the latest: applied.
    InOrder,
    /// Late, within the allowed lateness: inserted into the window.
    Insert,
    /// Late past it: refused.
    Late(Rejection),
}

impl Graph {
    pub(super) fn input_stream(&mut self, name: &str) -> Result<StreamId, Rejection> {
        match self.stream_id(name) {
            Some(id) if self.streams[id.index()].producer.is_some() => Err(Rejection::NodeOutput {
                stream: name.to_string(),
            }),
            Some(id) => Ok(id),
            None if self.options.auto_create_streams && !name.is_empty() => {
                let limits = self.options.limits;
                let refused = |why: String, reason| Rejection::StreamRefused {
                    stream: name.chars().take(64).collect(),
                    why,
                    reason,
                };
                if name.len() > limits.max_name_len {
                    return Err(refused(
                        format!(
                            "a name of {} bytes is longer than the {} allowed (`limits.name_length`)",
                            name.len(),
                            limits.max_name_len
                        ),
                        RejectReason::NameTooLong,
                    ));
                }
                if self.streams.len() >= limits.max_streams {
                    return Err(refused(
                        format!(
                            "the graph has {} streams, the limit (`limits.streams`); declare the streams you use",
                            self.streams.len()
                        ),
                        RejectReason::TooManyStreams,
                    ));
                }
                Ok(self.add_stream(name, None, Bounds::default()))
            }
            None => Err(Rejection::UnknownStream {
                stream: name.to_string(),
                // Bounded work for a hostile name: no hint past 64 bytes.
                hint: if name.len() <= 64 {
                    crate::error::did_you_mean(name, self.streams.iter().map(|s| &*s.name))
                } else {
                    String::new()
                },
            }),
        }
    }

    pub(super) fn reject(&mut self, stream: Option<StreamId>, rejection: Rejection) -> Rejection {
        self.stats.samples_in += 1;
        self.stats.rejected += 1;
        *self
            .rejected_by_reason
            .entry(rejection.reason())
            .or_default() += 1;
        if let Some(stream) = stream {
            self.streams[stream.index()].rejected += 1;
        }
        rejection
    }

    /// The type `stream` takes: declared, or `number` when a numeric node
    /// reads it, else `any`.
    #[inline]
    pub(super) fn value_type(&self, stream: StreamId) -> ValueType {
        let s = &self.streams[stream.index()];
        match (s.declared_type, s.numeric_reader) {
            (Some(declared), _) => declared,
            (None, Some(_)) => ValueType::Number,
            (None, None) => ValueType::Any,
        }
    }

    /// The rejection of a `type_name` value on `stream`, saying why the
    /// stream takes what it takes (built only when a sample is refused).
    fn type_mismatch(&self, stream: StreamId, type_name: &'static str) -> Rejection {
        let s = &self.streams[stream.index()];
        let why = match (s.declared_type, s.numeric_reader) {
            (None, Some(node)) => format!(
                " (read by numeric node '{}')",
                self.nodes[node.index()].name
            ),
            _ => String::new(),
        };
        Rejection::TypeMismatch {
            stream: s.name.to_string(),
            expected: self.value_type(stream).as_str(),
            why,
            type_name,
        }
    }

    /// Declares the type of values `name` takes (creating the stream if it
    /// does not exist). A numeric node already reading it refuses a type
    /// other than `number` or `any`.
    pub fn declare_type(&mut self, name: &str, value_type: ValueType) -> Result<(), GraphError> {
        let id = match self.stream_id(name) {
            Some(id) => id,
            None => self.declare_stream(name, Bounds::default(), None)?,
        };
        let s = &self.streams[id.index()];
        if s.producer.is_some() {
            return Err(GraphError::InvalidStream {
                stream: name.to_string(),
                message: "the type of a node's output follows from its logic; declare the types of input streams".to_string(),
            });
        }
        if let Some(node) = s.numeric_reader
            && !matches!(value_type, ValueType::Number | ValueType::Any)
        {
            return Err(GraphError::Invalid {
                node: self.nodes[node.index()].name.to_string(),
                message: format!(
                    "it needs numbers, so stream '{name}' cannot take {} values",
                    value_type.as_str()
                ),
            });
        }
        self.streams[id.index()].declared_type = Some(value_type);
        self.republish_description();
        Ok(())
    }

    pub(super) fn check_bounds(&self, stream: StreamId, value: &Value) -> Result<(), Rejection> {
        let s = &self.streams[stream.index()];
        let bounds = s.bounds;
        if !bounds.is_numeric() {
            if !self.value_type(stream).accepts(value) {
                return Err(self.type_mismatch(stream, value.type_name()));
            }
            return Ok(());
        }
        let Some(v) = value.as_f64() else {
            return Err(Rejection::NotANumber {
                stream: s.name.to_string(),
                type_name: value.type_name(),
            });
        };
        check_number(&s.name, bounds, v)
    }

    /// Pushes one sample. `ts_ns` defaults to the clock's now. Evaluation
    /// happens on the next [`Graph::run_wave`].
    pub fn push(
        &mut self,
        stream: &str,
        key: &str,
        value: Value,
        ts_ns: Option<i64>,
    ) -> Result<(), Rejection> {
        let id = self
            .input_stream(stream)
            .map_err(|r| self.reject(None, r))?;
        self.push_to(id, key, value, ts_ns)
    }

    /// Pushes one sample to a stream by id.
    pub fn push_to(
        &mut self,
        stream: StreamId,
        key: &str,
        value: Value,
        ts_ns: Option<i64>,
    ) -> Result<(), Rejection> {
        if let Err(rejection) = self.check_bounds(stream, &value) {
            return Err(self.reject(Some(stream), rejection));
        }
        if self.streams[stream.index()].producer.is_some() {
            let rejection = Rejection::NodeOutput {
                stream: self.streams[stream.index()].name.to_string(),
            };
            return Err(self.reject(Some(stream), rejection));
        }
        let size = value.heap_size();
        if size > 0 {
            let limits = self.options.limits;
            let stream_name = || self.streams[stream.index()].name.to_string();
            if size > limits.max_value_bytes {
                let rejection = Rejection::ValueTooLarge {
                    stream: stream_name(),
                    size,
                    limit: limits.max_value_bytes,
                };
                return Err(self.reject(Some(stream), rejection));
            }
            if self.retained_bytes.saturating_add(size) > limits.max_retained_bytes {
                let rejection = Rejection::RetainedFull {
                    stream: stream_name(),
                    size,
                    limit: limits.max_retained_bytes,
                };
                return Err(self.reject(Some(stream), rejection));
            }
        }
        let slot = match self.admit_key(stream, key) {
            Ok(slot) => slot,
            Err(rejection) => return Err(self.reject(Some(stream), rejection)),
        };
        let ts = ts_ns.unwrap_or_else(|| self.clock.now_ns());
        match self.arrival(stream, slot, ts) {
            Arrival::InOrder => self.apply(stream, slot, ts, value),
            Arrival::Insert => self.insert_late(stream, slot, ts, value),
            Arrival::Late(rejection) => return Err(self.reject(Some(stream), rejection)),
        }
        Ok(())
    }

    /// Whether a sample at `ts` for (stream, slot) is in order, late but
    /// within the stream's allowed lateness, or refused as late.
    #[inline(always)]
    pub(super) fn arrival(&mut self, stream: StreamId, slot: u32, ts: i64) -> Arrival {
        let series = &self.streams[stream.index()].slots[slot as usize].series;
        match series.latest_ts() {
            Some(latest) if ts < latest => self.late_arrival(stream, slot, ts, latest),
            _ => Arrival::InOrder,
        }
    }

    /// [`Graph::arrival`] of a sample older than its key's `latest`.
    #[cold]
    fn late_arrival(&mut self, stream: StreamId, slot: u32, ts: i64, latest: i64) -> Arrival {
        let s = &self.streams[stream.index()];
        let slot_ref = &s.slots[slot as usize];
        self.stats.late += 1;
        let behind_ns = latest.saturating_sub(ts);
        let policy = match s.late {
            LatePolicy::Insert { allowed_ns } if behind_ns <= allowed_ns => return Arrival::Insert,
            LatePolicy::Insert { allowed_ns } => format!(
                "past the stream's allowed lateness of {:.3} s, so it is dropped",
                allowed_ns as f64 / 1e9
            ),
            LatePolicy::Drop => "the stream drops late samples (`late: insert` with `allowed_lateness` keeps them in windows)".to_string(),
        };
        Arrival::Late(Rejection::Late {
            stream: s.name.to_string(),
            key: self.keys[slot_ref.key.index()].chars().take(64).collect(),
            ts,
            latest,
            behind_ns,
            policy,
        })
    }

    /// Puts a late sample into its key's window in timestamp order (the
    /// latest stays the latest) and wakes the `latest`-edge readers.
    pub(super) fn insert_late(&mut self, stream: StreamId, slot: u32, ts: i64, value: Value) {
        let s = &mut self.streams[stream.index()];
        s.accepted += 1;
        self.stats.samples_in += 1;
        self.stats.accepted += 1;
        let series = &mut s.slots[slot as usize].series;
        let before = series.value_bytes;
        let mut samples = series.held_samples();
        let at = samples.partition_point(|(held, _)| *held <= ts);
        samples.insert(at, (ts, value));
        let count = series.count + 1;
        series.restore(count, &samples);
        let after = series.value_bytes;
        self.account_retained(before, after);
        self.mark_changed(stream, slot);
        for consumer in 0..self.streams[stream.index()].consumers.len() {
            if self.streams[stream.index()].consumers[consumer].policy == EdgePolicy::Latest {
                self.mark_consumer(stream, slot, consumer);
            }
        }
    }

    /// Pushes records of any streams, keys and value types, in order. Each
    /// record carries its index in the original batch, so rejections can be
    /// reported against it; good records are applied beside rejected ones.
    /// Evaluation happens on the next [`Graph::run_wave`].
    pub fn push_records<'a>(
        &mut self,
        records: impl IntoIterator<Item = SampleIn<'a>>,
        report: &mut BatchReport,
    ) {
        let now = self.clock.now_ns();
        let mut cached: Option<(&'a str, Result<StreamId, Rejection>)> = None;
        for record in records {
            let stream = match &cached {
                Some((name, resolved)) if *name == record.stream => resolved.clone(),
                _ => {
                    let resolved = self.input_stream(record.stream);
                    cached = Some((record.stream, resolved.clone()));
                    resolved
                }
            };
            let result = match stream {
                Ok(id) => self.push_to(
                    id,
                    record.key,
                    record.value,
                    Some(record.ts_ns.unwrap_or(now)),
                ),
                Err(rejection) => Err(self.reject(None, rejection)),
            };
            match result {
                Ok(()) => report.accepted += 1,
                Err(rejection) => report.push_rejection(record.index, rejection),
            }
        }
    }

    /// Pushes a batch of numbers to one stream: `keys` is either one key for
    /// all samples or one per sample; `ts_ns` is optional (clock's now).
    /// Good samples are applied even when others are rejected.
    pub fn push_numbers(
        &mut self,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        ts_ns: Option<&[i64]>,
    ) -> BatchReport {
        let mut report = BatchReport::default();
        let id = match self.input_stream(stream) {
            Ok(id) => id,
            Err(rejection) => {
                for index in 0..values.len() {
                    let rejection = self.reject(None, rejection.clone());
                    report.push_rejection(index, rejection);
                }
                return report;
            }
        };
        if let Keys::Many(keys) = keys
            && keys.len() != values.len()
        {
            report.error = Some(format!(
                "got {} keys for {} values; give one key or one per value",
                keys.len(),
                values.len()
            ));
            return report;
        }
        if let Some(ts) = ts_ns
            && ts.len() != values.len()
        {
            report.error = Some(format!(
                "got {} timestamps for {} values; give one per value",
                ts.len(),
                values.len()
            ));
            return report;
        }
        if !matches!(self.value_type(id), ValueType::Number | ValueType::Any) {
            for index in 0..values.len() {
                let rejection = self.type_mismatch(id, "float");
                let rejection = self.reject(Some(id), rejection);
                report.push_rejection(index, rejection);
            }
            return report;
        }
        let bounds = self.streams[id.index()].bounds;
        let now = self.clock.now_ns();
        // One key given once per value is one key.
        let keys = match keys {
            Keys::Many([first, rest @ ..]) if rest.iter().all(|k| k == first) => Keys::One(first),
            keys => keys,
        };
        if let Keys::One(key) = keys
            && values.len() > 1
            && self.columnar_eligible(id)
        {
            return self.push_run(id, key, values, ts_ns, now, report);
        }
        let mut cached: Option<u32> = None; // the slot of `Keys::One`
        for (index, &value) in values.iter().enumerate() {
            if bounds.is_numeric()
                && let Err(rejection) = check_number(&self.streams[id.index()].name, bounds, value)
            {
                let rejection = self.reject(Some(id), rejection);
                report.push_rejection(index, rejection);
                continue;
            }
            let slot = match (keys, cached) {
                (Keys::One(_), Some(slot)) => Ok(slot),
                (Keys::One(key), None) => self.admit_key(id, key).inspect(|slot| {
                    cached = Some(*slot);
                }),
                (Keys::Many(keys), _) => self.admit_key(id, keys[index]),
            };
            let slot = match slot {
                Ok(slot) => slot,
                Err(rejection) => {
                    let rejection = self.reject(Some(id), rejection);
                    report.push_rejection(index, rejection);
                    continue;
                }
            };
            let ts = ts_ns.map_or(now, |ts| ts[index]);
            self.apply_float_arriving(id, slot, ts, value, index, &mut report);
        }
        report
    }

    /// Applies the float sample `index` of a batch by how it arrives: in
    /// order, inserted late, or refused into `report`.
    pub(super) fn apply_float_arriving(
        &mut self,
        stream: StreamId,
        slot: u32,
        ts: i64,
        value: f64,
        index: usize,
        report: &mut BatchReport,
    ) {
        match self.arrival(stream, slot, ts) {
            Arrival::InOrder => self.apply_float(stream, slot, ts, value),
            Arrival::Insert => self.insert_late(stream, slot, ts, Value::Float(value)),
            Arrival::Late(rejection) => {
                let rejection = self.reject(Some(stream), rejection);
                report.push_rejection(index, rejection);
                return;
            }
        }
        report.accepted += 1;
    }

    #[inline(always)]
    pub(super) fn before_apply(&mut self, stream: StreamId, slot: u32) {
        let s = &mut self.streams[stream.index()];
        s.accepted += 1;
        self.stats.samples_in += 1;
        self.stats.accepted += 1;
        if s.has_all_consumer {
            if s.slots[slot as usize].all_stamp == self.wave {
                self.run_pending();
            }
            self.streams[stream.index()].slots[slot as usize].all_stamp = self.wave;
        }
    }

    pub(super) fn apply(&mut self, stream: StreamId, slot: u32, ts: i64, value: Value) {
        if let Value::Float(v) = value {
            self.apply_float(stream, slot, ts, v);
            return;
        }
        self.before_apply(stream, slot);
        let series = &mut self.streams[stream.index()].slots[slot as usize].series;
        let before = series.value_bytes;
        series.push_value(ts, value);
        let after = series.value_bytes;
        self.account_retained(before, after);
        self.after_write(stream, slot, None);
    }

    #[inline(always)]
    pub(super) fn apply_float(&mut self, stream: StreamId, slot: u32, ts: i64, value: f64) {
        self.before_apply(stream, slot);
        let series = &mut self.streams[stream.index()].slots[slot as usize].series;
        if series.values.is_some() {
            // A float may evict a string this ring held.
            let before = series.value_bytes;
            series.push_float(ts, value);
            let after = series.value_bytes;
            self.account_retained(before, after);
        } else {
            series.push_float(ts, value);
        }
        self.after_write(stream, slot, None);
    }

    /// Moves the budget of retained values by a ring's change in bytes.
    #[inline]
    pub(super) fn account_retained(&mut self, before: usize, after: usize) {
        self.retained_bytes = (self.retained_bytes + after).saturating_sub(before);
    }

    /// Notifies subscribers of a new sample in (stream, slot) and queues consumers.
    #[inline(always)]
    pub(super) fn after_write(
        &mut self,
        stream: StreamId,
        slot: u32,
        transition: Option<Transition>,
    ) {
        self.mark_changed(stream, slot);
        if !self.streams[stream.index()].subscribers.is_empty() {
            self.notify(stream, slot, transition);
        }
        for consumer in 0..self.streams[stream.index()].consumers.len() {
            self.mark_consumer(stream, slot, consumer);
        }
    }

    pub(super) fn notify(&mut self, stream: StreamId, slot: u32, transition: Option<Transition>) {
        let s = &mut self.streams[stream.index()];
        s.subscribers.retain(|sub| !sub.is_closed());
        let slot_ref = &s.slots[slot as usize];
        let series = &slot_ref.series;
        let update = Update {
            name: Arc::clone(&s.name),
            key: Arc::clone(&self.keys[slot_ref.key.index()]),
            value: if slot_ref.error.is_some() {
                None
            } else {
                series.latest_value()
            },
            ts_ns: series.latest_ts().unwrap_or_default(),
            seq: series.count.saturating_sub(1),
            error: slot_ref.error.clone(),
            transition,
        };
        if let Some((last, rest)) = s.subscribers.split_last() {
            for subscriber in rest {
                subscriber.offer(update.clone());
            }
            last.offer(update);
        }
    }

    #[inline(always)]
    pub(super) fn mark_consumer(&mut self, stream: StreamId, slot: u32, consumer_index: usize) {
        let consumer = self.streams[stream.index()].consumers[consumer_index];
        let mut out = self.streams[stream.index()].slots[slot as usize]
            .downstream
            .get(consumer_index);
        if out == UNRESOLVED {
            out = self.resolve_downstream(stream, slot, consumer_index, consumer);
        }
        let node = &mut self.nodes[consumer.node.index()];
        if node.immediate {
            self.evaluate_now(consumer.node, out);
            return;
        }
        let queued = &mut node.queued[out as usize];
        if *queued == self.wave {
            if consumer.policy == EdgePolicy::Latest {
                node.stats.conflated += 1;
                self.stats.conflated += 1;
            }
        } else {
            *queued = self.wave;
            node.pending.push(out);
            self.pending.insert(consumer.node.index());
        }
    }

    pub(super) fn resolve_downstream(
        &mut self,
        stream: StreamId,
        slot: u32,
        consumer_index: usize,
        consumer: Consumer,
    ) -> u32 {
        let key = self.streams[stream.index()].slots[slot as usize].key;
        let output = self.nodes[consumer.node.index()].output;
        let out = self.slot_for(output, key);
        self.nodes[consumer.node.index()].keys[out as usize].inputs[consumer.input] = slot;
        self.streams[stream.index()].slots[slot as usize]
            .downstream
            .set(consumer_index, out);
        out
    }
}

/// One record of a heterogeneous batch, as decoded by an ingest edge.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleIn<'a> {
    /// Position in the original batch, for error reports.
    pub index: usize,
    /// The stream.
    pub stream: &'a str,
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: Value,
    /// Timestamp in ns; the clock's now when absent.
    pub ts_ns: Option<i64>,
}

/// The keys of a batch: one for every sample, or one per sample.
#[derive(Clone, Copy, Debug)]
pub enum Keys<'a> {
    /// Every sample has this key.
    One(&'a str),
    /// One key per sample.
    Many(&'a [&'a str]),
}

/// What happened to a batch: how many samples were applied and why the
/// others were rejected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchReport {
    /// Samples applied.
    pub accepted: usize,
    /// Samples rejected.
    pub rejected: usize,
    /// The first rejections: (index in the batch, reason).
    pub errors: Vec<(usize, Rejection)>,
    /// A problem with the whole batch (nothing applied).
    pub error: Option<String>,
    /// Every rejection counted by its reason label.
    pub by_reason: Vec<(RejectReason, u64)>,
}

impl BatchReport {
    /// How many rejections are kept with their reason.
    pub const MAX_ERRORS: usize = 100;

    /// Records a rejection of sample `index`.
    pub fn push_rejection(&mut self, index: usize, rejection: Rejection) {
        self.rejected += 1;
        let reason = rejection.reason();
        match self.by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += 1,
            None => self.by_reason.push((reason, 1)),
        }
        if self.errors.len() < Self::MAX_ERRORS {
            self.errors.push((index, rejection));
        }
    }
}

pub(super) fn check_number(stream: &str, bounds: Bounds, value: f64) -> Result<(), Rejection> {
    if bounds.finite_only && !value.is_finite() {
        return Err(Rejection::NotFinite {
            stream: stream.to_string(),
            value,
        });
    }
    if let Some(min) = bounds.min
        && (value < min || value.is_nan())
    {
        return Err(Rejection::BelowMin {
            stream: stream.to_string(),
            value,
            min,
        });
    }
    if let Some(max) = bounds.max
        && (value > max || value.is_nan())
    {
        return Err(Rejection::AboveMax {
            stream: stream.to_string(),
            value,
            max,
        });
    }
    Ok(())
}
