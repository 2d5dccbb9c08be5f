//! Waves: evaluating queued (node, key) pairs in topological order, the
//! built-in, constraint and custom paths, early cutoff, and constraint
//! timers (`tick`).

use std::sync::Arc;

use super::*;
use crate::constraint::{ConstraintSpec, ConstraintState, Transition};
use crate::ids::{NodeId, StreamId};
use crate::logic::{Builtin, Evaluation, Outcome};
use crate::value::Value;
use crate::window::SeriesRing;

impl Graph {
    /// Whether any (node, key) waits for a wave.
    pub fn has_pending(&self) -> bool {
        self.pending.count > 0
    }

    /// Runs one wave: evaluates every queued (node, key) in topological
    /// order, each at most once, then publishes the result to the read
    /// model (if one was asked for). Returns the number of evaluations.
    pub fn run_wave(&mut self) -> u64 {
        let evaluations = self.run_pending();
        self.publish();
        self.settled
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        evaluations
    }

    /// The wave itself, without publishing: `all` edges run it between two
    /// samples of one key, and only the caller's wave publishes.
    pub(super) fn run_pending(&mut self) -> u64 {
        if self.pending.count == 0 {
            return 0;
        }
        let before = self.stats.evaluations;
        let mut cursor = 0;
        while let Some(index) = self.pending.pop_from(cursor) {
            cursor = index;
            self.evaluate_node(NodeId(index as u32));
        }
        self.wave += 1;
        self.stats.waves += 1;
        self.stats.evaluations - before
    }

    pub(super) fn evaluate_node(&mut self, id: NodeId) {
        let mut pending = std::mem::take(&mut self.nodes[id.index()].pending);
        if self.nodes[id.index()].offload.is_some() {
            self.offload_keys(id, &pending);
            pending.clear();
            self.nodes[id.index()].pending = pending;
            return;
        }
        match &self.nodes[id.index()].logic {
            NodeLogic::Builtin(builtin) => {
                let builtin = *builtin;
                for &out in &pending {
                    self.evaluate_builtin(id, builtin, out);
                }
            }
            NodeLogic::Constraint(spec) => {
                let spec = *spec;
                // Only timers need the clock; read it once per node per wave.
                let now = if spec.has_timers() {
                    self.clock.now_ns()
                } else {
                    0
                };
                for &out in &pending {
                    self.evaluate_constraint(id, &spec, out, now);
                }
            }
            NodeLogic::Custom(_) => self.evaluate_custom(id, &pending),
            NodeLogic::Running | NodeLogic::Retired => {}
        }
        pending.clear();
        let node = &mut self.nodes[id.index()];
        if node.pending.is_empty() {
            node.pending = pending;
        }
    }

    /// Evaluates an immediate (native, single `all` input) node for one key.
    pub(super) fn evaluate_now(&mut self, id: NodeId, out: u32) {
        match self.nodes[id.index()].logic {
            NodeLogic::Builtin(builtin) => self.evaluate_builtin(id, builtin, out),
            NodeLogic::Constraint(spec) => {
                let now = if spec.has_timers() {
                    self.clock.now_ns()
                } else {
                    0
                };
                self.evaluate_constraint(id, &spec, out, now);
            }
            NodeLogic::Custom(_) | NodeLogic::Running | NodeLogic::Retired => {}
        }
    }

    /// The slot of input `input` for output slot `out`, resolving it lazily.
    #[inline]
    pub(super) fn input_slot(&mut self, id: NodeId, out: u32, input: usize) -> Option<u32> {
        let slot = self.nodes[id.index()].keys[out as usize].inputs[input];
        if slot != UNRESOLVED {
            return Some(slot);
        }
        let node = &self.nodes[id.index()];
        let key = self.streams[node.output.index()].slots[out as usize].key;
        let stream = node.inputs[input].stream;
        let slot = *self.streams[stream.index()].slot_of_key.get(&key)?;
        self.nodes[id.index()].keys[out as usize].inputs[input] = slot;
        Some(slot)
    }

    pub(super) fn not_numeric_error(
        &self,
        stream: StreamId,
        slot: u32,
        window: usize,
        needed_by: &str,
    ) -> Arc<str> {
        let s = &self.streams[stream.index()];
        let slot = &s.slots[slot as usize];
        let found = slot
            .series
            .first_non_numeric(window)
            .map_or("a non-number", |v| v.type_name());
        Arc::from(format!(
            "input '{}' holds a {} for key '{}', but {} needs numbers",
            s.name,
            found,
            self.keys[slot.key.index()],
            needed_by
        ))
    }

