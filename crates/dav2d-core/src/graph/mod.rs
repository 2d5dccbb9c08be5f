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
mod offload;
mod publish;

use crate::clock::Clock;
use crate::constraint::{ConstraintKeyState, ConstraintSpec, ConstraintState, Transition};
use crate::error::{GraphError, Rejection, did_you_mean};
use crate::ids::{KeyId, NodeId, StreamId};
use crate::logic::{Builtin, CustomLogic, Evaluation, Outcome};
use crate::reason::RejectReason;
use crate::subscribe::{Subscription, SubscriptionMode, SubscriptionShared, Update};
use crate::value::{Sample, Value, ValueType};
use crate::window::{SeriesRing, WindowSnapshot};

const UNRESOLVED: u32 = u32::MAX;

/// How an input edge wakes its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EdgePolicy {
    /// Evaluate once per wave on the newest sample (conflating).
    #[default]
    Latest,
    /// Evaluate once per sample.
    All,
}

impl EdgePolicy {
    /// The policy as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgePolicy::Latest => "latest",
            EdgePolicy::All => "all",
        }
    }
}

/// One input of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Name of the stream, node or constraint read.
    pub name: String,
    /// How many recent samples the logic sees.
    pub window: usize,
    /// How the edge wakes the node.
    pub policy: EdgePolicy,
}

impl InputSpec {
    /// An input with the given window and the `latest` policy.
    pub fn new(name: impl Into<String>, window: usize) -> Self {
        Self {
            name: name.into(),
            window,
            policy: EdgePolicy::Latest,
        }
    }
}

/// What a node computes.
pub enum LogicSpec {
    /// A native built-in.
    Builtin(Builtin),
    /// Logic implemented outside the engine (Python).
    Custom(Box<dyn CustomLogic>),
    /// A constraint; its output is its state per key.
    Constraint(ConstraintSpec),
}

impl fmt::Debug for LogicSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogicSpec::Builtin(b) => write!(f, "Builtin({b})"),
            LogicSpec::Custom(c) => write!(f, "Custom({})", c.describe()),
            LogicSpec::Constraint(c) => write!(f, "Constraint({c:?})"),
        }
    }
}

/// Everything needed to register a node or constraint.
#[derive(Debug)]
pub struct NodeSpec {
    /// The node's name, also the name of its output stream.
    pub name: String,
    /// Inputs, in the order the logic receives them.
    pub inputs: Vec<InputSpec>,
    /// The logic.
    pub logic: LogicSpec,
    /// Higher runs first among nodes that do not depend on each other.
    pub priority: i32,
    /// Output changes smaller than this wake no children.
    pub deadband: Option<f64>,
    /// Run the logic on a worker outside the wave (slow logic: a model,
    /// heavy Python); its result enters as the node's output in a later wave.
    pub offload: bool,
}

impl NodeSpec {
    /// A native built-in over one input.
    pub fn builtin(name: impl Into<String>, input: impl Into<String>, builtin: Builtin) -> Self {
        Self {
            name: name.into(),
            inputs: vec![InputSpec::new(input, builtin.window())],
            logic: LogicSpec::Builtin(builtin),
            priority: 0,
            deadband: None,
            offload: false,
        }
    }

    /// Custom logic over the given inputs.
    pub fn custom(
        name: impl Into<String>,
        inputs: Vec<InputSpec>,
        logic: Box<dyn CustomLogic>,
    ) -> Self {
        Self {
            name: name.into(),
            inputs,
            logic: LogicSpec::Custom(logic),
            priority: 0,
            deadband: None,
            offload: false,
        }
    }

    /// A constraint over one input.
    pub fn constraint(
        name: impl Into<String>,
        input: impl Into<String>,
        spec: ConstraintSpec,
    ) -> Self {
        Self {
            name: name.into(),
            inputs: vec![InputSpec::new(input, 1)],
            logic: LogicSpec::Constraint(spec),
            priority: 0,
            deadband: None,
            offload: false,
        }
    }

    /// Sets the policy of every input.
    pub fn with_policy(mut self, policy: EdgePolicy) -> Self {
        for input in &mut self.inputs {
            input.policy = policy;
        }
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the deadband.
    /// Marks the node offloaded (see [`NodeSpec::offload`]).
    pub fn offloaded(mut self) -> Self {
        self.offload = true;
        self
    }

    /// Sets the deadband.
    pub fn with_deadband(mut self, deadband: f64) -> Self {
        self.deadband = Some(deadband);
        self
    }
}

/// Validity bounds of an input stream. Invalid samples are rejected,
/// counted, and never replace the latest valid value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bounds {
    /// Smallest accepted value.
    pub min: Option<f64>,
    /// Largest accepted value.
    pub max: Option<f64>,
    /// Reject NaN and infinities.
    pub finite_only: bool,
}

