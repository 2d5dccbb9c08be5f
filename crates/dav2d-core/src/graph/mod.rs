//! The latest-value dataflow graph: streams, nodes, waves.
//!
//! # How a wave works
//!
//! Pushing a sample appends it to its (stream, key) ring and queues every
//! consumer (node, key) for the next wave. A wave then evaluates queued
//! (node, key) pairs in node order, which is a topological order because a
//! node can only be registered after its inputs exist (batches are sorted
//! first). A node's new output queues its children for later in the *same*
//! wave, so every (node, key) is evaluated at most once per wave and always
//! after all of its parents: a diamond `A → B, A → C, B + C → D` never shows
//! `D` a new `B` beside an old `C`.
//!
//! A `latest` edge queues a (node, key) once however many samples arrive
//! before the wave (the extra ones are counted as conflated); the window
//! still receives every sample. An `all` edge needs one evaluation per
//! sample, so a second sample for the same (stream, key) runs the pending
//! wave before it is applied: a producer pushing faster than the graph
//! evaluates pays for the evaluations itself, which is the backpressure.
//!
//! Early cutoff: an output equal to the previous one (or closer than the
//! node's `deadband`) is not written and wakes no children.

use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

mod columnar;
mod ingest;
mod offload;
mod publish;
mod read;
mod register;
mod retire;
mod retune;
mod rewire;
mod series;
mod state;
mod wave;

pub use ingest::{BatchReport, Keys, SampleIn};
pub use series::SeriesRow;
pub use state::{GraphState, KeyState, NodeKeyState, NodeState, StreamState};

use crate::info::{GraphStats, NodeInfo, NodeKind, NodeStats, Reading, StreamInfo};
use crate::spec::{
    Bounds, EdgePolicy, GraphOptions, InputSpec, LatePolicy, Limits, LogicSpec, NodeSpec,
};
use crate::window::MAX_WINDOW;

use crate::clock::Clock;
use crate::constraint::{ConstraintKeyState, ConstraintSpec, ConstraintState};
use crate::error::{GraphError, Rejection, did_you_mean};
use crate::ids::{KeyId, NodeId, StreamId};
use crate::logic::{Builtin, CustomLogic};
use crate::reason::RejectReason;
use crate::subscribe::{Subscription, SubscriptionMode, SubscriptionShared, Update};
use crate::value::{Value, ValueType};
use crate::window::SeriesRing;

const UNRESOLVED: u32 = u32::MAX;

/// Bytes a window holds per sample of its capacity: a timestamp and a
/// number, each in a mirrored ring (twice the capacity).
pub const WINDOW_SAMPLE_BYTES: usize = 2 * (8 + 8);

#[derive(Clone, Copy, Debug)]
struct Consumer {
    node: NodeId,
    input: usize,
    policy: EdgePolicy,
}

/// One (stream, key). Laid out by hand (`repr(C)`, aligned to a cache
/// line): what publishing a change reads (the flags, the key, the error,
/// and the series' count, newest sample and whether it holds full values)
/// lies in the slot's first 64 bytes, so it reads one cache line.
#[repr(C, align(64))]
struct Slot {
    /// Whether the read model has yet to see this slot's latest change.
    unpublished: bool,
    /// Whether the read model holds this slot (and its key) already.
    in_model: bool,
    key: KeyId,
    error: Option<Arc<str>>,
    series: SeriesRing,
    /// The wave in which this slot last received a sample, when the stream
    /// has an `all` consumer.
    all_stamp: u64,
    /// For each consumer of the stream: that consumer's output slot for this key.
    downstream: Downstream,
}

/// A slot's output slot in each consumer of its stream (`UNRESOLVED` until
/// resolved): the first consumer's held in the slot itself, so writing a
/// sample reads no other allocation to find it; the others' in a list.
struct Downstream {
    first: u32,
    rest: Vec<u32>,
}

impl Downstream {
    fn new() -> Self {
        Self {
            first: UNRESOLVED,
            rest: Vec::new(),
        }
    }

