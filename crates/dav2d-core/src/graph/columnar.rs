//! Columnar evaluation of a batch run: many samples of one (stream, key)
//! through native nodes on `all` edges, one node at a time.
//!
//! Per-sample waves cost a queue entry, a bitset scan and a ring round trip
//! per node per sample. When every `all` consumer below a stream is a native
//! single-input node (built-in or constraint), a run can instead be pushed
//! through each node as a column: the node's window for sample `j` is the
//! slice ending at `j` of (the samples its ring already held + the run). The
//! results are exactly those of one wave per sample, because a single-input
//! node's value for a sample depends only on its input up to that sample;
//! glitch-freedom only concerns nodes with several inputs, which make a
//! stream ineligible. `latest` consumers are queued once for the run (the
//! rest is conflation, counted as such), as a wave at the end of the batch
//! would. Custom logic (Python) on a single `all` input is evaluated the
//! same way, as one batch of the run's windows (`evaluate_custom_column`).

use crate::constraint::ConstraintKeyState;
use crate::graph::ingest::check_number;
use crate::graph::wave::{float_changed, scratch_evaluation};
use crate::graph::{BatchReport, Graph, NodeId, NodeLogic, StreamId, UNRESOLVED};
use std::sync::Arc;

use crate::logic::Builtin;
use crate::spec::EdgePolicy;
use crate::window::WindowSnapshot;

/// Samples per column: small enough to stay in cache, large enough that the
/// per-column bookkeeping vanishes.
const COLUMN_CHUNK: usize = 4096;

/// New samples of one (stream, key) after the older samples the consumers'
/// windows still reach.
struct Column {
    ts: Vec<i64>,
    nums: Vec<f64>,
    /// Index of the first new sample; before it is the prefix from the ring.
    first_new: usize,
}

impl Column {
    fn new_len(&self) -> usize {
        self.nums.len() - self.first_new
    }
}

/// One built-in's pass over a column: windows, early cutoff and outputs.
struct ColumnRun<'a> {
    input: &'a Column,
    window: usize,
    deadband: Option<f64>,
    /// The last value written (or `None` when the next output must be written).
    last: Option<f64>,
    cutoffs: u64,
    output: &'a mut Column,
}

impl ColumnRun<'_> {
    /// Evaluates `kernel` on the window ending at each new sample; a
    /// monomorphized loop per built-in, so the kind is dispatched once.
    #[inline]
    fn apply(&mut self, mut kernel: impl FnMut(&[f64], &[i64]) -> Option<f64>) {
        let input = self.input;
        let len = input.nums.len();
        // Samples with less history than a full window, then full windows.
        let full_from = (self.window - 1).max(input.first_new).min(len);
        for j in input.first_new..full_from {
            let value = kernel(&input.nums[..=j], &input.ts[..=j]);
            self.offer(value, input.ts[j]);
        }
        if full_from < len {
            let first = full_from + 1 - self.window;
            let windows = input.nums[first..]
                .windows(self.window)
                .zip(input.ts[first..].windows(self.window));
            for (values, timestamps) in windows {
                let value = kernel(values, timestamps);
                self.offer(value, timestamps[timestamps.len() - 1]);
            }
        }
    }

    /// Applies early cutoff to one evaluation and keeps what must be written.
    #[inline]
    fn offer(&mut self, value: Option<f64>, ts: i64) {
        let Some(value) = value else { return };
        if self
            .last
            .is_some_and(|old| !float_changed(old, value, self.deadband))
        {
            self.cutoffs += 1;
            return;
        }
        self.last = Some(value);
        self.output.ts.push(ts);
        self.output.nums.push(value);
    }
}

impl Graph {
    /// Whether runs pushed to `stream` can be evaluated as columns.
    pub(super) fn columnar_eligible(&self, stream: StreamId) -> bool {
        let s = &self.streams[stream.index()];
        s.has_all_consumer && self.consumers_columnar(stream)
    }

    fn consumers_columnar(&self, stream: StreamId) -> bool {
        self.streams[stream.index()]
            .consumers
            .iter()
            .all(|consumer| {
                let node = &self.nodes[consumer.node.index()];
                if self.custom_columnar(consumer.node, consumer.policy) {
                    return true;
                }
                if !node.immediate {
                    return consumer.policy == EdgePolicy::Latest;
                }
                // A time window's length varies per sample: the per-sample path.
                if node.inputs.iter().any(|input| input.span.is_some()) {
                    return false;
                }
                match node.logic {
                    NodeLogic::Builtin(_) => self.consumers_columnar(node.output),
                    // A constraint's states are strings: only `latest` readers.
                    NodeLogic::Constraint(_) => {
                        self.streams[node.output.index()].consumers.iter().all(|c| {
                            c.policy == EdgePolicy::Latest && !self.nodes[c.node.index()].immediate
                        })
                    }
                    NodeLogic::Custom(_) | NodeLogic::Running | NodeLogic::Retired => false,
                }
            })
    }