impl Bounds {
    fn is_numeric(&self) -> bool {
        self.min.is_some() || self.max.is_some() || self.finite_only
    }
}

/// Options of a graph.
#[derive(Clone, Debug)]
pub struct GraphOptions {
    /// Create a stream when a sample or a node input names an unknown one
    /// (the Python default). Configs declare their streams instead, so typos
    /// are caught as unknown inputs.
    pub auto_create_streams: bool,
    /// Samples every (stream, key) keeps at least, whatever its consumers need.
    pub default_history: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            auto_create_streams: true,
            default_history: 4,
        }
    }
}

/// Counters over the whole graph since it was created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphStats {
    /// Samples offered to input streams.
    pub samples_in: u64,
    /// Samples accepted.
    pub accepted: u64,
    /// Samples rejected, all reasons.
    pub rejected: u64,
    /// Rejections by reason label.
    pub rejected_by_reason: Vec<(RejectReason, u64)>,
    /// (node, key) evaluations run.
    pub evaluations: u64,
    /// Evaluations superseded by a newer sample before they ran.
    pub conflated: u64,
    /// Evaluations that failed.
    pub errors: u64,
    /// Evaluations whose unchanged output woke nothing.
    pub cutoffs: u64,
    /// Waves run.
    pub waves: u64,
    /// Constraint transitions.
    pub transitions: u64,
    /// Streams, including node outputs.
    pub streams: usize,
    /// Nodes, including constraints.
    pub nodes: usize,
    /// Distinct keys seen.
    pub keys: usize,
}

/// Counters of one node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeStats {
    /// Evaluations run.
    pub evaluations: u64,
    /// Evaluations superseded before they ran.
    pub conflated: u64,
    /// Failed evaluations.
    pub errors: u64,
    /// Evaluations cut off (unchanged output).
    pub cutoffs: u64,
    /// Evaluations skipped because an input had no sample for the key yet.
    pub waiting: u64,
    /// Calls into custom logic; each call evaluates every queued key of the
    /// node in a wave (for Python: one GIL acquisition).
    pub batches: u64,
}

/// A description of one node for listings, `dav2d check` and `/graph`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// `builtin`, `custom` or `constraint`.
    pub kind: &'static str,
    /// Logic, e.g. `moving_average(n=5)`.
    pub logic: String,
    /// Inputs: name, window, policy.
    pub inputs: Vec<(String, usize, EdgePolicy)>,
    /// Priority.
    pub priority: i32,
    /// Deadband.
    pub deadband: Option<f64>,
    /// Keys with an output slot.
    pub keys: usize,
    /// Keys currently in an error state.
    pub failing_keys: usize,
    /// Whether its logic runs on a worker outside the wave.
    pub offload: bool,
    /// How long (ns of clock time) its output has been behind its inputs:
    /// 0 for a node that is caught up, which every node evaluated in the
    /// wave is once the wave ends.
    pub lag_ns: u64,
    /// Counters.
    pub stats: NodeStats,
}

/// A description of one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    /// Name.
    pub name: String,
    /// The node producing it, if it is an output.
    pub producer: Option<String>,
    /// Bounds.
    pub bounds: Bounds,
    /// The type of values it takes (declared, or `number` when a numeric
    /// node reads it, else `any`).
    pub value_type: ValueType,
    /// Ring capacity per key.
    pub capacity: usize,
    /// Keys seen.
    pub keys: usize,
    /// Samples accepted.
    pub accepted: u64,
    /// Samples rejected.
    pub rejected: u64,
}

/// The latest state of one (stream, key).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The latest valid sample, if any.
    pub sample: Option<Sample>,
    /// The error state of a node's key: set while its last evaluation failed.
    pub error: Option<Arc<str>>,
}

#[derive(Clone, Copy, Debug)]
struct Consumer {
    node: NodeId,
    input: usize,
    policy: EdgePolicy,
}

struct Slot {
    key: KeyId,
    series: SeriesRing,
    error: Option<Arc<str>>,
    /// The wave in which this slot last received a sample, when the stream
    /// has an `all` consumer.
    all_stamp: u64,
    /// For each consumer of the stream: that consumer's output slot for this key.
    downstream: Vec<u32>,
    /// Whether the read model has yet to see this slot's latest change.
    unpublished: bool,
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
}

struct NodeInput {
    stream: StreamId,
    window: usize,
    policy: EdgePolicy,
}

#[derive(Clone)]
struct NodeKey {
    queued_wave: u64,
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
}

