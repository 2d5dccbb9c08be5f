//! The dav2d engine: keyed streams, the latest-value dataflow graph, waves,
//! constraints and subscriptions.
//!
//! The key design decision is that a [`Graph`] is a plain single-threaded
//! state machine over dense arrays: samples are appended to mirrored rings
//! (so every window is one contiguous slice), consumers are queued by index,
//! and a wave evaluates queued (node, key) pairs in topological order. Thread
//! safety is one mutex around the graph ([`SharedGraph`]), taken per batch,
//! never per sample. This crate does no I/O, knows nothing of Python, HTTP or
//! YAML, and its domain types are not serializable: the edges own their wire
//! formats.
//!
//! ```
//! use std::sync::Arc;
//! use dav2d_core::{Builtin, Graph, GraphOptions, NodeSpec, SystemClock, Value};
//!
//! let mut graph = Graph::new(GraphOptions::default(), Arc::new(SystemClock));
//! graph.register(NodeSpec::builtin("temp_avg", "sensor_stream", Builtin::MovingAverage { n: 2 })).unwrap();
//! graph.push("sensor_stream", "dev-1", Value::Float(20.0), None).unwrap();
//! graph.push("sensor_stream", "dev-1", Value::Float(22.0), None).unwrap();
//! graph.run_wave();
//! let reading = graph.latest("temp_avg", "dev-1").unwrap().unwrap();
//! assert_eq!(reading.sample.unwrap().value, Value::Float(21.0));
//! ```

mod clock;
mod constraint;
mod described;
mod error;
mod graph;
mod ids;
mod info;
mod logic;
mod offload;
mod published;
mod reason;
mod spec;
mod subscribe;
mod value;
mod window;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use clock::{Clock, ManualClock, SystemClock};
pub use constraint::{ConstraintKeyState, ConstraintSpec, ConstraintState, Direction, Transition};
pub use described::{builtin_from_description, constraint_from_description, split_description};
pub use error::{GraphError, Rejection, closest};
pub use graph::{
    BatchReport, Graph, GraphState, KeyState, Keys, NodeKeyState, NodeState, SampleIn, SeriesRow,
    StreamState, WINDOW_SAMPLE_BYTES,
};
pub use ids::{KeyId, NodeId, StreamId};
pub use info::{GraphStats, NodeInfo, NodeKind, NodeStats, Reading, StreamInfo};
pub use logic::{
    BUILTINS, Builtin, BuiltinDef, BuiltinError, BuiltinParam, CustomLogic, Evaluation, Outcome,
    builtin_kinds,
};
pub use offload::{Job, JobQueue};
pub use published::{Page, ReadModel};
pub use reason::{RejectReason, Stage};
pub use spec::{
    Bounds, EdgePolicy, GraphOptions, InputSpec, LatePolicy, Limits, LogicSpec, MAX_DURATION,
    NodeSpec, Window, WindowField, parse_span,
};
pub use subscribe::{Backpressure, Subscription, SubscriptionMode, Update};
pub use value::{
    FrameData, FrameInfo, FrameRef, OwnedFrame, Record, Sample, Scalar, Value, ValueType,
};
pub use window::WindowSnapshot;
pub use window::{DEFAULT_SPAN_SAMPLES, DEFAULT_WINDOW, MAX_WINDOW};

/// A graph shared between threads: one mutex, taken per batch, and the
/// read model readers use without it.
#[derive(Clone, Debug)]
pub struct SharedGraph {
    inner: Arc<Mutex<Graph>>,
    reads: Arc<OnceLock<Arc<ReadModel>>>,
}

impl SharedGraph {
    /// Wraps a graph for sharing.
    pub fn new(graph: Graph) -> Self {
        Self {
            inner: Arc::new(Mutex::new(graph)),
            reads: Arc::new(OnceLock::new()),
        }
    }

    /// What the graph published after its last wave, read without the lock.
    /// The graph publishes from the first call on (which takes the lock
    /// once), so a graph nobody reads this way pays nothing for it; servers
    /// call it when they start.
    /// Do not call it for the first time while holding the lock.
    pub fn reads(&self) -> &ReadModel {
        self.reads.get_or_init(|| self.lock().read_model())
    }

    /// [`SharedGraph::reads`], shared.
    pub fn read_model(&self) -> Arc<ReadModel> {
        Arc::clone(self.reads.get_or_init(|| self.lock().read_model()))
    }

    /// Locks the graph. A panic in another holder does not make the graph
    /// unusable: its state is consistent between samples, so the lock is
    /// recovered.
    pub fn lock(&self) -> MutexGuard<'_, Graph> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tries to lock without waiting.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, Graph>> {
        match self.inner.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}
