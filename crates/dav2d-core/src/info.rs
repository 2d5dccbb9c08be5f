//! What readers learn about a graph: its counters (`GraphStats`,
//! `NodeStats`), each node and stream described (`NodeInfo`, `StreamInfo`)
//! and a key's latest state (`Reading`). Produced by the graph and by the
//! read model it publishes, consumed by every face.

use std::sync::Arc;

use crate::reason::RejectReason;
use crate::spec::{Bounds, InputSpec};
use crate::value::{Sample, ValueType};

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
    /// Samples older than their key's latest (inserted or refused).
    pub late: u64,
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
    /// Evaluations whose time window held more samples than its
    /// `max_samples`: the oldest of them were left out.
    pub window_overflow: u64,
}

/// What kind of logic a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A native built-in.
    Builtin,
    /// Logic from outside the engine (Python).
    Custom,
    /// A constraint (its output is its state per key).
    Constraint,
}

impl NodeKind {
    /// The kind's label, e.g. in `/graph`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Builtin => "builtin",
            NodeKind::Custom => "custom",
            NodeKind::Constraint => "constraint",
        }
    }
}

/// A description of one node for listings, `dav2d check` and `/graph`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// What kind of logic it runs.
    pub kind: NodeKind,
    /// Logic, e.g. `moving_average(n=5)`.
    pub logic: String,
    /// Inputs as registered: name, window (a time window's cap), policy
    /// and time window.
    pub inputs: Vec<InputSpec>,
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
    /// An offloaded node's queue: keys whose inputs changed while its job
    /// was out, waiting for the next job (0 for other nodes).
    pub offload_waiting: usize,
    /// Removed by a reload: kept in place (ids are indices) but no longer
    /// evaluated, read or listed.
    pub retired: bool,
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
    /// The output of a node a reload removed (not listed or read).
    pub retired: bool,
    /// What a sample older than its key's latest does.
    pub late: crate::LatePolicy,
}

/// The latest state of one (stream, key).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The latest valid sample, if any.
    pub sample: Option<Sample>,
    /// The error state of a node's key: set while its last evaluation failed.
    pub error: Option<Arc<str>>,
}