    /// Consumer `index`'s output slot, `UNRESOLVED` when not yet known.
    #[inline]
    fn get(&self, index: usize) -> u32 {
        match index {
            0 => self.first,
            _ => self.rest.get(index - 1).copied().unwrap_or(UNRESOLVED),
        }
    }

    fn set(&mut self, index: usize, out: u32) {
        match index {
            0 => self.first = out,
            _ => {
                if self.rest.len() < index {
                    self.rest.resize(index, UNRESOLVED);
                }
                self.rest[index - 1] = out;
            }
        }
    }

    /// Forgets consumer `index`'s entry; the later consumers' move down one.
    fn remove(&mut self, index: usize) {
        match index {
            0 if self.rest.is_empty() => self.first = UNRESOLVED,
            0 => self.first = self.rest.remove(0),
            _ if index - 1 < self.rest.len() => {
                self.rest.remove(index - 1);
            }
            _ => {}
        }
    }
}

struct Stream {
    name: Arc<str>,
    producer: Option<NodeId>,
    bounds: Bounds,
    /// The type declared for it, if any.
    declared_type: Option<ValueType>,
    /// A numeric node (a built-in or a constraint) reading it, if any: the
    /// stream then takes numbers unless its type is declared.
    numeric_reader: Option<NodeId>,
    capacity: usize,
    slots: Vec<Slot>,
    slot_of_key: FxHashMap<KeyId, u32>,
    consumers: Vec<Consumer>,
    has_all_consumer: bool,
    subscribers: Vec<Arc<SubscriptionShared>>,
    accepted: u64,
    rejected: u64,
    /// What a sample older than its key's latest does.
    late: LatePolicy,
}

struct NodeInput {
    stream: StreamId,
    /// Samples the logic sees (a time window's cap).
    window: usize,
    policy: EdgePolicy,
    /// A time window's length (ns).
    span: Option<i64>,
}

#[derive(Clone)]
struct NodeKey {
    /// Waiting for the offloaded node's job in flight to come back.
    offload_waiting: bool,
    inputs: Box<[u32]>,
    memory: Option<f64>,
    constraint: ConstraintKeyState,
}

enum NodeLogic {
    Builtin(Builtin),
    Custom(Box<dyn CustomLogic>),
    Constraint(ConstraintSpec),
    /// Custom logic taken out while it runs.
    Running,
    /// A node a reload removed: never evaluated again.
    Retired,
}

struct Node {
    name: Arc<str>,
    kind: NodeKind,
    output: StreamId,
    inputs: Vec<NodeInput>,
    logic: NodeLogic,
    description: String,
    priority: i32,
    deadband: Option<f64>,
    keys: Vec<NodeKey>,
    /// The wave each key was last queued in (`u64::MAX`: never), one per
    /// key beside `keys` rather than in them: queueing a key, once per
    /// sample written to an input, reads a dense array.
    queued: Vec<u64>,
    pending: Vec<u32>,
    stats: NodeStats,
    /// Native logic with a single `all` input: evaluated the moment its
    /// input is written, since that input is already final for the sample
    /// (exactly what its wave would compute, without the queueing).
    immediate: bool,
    /// Set for an offloaded node: its job in flight and waiting keys.
    offload: Option<offload::Offload>,
}

/// A small bit set of node indices with pending work.
#[derive(Default)]
struct PendingNodes {
    words: Vec<u64>,
    count: usize,
}

impl PendingNodes {
    fn insert(&mut self, index: usize) {
        let word = index / 64;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (index % 64);
        if self.words[word] & bit == 0 {
            self.words[word] |= bit;
            self.count += 1;
        }
    }

    /// Removes and returns the lowest index at or after `from`.
    fn pop_from(&mut self, from: usize) -> Option<usize> {
        if self.count == 0 {
            return None;
        }
        let mut word = from / 64;
        let mut mask = !0u64 << (from % 64);
        while word < self.words.len() {
            let bits = self.words[word] & mask;
            if bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                self.words[word] &= !(1u64 << bit);
                self.count -= 1;
                return Some(word * 64 + bit);
            }
            word += 1;
            mask = !0;
        }
        None
    }
}