    pub(super) fn evaluate_builtin(&mut self, id: NodeId, builtin: Builtin, out: u32) {
        let Some(in_slot) = self.input_slot(id, out, 0) else {
            self.nodes[id.index()].stats.waiting += 1;
            return;
        };
        let (stream, cap, span) = {
            let input = &self.nodes[id.index()].inputs[0];
            (input.stream, input.window, input.span)
        };
        self.stats.evaluations += 1;
        let series = &self.streams[stream.index()].slots[in_slot as usize].series;
        let (window, overflow) = series.window_len(cap, span);
        let stats = &mut self.nodes[id.index()].stats;
        stats.evaluations += 1;
        stats.window_overflow += u64::from(overflow);
        if !series.window_is_numeric(window) {
            let error = self.not_numeric_error(stream, in_slot, window, &builtin.to_string());
            let ts = self.clock.now_ns();
            self.fail(id, out, error, ts);
            return;
        }
        let values = series.nums(window);
        let timestamps = series.timestamps(window);
        let ts = timestamps.last().copied().unwrap_or_default();
        let node_key = &mut self.nodes[id.index()].keys[out as usize];
        if let Some(value) = builtin.evaluate(values, timestamps, &mut node_key.memory) {
            self.emit(id, out, Value::Float(value), ts, None);
        }
    }

