//! The read model: what readers need (the latest state of every changed
//! (name, key), the graph's description, the counters), published by the
//! engine after each wave, so `/state`, `/graph`, `/metrics`, `/healthz` and
//! Python's `latest()`/`stats()` answer without the engine lock.
//!
//! The engine writes it once per wave under a short write lock (only the
//! (name, key) pairs the wave changed, plus a few counters per node);
//! readers take the read lock for as long as one lookup. A reader therefore
//! sees the state as of the last completed wave, never a half-applied one,
//! and never waits for a wave to finish.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rustc_hash::FxHashMap;

use crate::error::{GraphError, did_you_mean};
use crate::info::{GraphStats, NodeInfo, NodeStats, Reading, StreamInfo};
use crate::value::{Sample, Value};

/// One page of [`ReadModel::latest_page`].
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The keys of the page with their latest state, in key order.
    pub keys: Vec<(Arc<str>, Reading)>,
    /// The key to ask after for the next page; `None` on the last one.
    pub next: Option<Arc<str>>,
}

/// Per-node counters published with every wave.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeCounters {
    pub(crate) stats: NodeStats,
    pub(crate) keys: usize,
    pub(crate) lag_ns: u64,
}

/// Per-stream counters published with every wave.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamCounters {
    pub(crate) keys: usize,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
}

/// The published states of one stream, by the engine's slot (so the engine
/// writes a change without hashing its key).
#[derive(Default)]
struct StreamStates {
    slot_of_key: FxHashMap<Arc<str>, u32>,
    /// The same keys in order, so a page of them costs O(page + log keys)
    /// (a key is added once, when its slot first publishes).
    ordered: BTreeMap<Arc<str>, u32>,
    /// The key and latest state of each slot that has published one.
    slots: Vec<Option<(Arc<str>, Reading)>>,
}

impl StreamStates {
    fn get(&self, key: &str) -> Option<&Reading> {
        let slot = *self.slot_of_key.get(key)?;
        self.slots
            .get(slot as usize)
            .and_then(|s| s.as_ref())
            .map(|(_, reading)| reading)
    }

    #[inline]
    fn set(&mut self, slot: u32, key: Option<Arc<str>>, reading: Reading) {
        let index = slot as usize;
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        match (&mut self.slots[index], key) {
            (Some((_, current)), _) => *current = reading,
            (empty, Some(key)) => {
                self.slot_of_key.insert(Arc::clone(&key), slot);
                self.ordered.insert(Arc::clone(&key), slot);
                *empty = Some((key, reading));
            }
            // The engine sends the key with a slot's first publication.
            (None, None) => {}
        }
    }
}

#[derive(Default)]
struct Published {
    /// Stream index by name (streams, nodes and constraints).
    names: FxHashMap<Arc<str>, usize>,
    /// Names of nodes a reload removed (and not added again).
    retired: Vec<Arc<str>>,
    /// Latest states per stream index.
    states: Vec<StreamStates>,
    /// Nodes in evaluation order, without their counters.
    nodes: Arc<Vec<NodeInfo>>,
    /// Every stream (inputs and node outputs), without their counters.
    streams: Arc<Vec<StreamInfo>>,
    node_counters: Vec<NodeCounters>,
    stream_counters: Vec<StreamCounters>,
    stats: GraphStats,
    waves: u64,
}

/// The graph's nodes and streams, without their counters.
pub(crate) type Description = (Arc<Vec<NodeInfo>>, Arc<Vec<StreamInfo>>);

/// What one publication changes.
pub(crate) struct Publication {
    pub(crate) description: Option<Description>,
    pub(crate) node_counters: Vec<NodeCounters>,
    pub(crate) stream_counters: Vec<StreamCounters>,
    pub(crate) stats: GraphStats,
}

/// The changed slots of a publication, written straight into the model
/// while it is locked (no list of them is built first).
pub(crate) struct Changes<'a> {
    states: &'a mut Vec<StreamStates>,
}