    /// Whether `id`, read over an edge of `policy`, is custom logic (Python)
    /// evaluated column-wise: one `all` input without a time window, not
    /// offloaded, whose output only `latest` readers read. Its logic then
    /// gets the whole run as one batch, a window per sample ending at it
    /// (exactly what one wave per sample would hand it), in place of a
    /// wave per sample.
    fn custom_columnar(&self, id: NodeId, policy: EdgePolicy) -> bool {
        let node = &self.nodes[id.index()];
        policy == EdgePolicy::All
            && matches!(node.logic, NodeLogic::Custom(_))
            && node.offload.is_none()
            && node.inputs.len() == 1
            && node.inputs[0].span.is_none()
            && (self.streams[node.output.index()].consumers.iter())
                .all(|c| c.policy == EdgePolicy::Latest && !self.nodes[c.node.index()].immediate)
    }

    /// Applies a run of numbers for one key and evaluates it column-wise.
    pub(super) fn push_run(
        &mut self,
        stream: StreamId,
        key: &str,
        values: &[f64],
        ts_ns: Option<&[i64]>,
        now: i64,
        mut report: BatchReport,
    ) -> BatchReport {
        let slot = match self.admit_key(stream, key) {
            Ok(slot) => slot,
            Err(rejection) => {
                for index in 0..values.len() {
                    let rejection = self.reject(Some(stream), rejection.clone());
                    report.push_rejection(index, rejection);
                }
                return report;
            }
        };
        let series = &self.streams[stream.index()].slots[slot as usize].series;
        // Out of order (against the key's latest or within the run): the
        // per-sample path decides each late sample.
        let in_order = {
            let first = ts_ns.map_or(Some(now), |ts| ts.first().copied());
            let after_latest = match (series.latest_ts(), first) {
                (Some(latest), Some(first)) => first >= latest,
                _ => true,
            };
            after_latest && ts_ns.is_none_or(|ts| ts.windows(2).all(|w| w[0] <= w[1]))
        };
        if series.values.is_some() || !in_order {
            // The series holds non-float values (the generic path reports
            // them), or a sample is late.
            return self.push_numbers_slow(stream, slot, values, ts_ns, now, report);
        }
        let bounds = self.streams[stream.index()].bounds;
        // Cache-sized chunks: each chunk's windows reach back into the rings
        // the previous chunk wrote, so results do not depend on the chunking.
        for (chunk_index, chunk) in values.chunks(COLUMN_CHUNK).enumerate() {
            let offset = chunk_index * COLUMN_CHUNK;
            let mut column = self.column_prefix(stream, slot, chunk.len());
            for (i, &value) in chunk.iter().enumerate() {
                let index = offset + i;
                if bounds.is_numeric()
                    && let Err(rejection) =
                        check_number(&self.streams[stream.index()].name, bounds, value)
                {
                    let rejection = self.reject(Some(stream), rejection);
                    report.push_rejection(index, rejection);
                    continue;
                }
                column.ts.push(ts_ns.map_or(now, |ts| ts[index]));
                column.nums.push(value);
            }
            let accepted = column.new_len();
            report.accepted += accepted;
            if accepted == 0 {
                continue;
            }
            // Work queued before this chunk belongs to earlier samples.
            if self.has_pending() {
                self.run_wave();
            }
            self.streams[stream.index()].accepted += accepted as u64;
            self.stats.samples_in += accepted as u64;
            self.stats.accepted += accepted as u64;
            self.write_column(stream, slot, &column);
            self.propagate_column(stream, slot, &column);
            let wave = self.wave;
            self.streams[stream.index()].slots[slot as usize].all_stamp = wave;
        }
        report
    }