/// The engine's state: streams, keys, nodes and counters. Not thread-safe by
/// itself; share it as [`crate::SharedGraph`].
pub struct Graph {
    options: GraphOptions,
    clock: Arc<dyn Clock>,
    keys: Vec<Arc<str>>,
    key_ids: FxHashMap<Arc<str>, KeyId>,
    streams: Vec<Stream>,
    stream_ids: FxHashMap<Arc<str>, StreamId>,
    nodes: Vec<Node>,
    pending: PendingNodes,
    wave: u64,
    stats: GraphStats,
    rejected_by_reason: FxHashMap<RejectReason, u64>,
    /// The constraint state names, allocated once.
    state_names: [Arc<str>; 3],
    /// What readers see without the lock; see [`Graph::read_model`].
    publishing: Option<publish::Publishing>,
    /// Jobs of offloaded nodes waiting for a worker.
    jobs: Arc<crate::offload::JobQueue>,
    /// How many jobs were queued, to order equal priorities.
    jobs_queued: u64,
    /// (stream, key) pairs of input streams, against `limits.max_keys`.
    input_keys: usize,
    /// Heap bytes the rings of input streams hold, against
    /// `limits.max_retained_bytes`.
    retained_bytes: usize,
    /// Bytes of every slot's window rings (see [`WINDOW_SAMPLE_BYTES`]),
    /// against `limits.max_window_bytes`.
    window_bytes: usize,
    /// Raised while a lossless subscriber is behind.
    backpressure: Arc<crate::subscribe::Backpressure>,
    /// Public waves finished, stored (release) after each one's updates
    /// reached its subscribers; see [`Graph::settled`].
    settled: Arc<std::sync::atomic::AtomicU64>,
    /// Streams a node's input created (nobody declared them), not yet
    /// reported by [`Graph::take_guessed_inputs`].
    guessed: Vec<Arc<str>>,
    /// What caused the wave running now, when not a sample (`reload`):
    /// given to its transitions.
    cause: Option<&'static str>,
    /// A custom node's batch and its targets, kept between waves so the
    /// evaluations and their input vectors are reused.
    custom_scratch: (Vec<crate::logic::Evaluation>, Vec<(u32, i64)>),
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("streams", &self.streams.len())
            .field("nodes", &self.nodes.len())
            .field("keys", &self.keys.len())
            .field("wave", &self.wave)
            .finish()
    }
}