    pub(super) fn evaluate_constraint(
        &mut self,
        id: NodeId,
        spec: &ConstraintSpec,
        out: u32,
        now: i64,
    ) {
        let Some(in_slot) = self.input_slot(id, out, 0) else {
            self.nodes[id.index()].stats.waiting += 1;
            return;
        };
        let stream = self.nodes[id.index()].inputs[0].stream;
        self.stats.evaluations += 1;
        self.nodes[id.index()].stats.evaluations += 1;
        let series = &self.streams[stream.index()].slots[in_slot as usize].series;
        if !series.window_is_numeric(1) {
            let error = self.not_numeric_error(stream, in_slot, 1, "a constraint");
            self.fail(id, out, error, now);
            return;
        }
        let Some(value) = series.latest_num() else {
            return;
        };
        let ts = series.latest_ts().unwrap_or(now);
        let node = &mut self.nodes[id.index()];
        let key_state = &mut node.keys[out as usize].constraint;
        let before = key_state.state;
        let output_slot = &self.streams[node.output.index()].slots[out as usize];
        let needs_write = output_slot.series.count == 0 || output_slot.error.is_some();
        // Without timers the clock is not read; the sample's time stamps the transition.
        let now = if spec.has_timers() { now } else { ts };
        match key_state.on_value(spec, value, now) {
            Some(to) => self.transition(id, out, before, to, Some(value), now, ts),
            None if needs_write => {
                let value = self.state_value(before);
                self.emit(id, out, value, ts, None);
            }
            None => {
                node.stats.cutoffs += 1;
                self.stats.cutoffs += 1;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn transition(
        &mut self,
        id: NodeId,
        out: u32,
        from: ConstraintState,
        to: ConstraintState,
        value: Option<f64>,
        now: i64,
        ts: i64,
    ) {
        self.stats.transitions += 1;
        let output = self.nodes[id.index()].output;
        // The transition record is only built for subscribers to receive it.
        let transition = if self.streams[output.index()].subscribers.is_empty() {
            None
        } else {
            let key = self.streams[output.index()].slots[out as usize].key;
            Some(Transition {
                constraint: Arc::clone(&self.nodes[id.index()].name),
                key: Arc::clone(&self.keys[key.index()]),
                from,
                to,
                value,
                at_ns: now,
                cause: self.cause,
            })
        };
        // A change of state is a change: no cutoff check.
        let state = self.state_value(to);
        let slot = &mut self.streams[output.index()].slots[out as usize];
        slot.error = None;
        slot.series.push_value(ts, state);
        self.after_write(output, out, transition);
    }

    /// The evaluations of `pending` keys of a custom node (each with its
    /// inputs' windows, zero-copy) and each one's output slot and newest
    /// input time; keys waiting for an input are counted and left out.
    pub(super) fn custom_batch(
        &mut self,
        id: NodeId,
        pending: &[u32],
    ) -> (Vec<Evaluation>, Vec<(u32, i64)>) {
        let mut batch = Vec::with_capacity(pending.len());
        let mut targets = Vec::with_capacity(pending.len());
        let used = self.fill_custom_batch(id, pending, &mut batch, &mut targets);
        batch.truncate(used);
        (batch, targets)
    }

    /// Fills `batch` from its start with an evaluation per pending key
    /// whose inputs all hold it (reusing the evaluations and input vectors
    /// already there), and `targets` with each one's (output slot, time).
    /// Returns how many evaluations were filled.
    fn fill_custom_batch(
        &mut self,
        id: NodeId,
        pending: &[u32],
        batch: &mut Vec<Evaluation>,
        targets: &mut Vec<(u32, i64)>,
    ) -> usize {
        let input_count = self.nodes[id.index()].inputs.len();
        let mut used = 0;
        let output = self.nodes[id.index()].output;
        'keys: for &out in pending {
            let key = &self.keys[self.streams[output.index()].slots[out as usize].key.index()];
            scratch_evaluation(batch, used, key, input_count);
            let mut ts = i64::MIN;
            for input in 0..input_count {
                let Some(slot) = self.input_slot(id, out, input) else {
                    self.nodes[id.index()].stats.waiting += 1;
                    batch[used].inputs.clear();
                    continue 'keys;
                };
                let node_input = &self.nodes[id.index()].inputs[input];
                let series = &self.streams[node_input.stream.index()].slots[slot as usize].series;
                ts = ts.max(series.latest_ts().unwrap_or(i64::MIN));
                let (window, overflow) = series.window_len(node_input.window, node_input.span);
                batch[used].inputs.push(series.snapshot(window));
                self.nodes[id.index()].stats.window_overflow += u64::from(overflow);
            }
            targets.push((out, ts));
            used += 1;
        }
        used
    }

    pub(super) fn evaluate_custom(&mut self, id: NodeId, pending: &[u32]) {
        // The batch's evaluations and their input vectors are kept between
        // waves, so the steady path allocates none.
        let mut batch = std::mem::take(&mut self.custom_scratch.0);
        let mut targets = std::mem::take(&mut self.custom_scratch.1);
        targets.clear();
        let used = self.fill_custom_batch(id, pending, &mut batch, &mut targets);
        if used > 0 {
            self.run_custom(id, &mut batch[..used], &targets);
        }
        self.custom_scratch = (batch, targets);
    }

    /// Runs node `id`'s custom logic over `batch` and writes the outcomes
    /// to `targets` (output slot, time). The snapshots are let go of first:
    /// held past the call, they would make the next write copy its ring.
    pub(super) fn run_custom(
        &mut self,
        id: NodeId,
        batch: &mut [Evaluation],
        targets: &[(u32, i64)],
    ) {
        let node = &mut self.nodes[id.index()];
        let ran = match std::mem::replace(&mut node.logic, NodeLogic::Running) {
            NodeLogic::Custom(mut logic) => {
                let name = Arc::clone(&node.name);
                logic.evaluate_batch(&name, batch);
                self.nodes[id.index()].logic = NodeLogic::Custom(logic);
                true
            }
            other => {
                node.logic = other;
                false
            }
        };
        for evaluation in batch.iter_mut() {
            evaluation.inputs.clear();
        }
        if ran {
            self.apply_outcomes(id, batch, targets);
        }
    }

    /// Counts a custom batch and writes its outcomes (outputs queue the
    /// node's children; failures set the key's error state).
    pub(super) fn apply_outcomes(
        &mut self,
        id: NodeId,
        batch: &mut [Evaluation],
        targets: &[(u32, i64)],
    ) {
        let node = &mut self.nodes[id.index()];
        node.stats.evaluations += batch.len() as u64;
        node.stats.batches += 1;
        self.stats.evaluations += batch.len() as u64;
        for (evaluation, &(out, ts)) in batch.iter_mut().zip(targets) {
            match std::mem::replace(&mut evaluation.outcome, Outcome::Skip) {
                Outcome::Output(value) => self.emit(id, out, value, ts, None),
                Outcome::Skip => {}
                Outcome::Failed(error) => self.fail(id, out, error, ts),
            }
        }
    }

    /// Writes a node's output for one key unless it is unchanged (early
    /// cutoff), then notifies subscribers and queues children.
    pub(super) fn emit(
        &mut self,
        id: NodeId,
        out: u32,
        value: Value,
        ts: i64,
        transition: Option<Transition>,
    ) {
        let node = &mut self.nodes[id.index()];
        let output = node.output;
        let slot = &mut self.streams[output.index()].slots[out as usize];
        let had_error = slot.error.take().is_some();
        if !had_error && !differs(&slot.series, &value, node.deadband) {
            node.stats.cutoffs += 1;
            self.stats.cutoffs += 1;
            return;
        }
        match value {
            Value::Float(v) => slot.series.push_float(ts, v),
            other => slot.series.push_value(ts, other),
        }
        self.after_write(output, out, transition);
    }

    pub(super) fn fail(&mut self, id: NodeId, out: u32, error: Arc<str>, _ts: i64) {
        let node = &mut self.nodes[id.index()];
        node.stats.errors += 1;
        self.stats.errors += 1;
        let output = node.output;
        self.streams[output.index()].slots[out as usize].error = Some(error);
        self.mark_changed(output, out);
        if !self.streams[output.index()].subscribers.is_empty() {
            self.notify(output, out, None);
        }
    }

    /// Applies the passage of time to constraints (`for` debounce and
    /// `stale_after` deadlines), then runs a wave for whatever changed.
    /// Returns the number of transitions.
    pub fn tick(&mut self) -> u64 {
        let now = self.clock.now_ns();
        let before = self.stats.transitions;
        for index in 0..self.nodes.len() {
            let NodeLogic::Constraint(spec) = &self.nodes[index].logic else {
                continue;
            };
            if spec.hold_ns == 0 && spec.stale_after_ns.is_none() {
                continue;
            }
            let spec = *spec;
            for out in 0..self.nodes[index].keys.len() {
                let key_state = &mut self.nodes[index].keys[out].constraint;
                let from = key_state.state;
                if let Some(to) = key_state.on_tick(&spec, now) {
                    self.transition(NodeId(index as u32), out as u32, from, to, None, now, now);
                }
            }
        }
        self.run_wave();
        self.stats.transitions - before
    }
}

/// Evaluation `used` of a wave's kept `batch`, made ready for `key` (no
/// inputs yet, outcome [`Outcome::Skip`]): reused, or added with room for
/// `inputs` windows. The steady path allocates nothing.
pub(super) fn scratch_evaluation<'a>(
    batch: &'a mut Vec<Evaluation>,
    used: usize,
    key: &Arc<str>,
    inputs: usize,
) -> &'a mut Evaluation {
    if used == batch.len() {
        batch.push(Evaluation {
            key: Arc::clone(key),
            inputs: Vec::with_capacity(inputs),
            outcome: Outcome::Skip,
        });
    } else {
        let evaluation = &mut batch[used];
        if !Arc::ptr_eq(&evaluation.key, key) {
            evaluation.key = Arc::clone(key);
        }
        evaluation.inputs.clear();
        evaluation.outcome = Outcome::Skip;
    }
    &mut batch[used]
}