impl Changes<'_> {
    /// Sets (stream index, slot)'s reading; `key` only the first time a
    /// slot is published (its slot holds it after).
    #[inline]
    pub(crate) fn set(
        &mut self,
        stream: usize,
        slot: u32,
        key: Option<Arc<str>>,
        reading: Reading,
    ) {
        if let Some(states) = self.states.get_mut(stream) {
            states.set(slot, key, reading);
        }
    }

    /// [`Changes::set`] of a float sample, the common change: a slot that
    /// holds a float already has its fields written where they are, so no
    /// whole `Value` is built and moved (each move of one made the store
    /// forwarding of its odd-sized pieces stall).
    #[inline]
    pub(crate) fn set_float(
        &mut self,
        stream: usize,
        slot: u32,
        key: Option<Arc<str>>,
        sample: (f64, i64, u64),
        error: Option<Arc<str>>,
    ) {
        let Some(states) = self.states.get_mut(stream) else {
            return;
        };
        let (value, ts_ns, seq) = sample;
        if let Some(Some((_, current))) = states.slots.get_mut(slot as usize) {
            match &mut current.sample {
                Some(Sample {
                    value: Value::Float(held),
                    ts_ns: held_ts,
                    seq: held_seq,
                }) => {
                    *held = value;
                    *held_ts = ts_ns;
                    *held_seq = seq;
                }
                other => {
                    *other = Some(Sample {
                        value: Value::Float(value),
                        ts_ns,
                        seq,
                    })
                }
            }
            if current.error.is_some() || error.is_some() {
                current.error = error;
            }
            return;
        }
        let sample = Some(Sample {
            value: Value::Float(value),
            ts_ns,
            seq,
        });
        states.set(slot, key, Reading { sample, error });
    }
}

/// The engine's published state, shared with readers (see the module docs).
#[derive(Default)]
pub struct ReadModel {
    state: RwLock<Published>,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("waves", &self.read().waves)
            .finish_non_exhaustive()
    }
}