struct Node {
    name: Arc<str>,
    output: StreamId,
    inputs: Vec<NodeInput>,
    logic: NodeLogic,
    description: String,
    priority: i32,
    deadband: Option<f64>,
    keys: Vec<NodeKey>,
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
            state_names: [
                ConstraintState::Ok,
                ConstraintState::Tripped,
                ConstraintState::Stale,
            ]
            .map(|state| Arc::from(state.as_str())),
            publishing: None,
            jobs: Arc::new(crate::offload::JobQueue::default()),
            jobs_queued: 0,
        }
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

    // ----- names, keys and streams -------------------------------------------------

    /// The id of the stream (or node output, or constraint state) `name`.
    pub fn stream_id(&self, name: &str) -> Option<StreamId> {
        self.stream_ids.get(name).copied()
    }

    fn unknown_name(&self, name: &str) -> GraphError {
        GraphError::UnknownName {
            name: name.to_string(),
            hint: did_you_mean(name, self.streams.iter().map(|s| &*s.name)),
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
            capacity: self.options.default_history.max(1),
            slots: Vec::new(),
            slot_of_key: FxHashMap::default(),
            consumers: Vec::new(),
            has_all_consumer: false,
            subscribers: Vec::new(),
            accepted: 0,
            rejected: 0,
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

    /// Declares an input stream with validity bounds and a minimum history,
    /// or updates the bounds of an existing input stream.
    pub fn declare_stream(
        &mut self,
        name: &str,
        bounds: Bounds,
        history: Option<usize>,
    ) -> Result<StreamId, GraphError> {
        if name.is_empty() {
            return Err(GraphError::Invalid {
                node: name.to_string(),
                message: "a stream needs a non-empty name".to_string(),
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
        if let Some(history) = history {
            self.ensure_capacity(id, history);
        }
        self.republish_description();
        Ok(id)
    }

    fn ensure_capacity(&mut self, id: StreamId, capacity: usize) {
        let stream = &mut self.streams[id.index()];
        if capacity > stream.capacity {
            stream.capacity = capacity;
            for slot in &mut stream.slots {
                slot.series.resize(capacity);
            }
        }
    }

    fn slot_for(&mut self, stream: StreamId, key: KeyId) -> u32 {
        if let Some(slot) = self.streams[stream.index()].slot_of_key.get(&key) {
            return *slot;
        }
        let s = &mut self.streams[stream.index()];
        let slot = s.slots.len() as u32;
        s.slots.push(Slot {
            key,
            series: SeriesRing::new(s.capacity),
            error: None,
            all_stamp: u64::MAX,
            downstream: Vec::new(),
            unpublished: false,
        });
        s.slot_of_key.insert(key, slot);
        if let Some(node) = s.producer {
            let node = &mut self.nodes[node.index()];
            node.keys.push(NodeKey {
                queued_wave: u64::MAX,
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

    // ----- registration ------------------------------------------------------------

    /// Registers one node or constraint.
    pub fn register(&mut self, spec: NodeSpec) -> Result<NodeId, GraphError> {
        let ids = self.register_all(vec![spec])?;
        Ok(ids[0])
    }

    /// Registers several nodes at once. They may reference each other in any
    /// order; they are sorted topologically (higher priority first among
    /// independent nodes) and a cycle is reported with its path. Nothing is
    /// registered unless everything is valid.
    pub fn register_all(&mut self, specs: Vec<NodeSpec>) -> Result<Vec<NodeId>, GraphError> {
        let ids = self.register_batch(specs)?;
        self.republish_description();
        Ok(ids)
    }

    fn register_batch(&mut self, specs: Vec<NodeSpec>) -> Result<Vec<NodeId>, GraphError> {
        let mut batch_index: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, spec) in specs.iter().enumerate() {
            self.validate_spec(spec)?;
            if let Some(id) = self.stream_id(&spec.name) {
                return Err(GraphError::DuplicateName {
                    name: spec.name.clone(),
                    taken_by: self.taken_by(id),
                });
            }
            if batch_index.insert(&spec.name, i).is_some() {
                return Err(GraphError::DuplicateName {
                    name: spec.name.clone(),
                    taken_by: "another node in the same registration".to_string(),
                });
            }
        }
        // Resolve inputs: existing names, names in this batch, or new streams.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        let mut new_streams: Vec<String> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for input in &spec.inputs {
                if let Some(&j) = batch_index.get(input.name.as_str()) {
                    deps[i].push(j);
                } else if self.stream_id(&input.name).is_none() {
                    if !self.options.auto_create_streams {
                        let known = self
                            .streams
                            .iter()
                            .map(|s| &*s.name)
                            .chain(specs.iter().map(|s| s.name.as_str()));
                        return Err(GraphError::UnknownInput {
                            node: spec.name.clone(),
                            input: input.name.clone(),
                            hint: did_you_mean(&input.name, known),
                        });
                    }
                    if !new_streams.contains(&input.name) {
                        new_streams.push(input.name.clone());
                    }
                }
            }
        }
        let order = topological_order(&specs, &deps)?;
        for name in new_streams {
            self.add_stream(&name, None, Bounds::default());
        }
        let mut slots: Vec<Option<NodeSpec>> = specs.into_iter().map(Some).collect();
        let mut ids = vec![NodeId(0); slots.len()];
        for i in order {
            if let Some(spec) = slots[i].take() {
                ids[i] = self.add_node(spec);
            }
        }
        Ok(ids)
    }

    fn validate_spec(&self, spec: &NodeSpec) -> Result<(), GraphError> {
        let invalid = |message: String| GraphError::Invalid {
            node: spec.name.clone(),
            message,
        };
        if spec.offload {
            match &spec.logic {
                LogicSpec::Constraint(_) => {
                    return Err(invalid(
                        "a constraint cannot be offloaded; it is cheap and its timers run in the engine"
                            .to_string(),
                    ));
                }
                LogicSpec::Builtin(Builtin::Ewma { .. }) => {
                    return Err(invalid(
                        "ewma keeps its memory in the engine and cannot be offloaded".to_string(),
                    ));
                }
                _ => {}
            }
        }
        if !matches!(spec.logic, LogicSpec::Custom(_)) {
            for input in &spec.inputs {
                let declared = self
                    .stream_id(&input.name)
                    .and_then(|id| self.streams[id.index()].declared_type);
                if let Some(declared) = declared
                    && !matches!(declared, ValueType::Number | ValueType::Any)
                {
                    return Err(invalid(format!(
                        "it needs numbers, but stream '{}' is declared to take {} values",
                        input.name,
                        declared.as_str()
                    )));
                }
            }
        }
        if spec.name.is_empty() {
            return Err(invalid("a node needs a non-empty name".to_string()));
        }
        if spec.inputs.is_empty() {
            return Err(invalid("a node needs at least one input".to_string()));
        }
        for input in &spec.inputs {
            if input.window == 0 {
                return Err(GraphError::ZeroWindow {
                    node: spec.name.clone(),
                    input: input.name.clone(),
                });
            }
            if input.name == spec.name {
                return Err(GraphError::Cycle {
                    path: vec![spec.name.clone(), spec.name.clone()],
                });
            }
        }
        if let Some(deadband) = spec.deadband
            && !(deadband >= 0.0 && deadband.is_finite())
        {
            return Err(invalid(format!(
                "deadband must be a finite number >= 0, got {deadband}"
            )));
        }
        match &spec.logic {
            LogicSpec::Builtin(builtin) => {
                builtin.validate().map_err(invalid)?;
                if spec.inputs.len() != 1 {
                    return Err(invalid(format!(
                        "{} reads exactly one input, got {}",
                        builtin.kind(),
                        spec.inputs.len()
                    )));
                }
            }
            LogicSpec::Constraint(constraint) => {
                constraint.validate().map_err(invalid)?;
                if spec.inputs.len() != 1 {
                    return Err(invalid(format!(
                        "a constraint reads exactly one input, got {}",
                        spec.inputs.len()
                    )));
                }
            }
            LogicSpec::Custom(_) => {}
        }
        Ok(())
    }

    fn add_node(&mut self, spec: NodeSpec) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        let output = self.add_stream(&spec.name, Some(id), Bounds::default());
        let mut inputs = Vec::with_capacity(spec.inputs.len());
        let mut first_consumer = None;
        for (index, input) in spec.inputs.iter().enumerate() {
            let Some(stream) = self.stream_id(&input.name) else {
                continue; // Unreachable: inputs were resolved before.
            };
            let window = match &spec.logic {
                LogicSpec::Builtin(builtin) => input.window.max(builtin.window()),
                _ => input.window,
            };
            self.ensure_capacity(stream, window);
            let numeric = !matches!(spec.logic, LogicSpec::Custom(_));
            let s = &mut self.streams[stream.index()];
            if numeric && s.producer.is_none() {
                s.numeric_reader.get_or_insert(id);
            }
            first_consumer.get_or_insert((stream, s.consumers.len()));
            s.consumers.push(Consumer {
                node: id,
                input: index,
                policy: input.policy,
            });
            s.has_all_consumer |= input.policy == EdgePolicy::All;
            inputs.push(NodeInput {
                stream,
                window,
                policy: input.policy,
            });
        }
        let immediate = !matches!(spec.logic, LogicSpec::Custom(_))
            && !spec.offload
            && inputs.len() == 1
            && inputs[0].policy == EdgePolicy::All;
        let (logic, description) = match spec.logic {
            LogicSpec::Builtin(builtin) if spec.offload => (
                NodeLogic::Custom(Box::new(crate::logic::BuiltinJob(builtin))),
                format!("{builtin} (offloaded)"),
            ),
            LogicSpec::Builtin(builtin) => (NodeLogic::Builtin(builtin), builtin.to_string()),
            LogicSpec::Custom(custom) => {
                let description = custom.describe();
                (NodeLogic::Custom(custom), description)
            }
            LogicSpec::Constraint(constraint) => {
                let description = describe_constraint(&constraint);
                (NodeLogic::Constraint(constraint), description)
            }
        };
        self.nodes.push(Node {
            name: Arc::clone(&self.streams[output.index()].name),
            output,
            inputs,
            logic,
            description,
            priority: spec.priority,
            deadband: spec.deadband,
            keys: Vec::new(),
            pending: Vec::new(),
            stats: NodeStats::default(),
            immediate,
            offload: spec.offload.then(offload::Offload::default),
        });
        // Evaluate the new node for every key its inputs already hold.
        if let Some((stream, consumer)) = first_consumer {
            let slot_count = self.streams[stream.index()].slots.len() as u32;
            for slot in 0..slot_count {
                if self.streams[stream.index()].slots[slot as usize]
                    .series
                    .count
                    > 0
                {
                    self.mark_consumer(stream, slot, consumer);
                }
            }
        }
        id
    }

    // ----- ingest ------------------------------------------------------------------

    fn input_stream(&mut self, name: &str) -> Result<StreamId, Rejection> {
        match self.stream_id(name) {
            Some(id) if self.streams[id.index()].producer.is_some() => Err(Rejection::NodeOutput {
                stream: name.to_string(),
            }),
            Some(id) => Ok(id),
            None if self.options.auto_create_streams && !name.is_empty() => {
                Ok(self.add_stream(name, None, Bounds::default()))
            }
            None => Err(Rejection::UnknownStream {
                stream: name.to_string(),
            }),
        }
    }

    fn reject(&mut self, stream: Option<StreamId>, rejection: Rejection) -> Rejection {
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

    /// The type `stream` takes, and why (for the rejection).
    fn value_type(&self, stream: StreamId) -> (ValueType, String) {
        let s = &self.streams[stream.index()];
        match (s.declared_type, s.numeric_reader) {
            (Some(declared), _) => (declared, String::new()),
            (None, Some(node)) => (
                ValueType::Number,
                format!(
                    " (read by numeric node '{}')",
                    self.nodes[node.index()].name
                ),
            ),
            (None, None) => (ValueType::Any, String::new()),
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
            return Err(GraphError::Invalid {
                node: name.to_string(),
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

    fn check_bounds(&self, stream: StreamId, value: &Value) -> Result<(), Rejection> {
        let s = &self.streams[stream.index()];
        let bounds = s.bounds;
        if !bounds.is_numeric() {
            let (expected, why) = self.value_type(stream);
            if !expected.accepts(value) {
                return Err(Rejection::TypeMismatch {
                    stream: s.name.to_string(),
                    expected: expected.as_str(),
                    why,
                    type_name: value.type_name(),
                });
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
        let key = self.intern_key(key);
        let slot = self.slot_for(stream, key);
        let ts = ts_ns.unwrap_or_else(|| self.clock.now_ns());
        self.apply(stream, slot, ts, value);
        Ok(())
    }

    /// Pushes records of any streams, keys and value types, in order. Each
    /// record carries its index in the original batch, so rejections can be
    /// reported against it; good records are applied beside rejected ones.
    /// Evaluation happens on the next [`Graph::run_wave`].
    pub fn push_records<'a>(
        &mut self,
        records: impl IntoIterator<Item = RecordIn<'a>>,
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
        let (expected, why) = self.value_type(id);
        if !matches!(expected, ValueType::Number | ValueType::Any) {
            for index in 0..values.len() {
                let rejection = Rejection::TypeMismatch {
                    stream: stream.to_string(),
                    expected: expected.as_str(),
                    why: why.clone(),
                    type_name: "float",
                };
                let rejection = self.reject(Some(id), rejection);
                report.push_rejection(index, rejection);
            }
            return report;
        }
        let bounds = self.streams[id.index()].bounds;
        let now = self.clock.now_ns();
        if let Keys::One(key) = keys
            && values.len() > 1
            && self.columnar_eligible(id)
        {
            return self.push_run(id, key, values, ts_ns, now, report);
        }
        let mut cached: Option<(u32, u32)> = None; // (key index in `keys`, slot)
        for (index, &value) in values.iter().enumerate() {
            if bounds.is_numeric()
                && let Err(rejection) = check_number(&self.streams[id.index()].name, bounds, value)
            {
                let rejection = self.reject(Some(id), rejection);
                report.push_rejection(index, rejection);
                continue;
            }
            let slot = match keys {
                Keys::One(key) => match cached {
                    Some((_, slot)) => slot,
                    None => {
                        let key = self.intern_key(key);
                        let slot = self.slot_for(id, key);
                        cached = Some((0, slot));
                        slot
                    }
                },
                Keys::Many(keys) => {
                    let key = self.intern_key(keys[index]);
                    self.slot_for(id, key)
                }
            };
            let ts = ts_ns.map_or(now, |ts| ts[index]);
            self.apply_float(id, slot, ts, value);
            report.accepted += 1;
        }
        report
    }

    #[inline]
    fn before_apply(&mut self, stream: StreamId, slot: u32) {
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

    fn apply(&mut self, stream: StreamId, slot: u32, ts: i64, value: Value) {
        if let Value::Float(v) = value {
            self.apply_float(stream, slot, ts, v);
            return;
        }
        self.before_apply(stream, slot);
        self.streams[stream.index()].slots[slot as usize]
            .series
            .push_value(ts, value);
        self.after_write(stream, slot, None);
    }

    #[inline]
    fn apply_float(&mut self, stream: StreamId, slot: u32, ts: i64, value: f64) {
        self.before_apply(stream, slot);
        self.streams[stream.index()].slots[slot as usize]
            .series
            .push_float(ts, value);
        self.after_write(stream, slot, None);
    }

    /// Notifies subscribers of a new sample in (stream, slot) and queues consumers.
    #[inline]
    fn after_write(&mut self, stream: StreamId, slot: u32, transition: Option<Transition>) {
        self.mark_changed(stream, slot);
        if !self.streams[stream.index()].subscribers.is_empty() {
            self.notify(stream, slot, transition);
        }
        for consumer in 0..self.streams[stream.index()].consumers.len() {
            self.mark_consumer(stream, slot, consumer);
        }
    }

    fn notify(&mut self, stream: StreamId, slot: u32, transition: Option<Transition>) {
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

    #[inline]
    fn mark_consumer(&mut self, stream: StreamId, slot: u32, consumer_index: usize) {
        let consumer = self.streams[stream.index()].consumers[consumer_index];
        let mut out = self.streams[stream.index()].slots[slot as usize]
            .downstream
            .get(consumer_index)
            .copied()
            .unwrap_or(UNRESOLVED);
        if out == UNRESOLVED {
            out = self.resolve_downstream(stream, slot, consumer_index, consumer);
        }
        let node = &mut self.nodes[consumer.node.index()];
        if node.immediate {
            self.evaluate_now(consumer.node, out);
            return;
        }
        let node_key = &mut node.keys[out as usize];
        if node_key.queued_wave == self.wave {
            if consumer.policy == EdgePolicy::Latest {
                node.stats.conflated += 1;
                self.stats.conflated += 1;
            }
        } else {
            node_key.queued_wave = self.wave;
            node.pending.push(out);
            self.pending.insert(consumer.node.index());
        }
    }

    fn resolve_downstream(
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
        let downstream = &mut self.streams[stream.index()].slots[slot as usize].downstream;
        if downstream.len() <= consumer_index {
            downstream.resize(consumer_index + 1, UNRESOLVED);
        }
        downstream[consumer_index] = out;
        out
    }

    // ----- waves -------------------------------------------------------------------

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
        evaluations
    }

    /// The wave itself, without publishing: `all` edges run it between two
    /// samples of one key, and only the caller's wave publishes.
    fn run_pending(&mut self) -> u64 {
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

    fn evaluate_node(&mut self, id: NodeId) {
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
            NodeLogic::Running => {}
        }
        pending.clear();
        let node = &mut self.nodes[id.index()];
        if node.pending.is_empty() {
            node.pending = pending;
        }
    }

    /// Evaluates an immediate (native, single `all` input) node for one key.
    fn evaluate_now(&mut self, id: NodeId, out: u32) {
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
            NodeLogic::Custom(_) | NodeLogic::Running => {}
        }
    }

    /// The slot of input `input` for output slot `out`, resolving it lazily.
    #[inline]
    fn input_slot(&mut self, id: NodeId, out: u32, input: usize) -> Option<u32> {
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

    fn not_numeric_error(
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

    fn evaluate_builtin(&mut self, id: NodeId, builtin: Builtin, out: u32) {
        let Some(in_slot) = self.input_slot(id, out, 0) else {
            self.nodes[id.index()].stats.waiting += 1;
            return;
        };
        let (stream, window) = {
            let input = &self.nodes[id.index()].inputs[0];
            (input.stream, input.window)
        };
        self.stats.evaluations += 1;
        self.nodes[id.index()].stats.evaluations += 1;
        let series = &self.streams[stream.index()].slots[in_slot as usize].series;
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

    fn evaluate_constraint(&mut self, id: NodeId, spec: &ConstraintSpec, out: u32, now: i64) {
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
        let Some(&value) = series.nums(1).last() else {
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
    fn transition(
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
    fn custom_batch(&mut self, id: NodeId, pending: &[u32]) -> (Vec<Evaluation>, Vec<(u32, i64)>) {
        let input_count = self.nodes[id.index()].inputs.len();
        let mut batch = Vec::with_capacity(pending.len());
        let mut targets = Vec::with_capacity(pending.len());
        'keys: for &out in pending {
            let mut inputs = Vec::with_capacity(input_count);
            let mut ts = i64::MIN;
            for input in 0..input_count {
                let Some(slot) = self.input_slot(id, out, input) else {
                    self.nodes[id.index()].stats.waiting += 1;
                    continue 'keys;
                };
                let node_input = &self.nodes[id.index()].inputs[input];
                let series = &self.streams[node_input.stream.index()].slots[slot as usize].series;
                ts = ts.max(series.latest_ts().unwrap_or(i64::MIN));
                inputs.push(series.snapshot(node_input.window));
            }
            let output = self.nodes[id.index()].output;
            let key = self.streams[output.index()].slots[out as usize].key;
            batch.push(Evaluation {
                key: Arc::clone(&self.keys[key.index()]),
                inputs,
                outcome: Outcome::Skip,
            });
            targets.push((out, ts));
        }
        (batch, targets)
    }

    fn evaluate_custom(&mut self, id: NodeId, pending: &[u32]) {
        let (mut batch, targets) = self.custom_batch(id, pending);
        if batch.is_empty() {
            return;
        }
        let node = &mut self.nodes[id.index()];
        let NodeLogic::Custom(mut logic) = std::mem::replace(&mut node.logic, NodeLogic::Running)
        else {
            return;
        };
        let name = Arc::clone(&node.name);
        logic.evaluate_batch(&name, &mut batch);
        self.nodes[id.index()].logic = NodeLogic::Custom(logic);
        self.apply_outcomes(id, batch, targets);
    }

    /// Counts a custom batch and writes its outcomes (outputs queue the
    /// node's children; failures set the key's error state).
    fn apply_outcomes(&mut self, id: NodeId, batch: Vec<Evaluation>, targets: Vec<(u32, i64)>) {
        let node = &mut self.nodes[id.index()];
        node.stats.evaluations += batch.len() as u64;
        node.stats.batches += 1;
        self.stats.evaluations += batch.len() as u64;
        for (evaluation, (out, ts)) in batch.into_iter().zip(targets) {
            match evaluation.outcome {
                Outcome::Output(value) => self.emit(id, out, value, ts, None),
                Outcome::Skip => {}
                Outcome::Failed(error) => self.fail(id, out, error, ts),
            }
        }
    }

    /// Writes a node's output for one key unless it is unchanged (early
    /// cutoff), then notifies subscribers and queues children.
    fn emit(
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

    fn fail(&mut self, id: NodeId, out: u32, error: Arc<str>, _ts: i64) {
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

    // ----- reading -----------------------------------------------------------------

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
        let (subscription, shared) = Subscription::new(Arc::clone(&s.name), mode, capacity);
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
        let (subscription, shared) = Subscription::new(label, mode, capacity);
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

    /// Everything a restart needs to continue where this graph is: every
    /// (stream, key)'s held samples with their sequence numbers and error
    /// state, and every node's per-key memory and constraint timers.
    pub fn export_state(&self) -> GraphState {
        let streams = self
            .streams
            .iter()
            .map(|s| StreamState {
                name: s.name.to_string(),
                keys: s
                    .slots
                    .iter()
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
                    node_key.constraint.state = match &**state {
                        "tripped" => ConstraintState::Tripped,
                        "stale" => ConstraintState::Stale,
                        _ => ConstraintState::Ok,
                    };
                    node_key.constraint.holding_since_ns = None;
                    node_key.constraint.last_update_ns = ts_ns;
                }
                (NodeLogic::Builtin(Builtin::Ewma { .. }), Value::Float(v)) => {
                    node_key.memory = Some(*v)
                }
                _ => {}
            }
        }
        let slot_ref = &mut self.streams[id.index()].slots[slot as usize];
        slot_ref.error = None;
        slot_ref.series.push_value(ts_ns, value);
        self.mark_changed(id, slot);
        true
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

    /// Every node in topological order.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let now = self.clock.now_ns();
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| NodeInfo {
                name: node.name.to_string(),
                kind: match node.logic {
                    NodeLogic::Builtin(_) => "builtin",
                    NodeLogic::Constraint(_) => "constraint",
                    NodeLogic::Custom(_) | NodeLogic::Running => "custom",
                },
                logic: node.description.clone(),
                inputs: node
                    .inputs
                    .iter()
                    .map(|i| {
                        (
                            self.streams[i.stream.index()].name.to_string(),
                            i.window,
                            i.policy,
                        )
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
                stats: node.stats.clone(),
            })
            .collect()
    }

    /// Every input stream (not node outputs).
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.streams
            .iter()
            .enumerate()
            .map(|(index, s)| StreamInfo {
                name: s.name.to_string(),
                producer: s.producer.map(|n| self.nodes[n.index()].name.to_string()),
                bounds: s.bounds,
                value_type: self.value_type(StreamId(index as u32)).0,
                capacity: s.capacity,
                keys: s.slots.len(),
                accepted: s.accepted,
                rejected: s.rejected,
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

/// One record of a heterogeneous batch, as decoded by an ingest edge.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordIn<'a> {
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

fn check_number(stream: &str, bounds: Bounds, value: f64) -> Result<(), Rejection> {
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

/// Whether `value` differs from the newest sample of `series` enough to be written.
#[inline]
fn differs(series: &SeriesRing, value: &Value, deadband: Option<f64>) -> bool {
    if series.count == 0 {
        return true;
    }
    match (value, &series.values) {
        (Value::Float(new), None) => {
            let old = series.nums(1).last().copied().unwrap_or(f64::NAN);
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
fn float_changed(old: f64, new: f64, deadband: Option<f64>) -> bool {
    match deadband {
        Some(deadband) => changed_by(new - old, deadband),
        None => new.to_bits() != old.to_bits(),
    }
}

/// Whether a change of `difference` reaches `deadband` (NaN counts as a change).
fn changed_by(difference: f64, deadband: f64) -> bool {
    difference.abs() >= deadband || difference.is_nan()
}

fn describe_constraint(spec: &ConstraintSpec) -> String {
    let mut text = format!(
        "constraint({} trip={} reset={}",
        match spec.direction {
            crate::constraint::Direction::Above => "above",
            crate::constraint::Direction::Below => "below",
        },
        spec.trip,
        spec.reset_threshold()
    );
    if spec.hold_ns > 0 {
        text.push_str(&format!(" for={}s", spec.hold_ns as f64 / 1e9));
    }
    if let Some(stale) = spec.stale_after_ns {
        text.push_str(&format!(" stale_after={}s", stale as f64 / 1e9));
    }
    text.push(')');
    text
}

/// Kahn's algorithm over a batch, taking higher priority first among ready
/// nodes; reports a cycle with its path.
fn topological_order(specs: &[NodeSpec], deps: &[Vec<usize>]) -> Result<Vec<usize>, GraphError> {
    let n = specs.len();
    let mut indegree = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, parents) in deps.iter().enumerate() {
        for &parent in parents {
            indegree[i] += 1;
            children[parent].push(i);
        }
    }
    let mut ready: BinaryHeap<(i32, std::cmp::Reverse<usize>)> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| (specs[i].priority, std::cmp::Reverse(i)))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some((_, std::cmp::Reverse(i))) = ready.pop() {
        order.push(i);
        for &child in &children[i] {
            indegree[child] -= 1;
            if indegree[child] == 0 {
                ready.push((specs[child].priority, std::cmp::Reverse(child)));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk parent edges among the unsorted nodes until one repeats.
    let start = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    while let Some(&next) = deps[current].iter().find(|&&p| indegree[p] > 0) {
        if let Some(position) = path.iter().position(|&p| p == next) {
            // In data-flow order, starting from the node listed first.
            let mut cycle: Vec<usize> = path[position..].iter().rev().copied().collect();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(at, _)| at);
            cycle.rotate_left(first);
            let mut cycle: Vec<String> = cycle.iter().map(|&i| specs[i].name.clone()).collect();
            cycle.push(cycle[0].clone());
            return Err(GraphError::Cycle { path: cycle });
        }
        path.push(next);
        current = next;
    }
    Err(GraphError::Cycle {
        path: path.iter().map(|&i| specs[i].name.clone()).collect(),
    })
}