/// Whether `value` differs from the newest sample of `series` enough to be written.
#[inline]
pub(super) fn differs(series: &SeriesRing, value: &Value, deadband: Option<f64>) -> bool {
    if series.count == 0 {
        return true;
    }
    match (value, &series.values) {
        (Value::Float(new), None) => {
            // The kept newest number: no ring is read.
            let old = series.latest_num().unwrap_or(f64::NAN);
            float_changed(old, *new, deadband)
        }
        _ => match (series.latest_value(), deadband) {
            (Some(old), Some(deadband)) => match (old.as_f64(), value.as_f64()) {
                (Some(old), Some(new)) => changed_by(new - old, deadband),
                _ => old != *value,
            },
            (Some(old), None) => old != *value,
            (None, _) => true,
        },
    }
}

/// Whether a float output moved enough to be written: any bit change without
/// a deadband, at least `deadband` with one.
#[inline]
pub(super) fn float_changed(old: f64, new: f64, deadband: Option<f64>) -> bool {
    match deadband {
        Some(deadband) => changed_by(new - old, deadband),
        None => new.to_bits() != old.to_bits(),
    }
}

/// Whether a change of `difference` reaches `deadband` (NaN counts as a change).
pub(super) fn changed_by(difference: f64, deadband: f64) -> bool {
    difference.abs() >= deadband || difference.is_nan()
}