    /// The per-sample path for a run that cannot go column-wise.
    fn push_numbers_slow(
        &mut self,
        stream: StreamId,
        slot: u32,
        values: &[f64],
        ts_ns: Option<&[i64]>,
        now: i64,
        mut report: BatchReport,
    ) -> BatchReport {
        let bounds = self.streams[stream.index()].bounds;
        for (index, &value) in values.iter().enumerate() {
            if bounds.is_numeric()
                && let Err(rejection) =
                    check_number(&self.streams[stream.index()].name, bounds, value)
            {
                let rejection = self.reject(Some(stream), rejection);
                report.push_rejection(index, rejection);
                continue;
            }
            let ts = ts_ns.map_or(now, |ts| ts[index]);
            self.apply_float_arriving(stream, slot, ts, value, index, &mut report);
        }
        report
    }

    /// A column holding the newest samples of (stream, slot) that its
    /// immediate consumers' windows reach, ready for `capacity` new samples.
    /// Built before the new samples are written to the ring.
    fn column_prefix(&self, stream: StreamId, slot: u32, capacity: usize) -> Column {
        let s = &self.streams[stream.index()];
        let reach = s
            .consumers
            .iter()
            .filter(|c| {
                self.nodes[c.node.index()].immediate || self.custom_columnar(c.node, c.policy)
            })
            .map(|c| {
                self.nodes[c.node.index()].inputs[c.input]
                    .window
                    .saturating_sub(1)
            })
            .max()
            .unwrap_or(0);
        let series = &s.slots[slot as usize].series;
        let prefix_nums = series.nums(reach);
        let prefix_ts = series.timestamps(reach);
        let mut column = Column {
            ts: Vec::with_capacity(prefix_ts.len() + capacity),
            nums: Vec::with_capacity(prefix_nums.len() + capacity),
            first_new: prefix_nums.len(),
        };
        column.ts.extend_from_slice(prefix_ts);
        column.nums.extend_from_slice(prefix_nums);
        column
    }

    /// Appends the column's new samples to (stream, slot), notifying
    /// subscribers of each, and clears a node's error state.
    fn write_column(&mut self, stream: StreamId, slot: u32, column: &Column) {
        let has_subscribers = !self.streams[stream.index()].subscribers.is_empty();
        let new_ts = &column.ts[column.first_new..];
        let new_nums = &column.nums[column.first_new..];
        self.streams[stream.index()].slots[slot as usize].error = None;
        self.mark_changed(stream, slot);
        if has_subscribers {
            for (&ts, &value) in new_ts.iter().zip(new_nums) {
                self.streams[stream.index()].slots[slot as usize]
                    .series
                    .push_float(ts, value);
                self.notify(stream, slot, None);
            }
        } else {
            self.streams[stream.index()].slots[slot as usize]
                .series
                .extend_floats(new_ts, new_nums);
        }
    }

    /// Runs the column through every consumer of (stream, slot).
    fn propagate_column(&mut self, stream: StreamId, slot: u32, column: &Column) {
        let new = column.new_len();
        if new == 0 {
            return;
        }
        for index in 0..self.streams[stream.index()].consumers.len() {
            let consumer = self.streams[stream.index()].consumers[index];
            let mut out = self.streams[stream.index()].slots[slot as usize]
                .downstream
                .get(index);
            if out == UNRESOLVED {
                out = self.resolve_downstream(stream, slot, index, consumer);
            }
            if self.nodes[consumer.node.index()].immediate {
                self.evaluate_column(consumer.node, out, column);
            } else if self.custom_columnar(consumer.node, consumer.policy) {
                self.evaluate_custom_column(consumer.node, out, column);
            } else {
                // A `latest` consumer: one evaluation for the run.
                self.mark_consumer(stream, slot, index);
                let node = &mut self.nodes[consumer.node.index()];
                node.stats.conflated += new as u64 - 1;
                self.stats.conflated += new as u64 - 1;
            }
        }
    }

    /// Custom logic over a run: one batch, an evaluation per new sample
    /// with the window ending at it, outcomes written in sample order.
    fn evaluate_custom_column(&mut self, id: NodeId, out: u32, input: &Column) {
        let window = self.nodes[id.index()].inputs[0].window;
        // Shared by every window of the run; the prefix before its first
        // new sample reaches back as far as the widest window needs.
        let (ts, nums): (Arc<[i64]>, Arc<[f64]>) =
            (Arc::from(&input.ts[..]), Arc::from(&input.nums[..]));
        let output = self.nodes[id.index()].output;
        let key =
            Arc::clone(&self.keys[self.streams[output.index()].slots[out as usize].key.index()]);
        // The evaluations and their input vectors are the waves' own, kept
        // between runs, so a run allocates none of them.
        let mut batch = std::mem::take(&mut self.custom_scratch.0);
        let mut targets = std::mem::take(&mut self.custom_scratch.1);
        targets.clear();
        for (used, j) in (input.first_new..input.nums.len()).enumerate() {
            let len = window.min(j + 1);
            let snapshot = WindowSnapshot::of_column(&ts, &nums, j + 1, len);
            scratch_evaluation(&mut batch, used, &key, 1)
                .inputs
                .push(snapshot);
            targets.push((out, input.ts[j]));
        }
        let used = targets.len();
        self.run_custom(id, &mut batch[..used], &targets);
        self.custom_scratch = (batch, targets);
    }