impl Graph {
    /// An empty graph reading time from `clock`.
    pub fn new(options: GraphOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            options,
            clock,
            keys: Vec::new(),
            key_ids: FxHashMap::default(),
            streams: Vec::new(),
            stream_ids: FxHashMap::default(),
            nodes: Vec::new(),
            pending: PendingNodes::default(),
            wave: 0,
            stats: GraphStats::default(),
            rejected_by_reason: FxHashMap::default(),
            cause: None,
            custom_scratch: (Vec::new(), Vec::new()),
            state_names: [
                ConstraintState::Ok,
                ConstraintState::Tripped,
                ConstraintState::Stale,
            ]
            .map(|state| Arc::from(state.as_str())),
            publishing: None,
            jobs: Arc::new(crate::offload::JobQueue::default()),
            jobs_queued: 0,
            input_keys: 0,
            retained_bytes: 0,
            window_bytes: 0,
            backpressure: Arc::default(),
            settled: Arc::default(),
            guessed: Vec::new(),
        }
    }

    /// The streams that a node's input created since the last call (on a
    /// graph that creates streams on use) and that no sample reached yet,
    /// each with the closest other name of the graph if one is close: a
    /// likely misspelling the Python face warns about.
    pub fn take_guessed_inputs(&mut self) -> Vec<(String, Option<String>)> {
        let guessed = std::mem::take(&mut self.guessed);
        guessed
            .into_iter()
            .filter_map(|name| {
                let id = self.stream_id(&name)?;
                let stream = &self.streams[id.index()];
                if stream.accepted > 0 || stream.rejected > 0 || stream.producer.is_some() {
                    return None;
                }
                let others = (self.streams.iter())
                    .map(|s| &*s.name)
                    .filter(|other| **other != *name);
                let close = crate::error::closest(&name, others).map(str::to_string);
                Some((name.to_string(), close))
            })
            .collect()
    }

    fn state_value(&self, state: ConstraintState) -> Value {
        let index = match state {
            ConstraintState::Ok => 0,
            ConstraintState::Tripped => 1,
            ConstraintState::Stale => 2,
        };
        Value::Str(Arc::clone(&self.state_names[index]))
    }

    /// The graph's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The graph's options.
    pub fn options(&self) -> &GraphOptions {
        &self.options
    }

    /// The signal lossless subscribers raise while they are behind;
    /// producers keep a clone and check it without the engine lock.
    pub fn backpressure(&self) -> Arc<crate::subscribe::Backpressure> {
        Arc::clone(&self.backpressure)
    }

    /// How many public waves ([`Graph::run_wave`]) have finished. A
    /// producer that reads it after its batch's wave gets a mark every
    /// update of that batch was offered to subscribers before; a consumer
    /// that reads the counter and then drains its subscription empty has
    /// seen everything up to that mark (durable acknowledgements).
    pub fn settled(&self) -> u64 {
        self.settled.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The counter behind [`Graph::settled`], for consumers to read without the lock.
    pub fn settled_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.settled)
    }

    /// Changes the limits; what the graph already holds stays.
    pub fn set_limits(&mut self, limits: Limits) {
        self.options.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.options.limits
    }

    /// The id of the stream (or node output, or constraint state) `name`.
    pub fn stream_id(&self, name: &str) -> Option<StreamId> {
        self.stream_ids.get(name).copied()
    }

    /// `Ok(())` if `name` is a stream, node or constraint of this graph;
    /// else the error a read of it gives, with the closest name.
    pub fn check_name(&self, name: &str) -> Result<(), GraphError> {
        match self.stream_ids.contains_key(name) {
            true => Ok(()),
            false => Err(self.unknown_name(name)),
        }
    }

    fn unknown_name(&self, name: &str) -> GraphError {
        let live = |s: &&Stream| {
            !s.producer
                .is_some_and(|n| matches!(self.nodes[n.index()].logic, NodeLogic::Retired))
        };
        let hint = match self.streams.iter().any(|s| &*s.name == name && !live(&s)) {
            true => "; it was removed by a reload of the config".to_string(),
            false => did_you_mean(name, self.streams.iter().filter(live).map(|s| &*s.name)),
        };
        GraphError::UnknownName {
            name: name.to_string(),
            hint,
        }
    }

    fn intern_key(&mut self, key: &str) -> KeyId {
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = KeyId(self.keys.len() as u32);
        let key: Arc<str> = Arc::from(key);
        self.keys.push(Arc::clone(&key));
        self.key_ids.insert(key, id);
        id
    }

    fn add_stream(&mut self, name: &str, producer: Option<NodeId>, bounds: Bounds) -> StreamId {
        let id = StreamId(self.streams.len() as u32);
        let name: Arc<str> = Arc::from(name);
        self.streams.push(Stream {
            name: Arc::clone(&name),
            producer,
            bounds,
            declared_type: None,
            numeric_reader: None,
            capacity: self.options.default_keep.max(1),
            slots: Vec::new(),
            slot_of_key: FxHashMap::default(),
            consumers: Vec::new(),
            has_all_consumer: false,
            subscribers: Vec::new(),
            accepted: 0,
            rejected: 0,
            late: LatePolicy::default(),
        });
        self.stream_ids.insert(name, id);
        id
    }

    fn taken_by(&self, id: StreamId) -> String {
        match self.streams[id.index()].producer {
            Some(node) => match self.nodes[node.index()].logic {
                NodeLogic::Constraint(_) => "a constraint".to_string(),
                _ => "a node".to_string(),
            },
            None => "a stream".to_string(),
        }
    }

    /// Sets what input stream `name` does with late samples.
    pub fn set_late_policy(&mut self, name: &str, policy: LatePolicy) -> Result<(), GraphError> {
        let Some(id) = self.stream_id(name) else {
            return Err(self.unknown_name(name));
        };
        if self.streams[id.index()].producer.is_some() {
            return Err(GraphError::InvalidStream {
                stream: name.to_string(),
                message:
                    "a node's output is not an input stream; set `late` on the streams it reads"
                        .to_string(),
            });
        }
        if let LatePolicy::Insert { allowed_ns } = policy
            && allowed_ns < 0
        {
            return Err(GraphError::InvalidStream {
                stream: name.to_string(),
                message: format!("allowed lateness must not be negative, got {allowed_ns} ns"),
            });
        }
        self.streams[id.index()].late = policy;
        Ok(())
    }

    /// Turns auto-created streams on or off from now on (Python turns them
    /// off at the first `declare_stream` unless the graph was made
    /// permissive, so a misspelt name is an error once streams are declared).
    pub fn set_auto_create_streams(&mut self, on: bool) {
        self.options.auto_create_streams = on;
    }

    /// Declares an input stream with validity bounds and how many samples
    /// each key keeps at least (`keep`), or updates an existing input stream.
    pub fn declare_stream(
        &mut self,
        name: &str,
        bounds: Bounds,
        keep: Option<usize>,
    ) -> Result<StreamId, GraphError> {
        if name.is_empty() {
            return Err(GraphError::InvalidStream {
                stream: name.to_string(),
                message: "a stream needs a non-empty name".to_string(),
            });
        }
        if bounds.min.is_some_and(f64::is_nan) || bounds.max.is_some_and(f64::is_nan) {
            return Err(GraphError::InvalidStream {
                stream: name.to_string(),
                message: "min and max must be numbers, not NaN (leave one out for no bound)"
                    .to_string(),
            });
        }
        if let Some(keep) = keep
            && keep > MAX_WINDOW
        {
            return Err(GraphError::InvalidStream {
                stream: name.to_string(),
                message: format!(
                    "keep={keep} is more than the {MAX_WINDOW} samples a key can keep"
                ),
            });
        }
        let id = match self.stream_id(name) {
            Some(id) if self.streams[id.index()].producer.is_some() => {
                return Err(GraphError::DuplicateName {
                    name: name.to_string(),
                    taken_by: self.taken_by(id),
                });
            }
            Some(id) => id,
            None => self.add_stream(name, None, bounds),
        };
        self.streams[id.index()].bounds = bounds;
        if let Some(keep) = keep {
            self.ensure_capacity(id, keep);
        }
        self.republish_description();
        Ok(id)
    }

    /// Bytes one key of every stream and node would hold in its window
    /// rings: what each new key may cost, the base of a config's worst case
    /// (`limits.keys` of them).
    pub fn window_bytes_per_key(&self) -> usize {
        (self.streams.iter())
            .map(|s| s.capacity.saturating_mul(WINDOW_SAMPLE_BYTES))
            .fold(0usize, usize::saturating_add)
    }

    /// Bytes every key's window rings hold now (`limits.window_bytes`).
    pub fn window_bytes(&self) -> usize {
        self.window_bytes
    }

    fn ensure_capacity(&mut self, id: StreamId, capacity: usize) {
        let stream = &mut self.streams[id.index()];
        if capacity > stream.capacity {
            let grown = (capacity - stream.capacity) * stream.slots.len() * WINDOW_SAMPLE_BYTES;
            self.window_bytes = self.window_bytes.saturating_add(grown);
            stream.capacity = capacity;
            for slot in &mut stream.slots {
                slot.series.resize(capacity);
            }
        }
    }

    /// The slot of `key` on input stream `stream`, created within the
    /// limits on keys and key length.
    #[inline]
    pub(super) fn admit_key(&mut self, stream: StreamId, key: &str) -> Result<u32, Rejection> {
        if let Some(id) = self.key_ids.get(key)
            && let Some(slot) = self.streams[stream.index()].slot_of_key.get(id)
        {
            return Ok(*slot);
        }
        let limits = self.options.limits;
        let s = &self.streams[stream.index()];
        if key.len() > limits.max_key_len {
            return Err(Rejection::KeyTooLong {
                stream: s.name.to_string(),
                len: key.len(),
                limit: limits.max_key_len,
            });
        }
        if s.slots.len() >= limits.max_keys_per_stream {
            return Err(Rejection::TooManyKeys {
                stream: s.name.to_string(),
                limit: limits.max_keys_per_stream,
                scope: "on this stream",
            });
        }
        if self.input_keys >= limits.max_keys {
            return Err(Rejection::TooManyKeys {
                stream: s.name.to_string(),
                limit: limits.max_keys,
                scope: "over all streams",
            });
        }
        let cost = s.capacity.saturating_mul(WINDOW_SAMPLE_BYTES);
        if self.window_bytes.saturating_add(cost) > limits.max_window_bytes {
            return Err(Rejection::WindowsFull {
                stream: s.name.to_string(),
                limit: limits.max_window_bytes,
            });
        }
        let key = self.intern_key(key);
        Ok(self.slot_for(stream, key))
    }

    fn slot_for(&mut self, stream: StreamId, key: KeyId) -> u32 {
        if let Some(slot) = self.streams[stream.index()].slot_of_key.get(&key) {
            return *slot;
        }
        let s = &mut self.streams[stream.index()];
        let slot = s.slots.len() as u32;
        self.window_bytes =
            (self.window_bytes).saturating_add(s.capacity.saturating_mul(WINDOW_SAMPLE_BYTES));
        s.slots.push(Slot {
            key,
            series: SeriesRing::new(s.capacity),
            error: None,
            all_stamp: u64::MAX,
            downstream: Downstream::new(),
            unpublished: false,
            in_model: false,
        });
        s.slot_of_key.insert(key, slot);
        let producer = s.producer;
        if producer.is_none() {
            self.input_keys += 1;
        }
        if let Some(node) = producer {
            let node = &mut self.nodes[node.index()];
            node.queued.push(u64::MAX);
            node.keys.push(NodeKey {
                offload_waiting: false,
                inputs: vec![UNRESOLVED; node.inputs.len()].into_boxed_slice(),
                memory: None,
                constraint: ConstraintKeyState {
                    last_update_ns: self.clock.now_ns(),
                    ..ConstraintKeyState::default()
                },
            });
        }
        slot
    }
}

