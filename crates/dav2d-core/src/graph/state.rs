//! Snapshot and restore: exporting and importing the whole state for
//! checkpoints, and replaying logged samples.

use std::sync::Arc;

use super::*;
use crate::constraint::{ConstraintKeyState, ConstraintState};
use crate::logic::Builtin;
use crate::value::Value;

impl Graph {
    /// Everything a restart needs to continue where this graph is: every
    /// (stream, key)'s held samples with their sequence numbers and error
    /// state, and every node's per-key memory and constraint timers.
    pub fn export_state(&self) -> GraphState {
        self.export_state_where(|_| true)
    }

    /// [`Graph::export_state`] of the keys `wanted` accepts only: what a
    /// cluster partition's checkpoint holds.
    pub fn export_state_where(&self, wanted: impl Fn(&str) -> bool) -> GraphState {
        let wanted_keys: Vec<bool> = self.keys.iter().map(|key| wanted(key)).collect();
        let streams = self
            .streams
            .iter()
            .map(|s| StreamState {
                name: s.name.to_string(),
                keys: s
                    .slots
                    .iter()
                    .filter(|slot| wanted_keys[slot.key.index()])
                    .map(|slot| KeyState {
                        key: self.keys[slot.key.index()].to_string(),
                        count: slot.series.count,
                        samples: slot.series.held_samples(),
                        error: slot.error.as_deref().map(str::to_string),
                    })
                    .collect(),
            })
            .collect();
        let nodes = self
            .nodes
            .iter()
            .map(|node| NodeState {
                name: node.name.to_string(),
                keys: node
                    .keys
                    .iter()
                    .zip(&self.streams[node.output.index()].slots)
                    .filter(|(_, slot)| wanted_keys[slot.key.index()])
                    .map(|(node_key, slot)| NodeKeyState {
                        key: self.keys[slot.key.index()].to_string(),
                        memory: node_key.memory,
                        constraint: node_key.constraint,
                    })
                    .collect(),
            })
            .collect();
        GraphState { streams, nodes }
    }

    /// Restores what [`Graph::export_state`] captured into a graph with the
    /// same streams and nodes registered (for example, built from the same
    /// config). Names this graph does not have are skipped and returned, so
    /// the caller can report them. Nothing is evaluated.
    pub fn import_state(&mut self, state: &GraphState) -> Vec<String> {
        let mut skipped = Vec::new();
        for stream in &state.streams {
            let Some(id) = self.stream_id(&stream.name) else {
                skipped.push(stream.name.clone());
                continue;
            };
            for key in &stream.keys {
                let key_id = self.intern_key(&key.key);
                let slot = self.slot_for(id, key_id);
                let s = &mut self.streams[id.index()];
                let capacity = s.capacity.max(key.samples.len());
                if capacity > s.capacity {
                    self.ensure_capacity(id, capacity);
                }
                let slot_ref = &mut self.streams[id.index()].slots[slot as usize];
                slot_ref.series.restore(key.count, &key.samples);
                slot_ref.error = key.error.as_deref().map(Arc::from);
                self.mark_changed(id, slot);
            }
        }
        for node in &state.nodes {
            let Some(id) = self.stream_id(&node.name) else {
                skipped.push(node.name.clone());
                continue;
            };
            let Some(node_id) = self.streams[id.index()].producer else {
                skipped.push(node.name.clone());
                continue;
            };
            for key in &node.keys {
                let key_id = self.intern_key(&key.key);
                let slot = self.slot_for(id, key_id);
                let node_key = &mut self.nodes[node_id.index()].keys[slot as usize];
                node_key.memory = key.memory;
                node_key.constraint = key.constraint;
            }
        }
        self.publish();
        skipped
    }

    /// Appends a logged sample to (stream, key) as it was recorded, without
    /// evaluating anything: the replay half of a restart (checkpoint, then
    /// the write-ahead log). For a constraint's stream the key's state
    /// follows the value; for an ewma node its memory does. Returns false if
    /// the graph has no such stream.
    pub fn restore_sample(&mut self, stream: &str, key: &str, ts_ns: i64, value: Value) -> bool {
        let Some(id) = self.stream_id(stream) else {
            return false;
        };
        let key_id = self.intern_key(key);
        let slot = self.slot_for(id, key_id);
        if let Some(node) = self.streams[id.index()].producer {
            let node = &mut self.nodes[node.index()];
            let node_key = &mut node.keys[slot as usize];
            match (&node.logic, &value) {
                (NodeLogic::Constraint(_), Value::Str(state)) => {
                    node_key.constraint.state =
                        ConstraintState::from_name(state).unwrap_or(ConstraintState::Ok);
                    node_key.constraint.holding_since_ns = None;
                    node_key.constraint.last_update_ns = ts_ns;
                }
                (NodeLogic::Builtin(Builtin::Ewma { .. }), Value::Float(v)) => {
                    node_key.memory = Some(*v)
                }
                _ => {}
            }
        }
        let is_input = self.streams[id.index()].producer.is_none();
        let slot_ref = &mut self.streams[id.index()].slots[slot as usize];
        slot_ref.error = None;
        let before = slot_ref.series.value_bytes;
        slot_ref.series.push_value(ts_ns, value);
        let after = slot_ref.series.value_bytes;
        if is_input {
            self.account_retained(before, after);
        }
        self.mark_changed(id, slot);
        true
    }
}

/// The state of a whole graph, as [`Graph::export_state`] captures it.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphState {
    /// Every stream (input streams, node outputs, constraint states).
    pub streams: Vec<StreamState>,
    /// Every node's per-key memory.
    pub nodes: Vec<NodeState>,
}

/// The state of one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamState {
    /// The stream's name.
    pub name: String,
    /// Every key.
    pub keys: Vec<KeyState>,
}

/// The state of one (stream, key).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyState {
    /// The key.
    pub key: String,
    /// How many samples the series has had (the next sequence number).
    pub count: u64,
    /// The held samples, oldest first: (timestamp ns, value).
    pub samples: Vec<(i64, Value)>,
    /// The error state of a node's key.
    pub error: Option<String>,
}

/// The per-key memory of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// Every key.
    pub keys: Vec<NodeKeyState>,
}

/// The memory of one (node, key).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeKeyState {
    /// The key.
    pub key: String,
    /// A stateful built-in's memory (ewma).
    pub memory: Option<f64>,
    /// A constraint's state and timers.
    pub constraint: ConstraintKeyState,
}
