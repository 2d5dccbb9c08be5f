//! Reads under the lock: latest values, windows, subscriptions, counters
//! and descriptions (readers without the lock use the read model).

use std::sync::Arc;

use super::*;
use crate::constraint::ConstraintState;
use crate::error::GraphError;
use crate::ids::{NodeId, StreamId};
use crate::value::Sample;
use crate::window::WindowSnapshot;

impl Graph {
    /// The latest state of (name, key); `Ok(None)` if the key has no sample yet.
    pub fn latest(&self, name: &str, key: &str) -> Result<Option<Reading>, GraphError> {
        let stream = self
            .stream_id(name)
            .ok_or_else(|| self.unknown_name(name))?;
        let Some(key) = self.key_ids.get(key) else {
            return Ok(None);
        };
        let s = &self.streams[stream.index()];
        let Some(&slot) = s.slot_of_key.get(key) else {
            return Ok(None);
        };
        let slot = &s.slots[slot as usize];
        if slot.series.count == 0 && slot.error.is_none() {
            return Ok(None);
        }
        let sample = slot.series.latest_value().map(|value| Sample {
            value,
            ts_ns: slot.series.latest_ts().unwrap_or_default(),
            seq: slot.series.count - 1,
        });
        Ok(Some(Reading {
            sample,
            error: slot.error.clone(),
        }))
    }

    /// Every key of `name` with its latest state.
    pub fn latest_all(&self, name: &str) -> Result<Vec<(Arc<str>, Reading)>, GraphError> {
        let stream = self
            .stream_id(name)
            .ok_or_else(|| self.unknown_name(name))?;
        let s = &self.streams[stream.index()];
        let mut readings = Vec::with_capacity(s.slots.len());
        for slot in &s.slots {
            if slot.series.count == 0 && slot.error.is_none() {
                continue;
            }
            let sample = slot.series.latest_value().map(|value| Sample {
                value,
                ts_ns: slot.series.latest_ts().unwrap_or_default(),
                seq: slot.series.count - 1,
            });
            readings.push((
                Arc::clone(&self.keys[slot.key.index()]),
                Reading {
                    sample,
                    error: slot.error.clone(),
                },
            ));
        }
        Ok(readings)
    }

    /// The newest `n` samples of (name, key), zero-copy.
    pub fn window(&self, name: &str, key: &str, n: usize) -> Result<WindowSnapshot, GraphError> {
        let stream = self
            .stream_id(name)
            .ok_or_else(|| self.unknown_name(name))?;
        let s = &self.streams[stream.index()];
        let slot = self.key_ids.get(key).and_then(|key| s.slot_of_key.get(key));
        Ok(match slot {
            Some(&slot) => s.slots[slot as usize].series.snapshot(n),
            None => WindowSnapshot::empty(),
        })
    }

    /// Subscribes to changes of `name` (a stream, node or constraint).
    pub fn subscribe(
        &mut self,
        name: &str,
        mode: SubscriptionMode,
        capacity: usize,
    ) -> Result<Subscription, GraphError> {
        // With auto-created streams, subscribing to a new name creates it.
        let stream = match self.stream_id(name) {
            Some(stream) => stream,
            None if self.options.auto_create_streams && !name.is_empty() => {
                self.add_stream(name, None, Bounds::default())
            }
            None => return Err(self.unknown_name(name)),
        };
        let s = &mut self.streams[stream.index()];
        let (subscription, shared) =
            Subscription::new(Arc::clone(&s.name), mode, capacity, &self.backpressure);
        s.subscribers.push(shared);
        Ok(subscription)
    }

    /// One subscription receiving the changes of every name in `names`
    /// (each update carries its name). Unknown names are an error.
    pub fn subscribe_many(
        &mut self,
        names: &[&str],
        mode: SubscriptionMode,
        capacity: usize,
    ) -> Result<Subscription, GraphError> {
        let ids = names
            .iter()
            .map(|name| self.stream_id(name).ok_or_else(|| self.unknown_name(name)))
            .collect::<Result<Vec<_>, _>>()?;
        let label: Arc<str> = Arc::from(names.join(","));
        let (subscription, shared) = Subscription::new(label, mode, capacity, &self.backpressure);
        for id in ids {
            self.streams[id.index()]
                .subscribers
                .push(Arc::clone(&shared));
        }
        Ok(subscription)
    }