#[cfg(test)]
mod downstream {
    use super::{Downstream, UNRESOLVED};

    /// Reads, writes and removals agree with a list padded with
    /// `UNRESOLVED`, as the slot kept its downstream before.
    #[test]
    fn the_inline_first_entry_reads_as_a_padded_list_does() {
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        for _ in 0..200 {
            let (mut inline, mut list) = (Downstream::new(), Vec::<u32>::new());
            for step in 0..40 {
                let index = next(5);
                match next(3) {
                    0 => {
                        inline.set(index, step);
                        if list.len() <= index {
                            list.resize(index + 1, UNRESOLVED);
                        }
                        list[index] = step;
                    }
                    1 => {
                        inline.remove(index);
                        if index < list.len() {
                            list.remove(index);
                        }
                    }
                    _ => {}
                }
                for index in 0..7 {
                    let expected = list.get(index).copied().unwrap_or(UNRESOLVED);
                    assert_eq!(inline.get(index), expected, "{list:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod layout {
    use std::mem::{align_of, offset_of, size_of};

    use super::Slot;
    use crate::window::SeriesRing;

    /// What publishing a change reads lies in a slot's first cache line.
    #[test]
    fn what_publishing_reads_lies_in_a_slots_first_cache_line() {
        assert_eq!(align_of::<Slot>(), 64);
        assert_eq!(size_of::<Slot>() % 64, 0);
        let series = offset_of!(Slot, series);
        let ends = [
            offset_of!(Slot, unpublished) + 1,
            offset_of!(Slot, in_model) + 1,
            offset_of!(Slot, key) + 4,
            offset_of!(Slot, error) + 16,
            series + SeriesRing::published_fields_end(),
        ];
        assert!(ends.iter().all(|&end| end <= 64), "{ends:?}");
    }
}