impl ReadModel {
    fn read(&self) -> RwLockReadGuard<'_, Published> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn apply(&self, publication: Publication, changes: impl FnOnce(&mut Changes<'_>)) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some((nodes, streams)) = publication.description {
            // A name a reload removed reads as removed; one added again
            // names its new stream.
            state.names.clear();
            state.retired.clear();
            for (index, stream) in streams.iter().enumerate() {
                match stream.retired {
                    true => state.retired.push(Arc::from(stream.name.as_str())),
                    false => {
                        state.names.insert(Arc::from(stream.name.as_str()), index);
                    }
                }
            }
            let count = streams.len();
            state.states.resize_with(count, StreamStates::default);
            state.nodes = nodes;
            state.streams = streams;
        }
        changes(&mut Changes {
            states: &mut state.states,
        });
        state.node_counters = publication.node_counters;
        state.stream_counters = publication.stream_counters;
        state.stats = publication.stats;
        state.waves += 1;
    }

    /// The published states of `name`, or the error naming it.
    fn states_of<'a>(state: &'a Published, name: &str) -> Result<&'a StreamStates, GraphError> {
        state
            .names
            .get(name)
            .and_then(|&i| state.states.get(i))
            .ok_or_else(|| Self::unknown(state, name))
    }

    fn unknown(state: &Published, name: &str) -> GraphError {
        let hint = match state.retired.iter().any(|r| &**r == name) {
            true => "; it was removed by a reload of the config".to_string(),
            false => did_you_mean(name, state.names.keys().map(|n| &**n)),
        };
        GraphError::UnknownName {
            name: name.to_string(),
            hint,
        }
    }

    /// `Ok(())` if `name` is a stream, node or constraint, else the error
    /// (with a suggestion) that [`crate::Graph::latest`] would give.
    pub fn check_name(&self, name: &str) -> Result<(), GraphError> {
        let state = self.read();
        match state.names.contains_key(name) {
            true => Ok(()),
            false => Err(Self::unknown(&state, name)),
        }
    }

    /// The latest state of (name, key) as of the last wave; `Ok(None)` if
    /// the key has no sample yet.
    pub fn latest(&self, name: &str, key: &str) -> Result<Option<Reading>, GraphError> {
        let state = self.read();
        Ok(Self::states_of(&state, name)?.get(key).cloned())
    }

    /// Every key of `name` with its latest state, ordered by key.
    pub fn latest_all(&self, name: &str) -> Result<Vec<(Arc<str>, Reading)>, GraphError> {
        let state = self.read();
        let states = Self::states_of(&state, name)?;
        let mut all: Vec<(Arc<str>, Reading)> = states
            .slots
            .iter()
            .flatten()
            .map(|(key, reading)| (Arc::clone(key), reading.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// How many keys `name` has.
    pub fn count_keys(&self, name: &str) -> Result<usize, GraphError> {
        let state = self.read();
        let states = Self::states_of(&state, name)?;
        Ok(states.slots.iter().flatten().count())
    }

    /// How many keys of `name` hold each string value now (a constraint's
    /// `ok`, `tripped`, `stale`), without cloning any: what `/metrics`
    /// reports per constraint. Costs one pass over the keys.
    pub fn count_states(&self, name: &str) -> Result<Vec<(Arc<str>, u64)>, GraphError> {
        let state = self.read();
        let states = Self::states_of(&state, name)?;
        let mut counts: Vec<(Arc<str>, u64)> = Vec::new();
        for (_, reading) in states.slots.iter().flatten() {
            if let Some(crate::Value::Str(value)) = reading.sample.as_ref().map(|s| &s.value) {
                match counts.iter_mut().find(|(v, _)| v == value) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((Arc::clone(value), 1)),
                }
            }
        }
        Ok(counts)
    }

    /// One page of the keys of `name` in key order: those after `after`,
    /// at most `limit` of them and at most about `max_bytes` of values, and
    /// the key to continue after when more remain. Costs O(page + log keys)
    /// through the ordered index, and clones only the page.
    pub fn latest_page(
        &self,
        name: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, GraphError> {
        let state = self.read();
        let states = Self::states_of(&state, name)?;
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let limit = limit.max(1);
        let mut entries = states
            .ordered
            .range::<str, _>((from, Bound::Unbounded))
            .filter_map(|(_, slot)| states.slots.get(*slot as usize)?.as_ref());
        let mut keys = Vec::with_capacity(limit.min(1024));
        let mut bytes = 0usize;
        let mut cut = false;
        for (key, reading) in entries.by_ref() {
            let size = key.len()
                + 128
                + reading.sample.as_ref().map_or(0, |s| s.value.heap_size())
                + reading.error.as_ref().map_or(0, |e| e.len());
            if keys.len() == limit || (!keys.is_empty() && bytes + size > max_bytes) {
                cut = true;
                break;
            }
            bytes += size;
            keys.push((Arc::clone(key), reading.clone()));
        }
        let next = if cut {
            keys.last().map(|(key, _)| Arc::clone(key))
        } else {
            None
        };
        Ok(Page { keys, next })
    }

    /// Every node in evaluation order, with its counters as of the last wave.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let state = self.read();
        state
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let mut node = node.clone();
                if let Some(counters) = state.node_counters.get(index) {
                    node.stats = counters.stats.clone();
                    node.keys = counters.keys;
                    node.lag_ns = counters.lag_ns;
                }
                node.failing_keys = state
                    .names
                    .get(node.name.as_str())
                    .and_then(|&i| state.states.get(i))
                    .map_or(0, |states| {
                        states
                            .slots
                            .iter()
                            .flatten()
                            .filter(|(_, r)| r.error.is_some())
                            .count()
                    });
                node
            })
            .filter(|node| !node.retired)
            .collect()
    }

    /// Every stream (inputs and node outputs), with its counters.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let state = self.read();
        state
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| {
                let mut stream = stream.clone();
                if let Some(counters) = state.stream_counters.get(index) {
                    stream.keys = counters.keys;
                    stream.accepted = counters.accepted;
                    stream.rejected = counters.rejected;
                }
                stream
            })
            .filter(|stream| !stream.retired)
            .collect()
    }

    /// Graph-wide counters as of the last wave.
    pub fn stats(&self) -> GraphStats {
        self.read().stats.clone()
    }
}