    fn evaluate_column(&mut self, id: NodeId, out: u32, input: &Column) {
        let new = input.new_len() as u64;
        self.stats.evaluations += new;
        self.nodes[id.index()].stats.evaluations += new;
        match self.nodes[id.index()].logic {
            NodeLogic::Builtin(builtin) => {
                let node = &self.nodes[id.index()];
                let (window, deadband, output) =
                    (node.inputs[0].window, node.deadband, node.output);
                let mut memory = node.keys[out as usize].memory;
                let slot = &self.streams[output.index()].slots[out as usize];
                let last = match (&slot.error, slot.series.count) {
                    (None, count) if count > 0 => slot.series.latest_num(),
                    _ => None,
                };
                let mut column = self.column_prefix(output, out, input.new_len());
                let mut run = ColumnRun {
                    input,
                    window,
                    deadband,
                    last,
                    cutoffs: 0,
                    output: &mut column,
                };
                // The hottest kernels get a loop of their own (each closure is
                // monomorphized); every other built-in, including a new one,
                // runs its kernel as is.
                match builtin {
                    Builtin::MovingAverage { .. } => {
                        run.apply(|v, _| Some(v.iter().sum::<f64>() / v.len() as f64))
                    }
                    Builtin::Sum { .. } => run.apply(|v, _| Some(v.iter().sum::<f64>())),
                    Builtin::Min { .. } => {
                        run.apply(|v, _| Some(v.iter().copied().fold(f64::INFINITY, f64::min)))
                    }
                    Builtin::Max { .. } => {
                        run.apply(|v, _| Some(v.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
                    }
                    Builtin::Clamp { lo, hi } => {
                        run.apply(|v, _| v.last().map(|x| x.clamp(lo, hi)))
                    }
                    Builtin::Scale { a, b } => run.apply(|v, _| v.last().map(|x| a * x + b)),
                    _ => run.apply(|v, t| builtin.evaluate(v, t, &mut memory)),
                }
                let cutoffs = run.cutoffs;
                let node = &mut self.nodes[id.index()];
                node.keys[out as usize].memory = memory;
                node.stats.cutoffs += cutoffs;
                self.stats.cutoffs += cutoffs;
                if column.new_len() == 0 {
                    return;
                }
                self.write_column(output, out, &column);
                self.propagate_column(output, out, &column);
            }
            NodeLogic::Constraint(spec) => {
                let clock_now = spec.has_timers().then(|| self.clock.now_ns());
                let output = self.nodes[id.index()].output;
                let slot = &self.streams[output.index()].slots[out as usize];
                let mut needs_write = slot.series.count == 0 || slot.error.is_some();
                // The key's state stays local; the graph is touched only on a change.
                let mut key_state: ConstraintKeyState =
                    self.nodes[id.index()].keys[out as usize].constraint;
                let mut cutoffs = 0u64;
                for j in input.first_new..input.nums.len() {
                    let (value, ts) = (input.nums[j], input.ts[j]);
                    let now = clock_now.unwrap_or(ts);
                    let before = key_state.state;
                    match key_state.on_value(&spec, value, now) {
                        Some(to) => {
                            self.nodes[id.index()].keys[out as usize].constraint = key_state;
                            self.transition(id, out, before, to, Some(value), now, ts);
                            needs_write = false;
                        }
                        None if needs_write => {
                            self.nodes[id.index()].keys[out as usize].constraint = key_state;
                            let value = self.state_value(before);
                            self.emit(id, out, value, ts, None);
                            needs_write = false;
                        }
                        None => cutoffs += 1,
                    }
                }
                self.nodes[id.index()].keys[out as usize].constraint = key_state;
                self.nodes[id.index()].stats.cutoffs += cutoffs;
                self.stats.cutoffs += cutoffs;
            }
            NodeLogic::Custom(_) | NodeLogic::Running | NodeLogic::Retired => {}
        }
    }
}