    /// Whether samples pushed to `name` feed an `all` edge (and so may wait
    /// for evaluations rather than conflate).
    pub fn feeds_all_edge(&self, name: &str) -> bool {
        self.stream_id(name)
            .is_some_and(|id| self.streams[id.index()].has_all_consumer)
    }

    /// Graph-wide counters.
    pub fn stats(&self) -> GraphStats {
        let mut stats = self.stats.clone();
        let mut reasons: Vec<_> = self
            .rejected_by_reason
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        reasons.sort_by_key(|(reason, _)| reason.as_str());
        stats.rejected_by_reason = reasons;
        stats.streams = self.streams.len();
        stats.nodes = self.nodes.len();
        stats.keys = self.keys.len();
        stats
    }

    /// Every node in topological order (a node a reload removed is not).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = self.all_nodes();
        nodes.retain(|n| !n.retired);
        nodes
    }

    /// Every node, retired ones too (index-aligned with the engine's).
    pub(super) fn all_nodes(&self) -> Vec<NodeInfo> {
        let now = self.clock.now_ns();
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| NodeInfo {
                name: node.name.to_string(),
                kind: node.kind,
                logic: node.description.clone(),
                inputs: node
                    .inputs
                    .iter()
                    .map(|i| InputSpec {
                        name: self.streams[i.stream.index()].name.to_string(),
                        window: i.window,
                        policy: i.policy,
                        span_ns: i.span,
                    })
                    .collect(),
                priority: node.priority,
                deadband: node.deadband,
                keys: node.keys.len(),
                failing_keys: self.streams[node.output.index()]
                    .slots
                    .iter()
                    .filter(|s| s.error.is_some())
                    .count(),
                offload: node.offload.is_some(),
                lag_ns: self.lag_ns(NodeId(index as u32), now),
                offload_waiting: self.offload_waiting(NodeId(index as u32)),
                retired: matches!(node.logic, NodeLogic::Retired),
                stats: node.stats.clone(),
            })
            .collect()
    }

    /// Every stream, inputs and node outputs (not a removed node's).
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut streams = self.all_streams();
        streams.retain(|s| !s.retired);
        streams
    }

    /// Every stream, retired ones too (index-aligned with the engine's).
    pub(super) fn all_streams(&self) -> Vec<StreamInfo> {
        self.streams
            .iter()
            .enumerate()
            .map(|(index, s)| StreamInfo {
                name: s.name.to_string(),
                producer: s.producer.map(|n| self.nodes[n.index()].name.to_string()),
                bounds: s.bounds,
                value_type: self.value_type(StreamId(index as u32)),
                capacity: s.capacity,
                keys: s.slots.len(),
                accepted: s.accepted,
                rejected: s.rejected,
                retired: s
                    .producer
                    .is_some_and(|n| matches!(self.nodes[n.index()].logic, NodeLogic::Retired)),
                late: s.late,
            })
            .collect()
    }

    /// The keys of constraint `name` that are currently in `state`.
    pub fn constraint_keys_in(
        &self,
        name: &str,
        state: ConstraintState,
    ) -> Result<Vec<Arc<str>>, GraphError> {
        let stream = self
            .stream_id(name)
            .ok_or_else(|| self.unknown_name(name))?;
        let Some(node) = self.streams[stream.index()].producer else {
            return Ok(Vec::new());
        };
        let node = &self.nodes[node.index()];
        let slots = &self.streams[node.output.index()].slots;
        Ok(node
            .keys
            .iter()
            .zip(slots)
            .filter(|(k, s)| k.constraint.state == state && s.series.count > 0)
            .map(|(_, s)| Arc::clone(&self.keys[s.key.index()]))
            .collect())
    }
}
