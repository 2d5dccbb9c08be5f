//! Errors of the engine: registration errors, rejected samples and lookups.
//!
//! Each message says what was wrong, where, and what to do next.

use thiserror::Error;

use crate::reason::RejectReason;

/// Why a node, constraint or stream could not be registered.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GraphError {
    /// Registering would create a cycle; `path` lists it, first name repeated last.
    #[error("the graph would have a cycle: {}; a node cannot depend on its own output", path.join(" -> "))]
    Cycle {
        /// The cycle, e.g. `["a", "b", "a"]`.
        path: Vec<String>,
    },
    /// An input names neither a stream nor a node.
    #[error("node '{node}' reads '{input}', which is neither a declared stream nor a node{hint}")]
    UnknownInput {
        /// The node being registered.
        node: String,
        /// The missing input.
        input: String,
        /// A suggestion such as ` (did you mean 'temp'?)`, or empty.
        hint: String,
    },
    /// The name is already used by a stream, node or constraint.
    #[error(
        "the name '{name}' is already taken by {taken_by}; streams, nodes and constraints share one namespace, so pick another name"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// What holds it: `a stream`, `node 'x'`, ...
        taken_by: String,
    },
    /// A window of zero samples.
    #[error("node '{node}' has window 0 on input '{input}'; a window must hold at least 1 sample")]
    ZeroWindow {
        /// The node.
        node: String,
        /// The input.
        input: String,
    },
    /// A parameter is out of range or the shape of the node is wrong.
    #[error("node '{node}': {message}")]
    Invalid {
        /// The node.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// A stream's settings are out of range.
    #[error("stream '{stream}': {message}")]
    InvalidStream {
        /// The stream.
        stream: String,
        /// What is wrong.
        message: String,
    },
    /// The name is not a stream, node or constraint of this graph.
    #[error("'{name}' is not a stream, node or constraint of this graph{hint}")]
    UnknownName {
        /// The name looked up.
        name: String,
        /// A suggestion, or empty.
        hint: String,
    },
}

impl GraphError {
    /// The node or constraint the error is about, when it is about one.
    pub fn node(&self) -> Option<&str> {
        match self {
            GraphError::Cycle { path } => path.first().map(String::as_str),
            GraphError::UnknownInput { node, .. }
            | GraphError::ZeroWindow { node, .. }
            | GraphError::Invalid { node, .. } => Some(node),
            GraphError::DuplicateName { name, .. } => Some(name),
            GraphError::InvalidStream { .. } | GraphError::UnknownName { .. } => None,
        }
    }
}

/// Why a sample was rejected. The sample is counted and never applied.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Rejection {
    /// Pushing to a name that does not exist while streams must be declared.
    #[error(
        "stream '{stream}' is not declared{hint}; declare it (`streams:` in YAML, `declare_stream` in Python) or enable auto-created streams"
    )]
    UnknownStream {
        /// The stream name.
        stream: String,
        /// `; did you mean 'x'?` when a declared name is close, else empty.
        hint: String,
    },
    /// Pushing to a node's or constraint's output.
    #[error("'{stream}' is the output of node '{stream}'; push to one of its inputs instead")]
    NodeOutput {
        /// The output name.
        stream: String,
    },
    /// A non-number on a stream with numeric bounds.
    #[error("stream '{stream}' has numeric bounds but got a {type_name}")]
    NotANumber {
        /// The stream.
        stream: String,
        /// The type received.
        type_name: &'static str,
    },
    /// A value of another type than the stream takes.
    #[error(
        "stream '{stream}' takes {expected} values{why}, got a {type_name}; declare its type (e.g. `type: any`) to take others"
    )]
    TypeMismatch {
        /// The stream.
        stream: String,
        /// The type it takes.
        expected: &'static str,
        /// Why, e.g. ` (read by numeric node 'avg')`, or empty when declared.
        why: String,
        /// The type received.
        type_name: &'static str,
    },
    /// Older than the latest sample of its (stream, key) by more than the
    /// stream's allowed lateness (zero under `late: drop`).
    #[error(
        "a sample at ts {ts} for '{stream}' key '{key}' is {behind_ns} ns older than its latest (ts {latest}); {policy}"
    )]
    Late {
        /// The stream.
        stream: String,
        /// The key.
        key: String,
        /// The sample's timestamp.
        ts: i64,
        /// The latest sample's timestamp.
        latest: i64,
        /// How far behind it is.
        behind_ns: i64,
        /// What the stream does with late samples, and how to change it.
        policy: String,
    },
    /// NaN or infinity on a finite-only stream.
    #[error("stream '{stream}' accepts finite numbers only, got {value}")]
    NotFinite {
        /// The stream.
        stream: String,
        /// The value.
        value: f64,
    },
    /// Below the stream's minimum.
    #[error("stream '{stream}' accepts values >= {min}, got {value}")]
    BelowMin {
        /// The stream.
        stream: String,
        /// The value.
        value: f64,
        /// The minimum.
        min: f64,
    },
    /// Above the stream's maximum.
    #[error("stream '{stream}' accepts values <= {max}, got {value}")]
    AboveMax {
        /// The stream.
        stream: String,
        /// The value.
        value: f64,
        /// The maximum.
        max: f64,
    },
    /// A new key past the limit on keys.
    #[error(
        "stream '{stream}' cannot take a new key: {limit} keys {scope} is the limit (`limits.keys`, `limits.keys_per_stream`)"
    )]
    TooManyKeys {
        /// The stream.
        stream: String,
        /// The limit reached.
        limit: usize,
        /// `on this stream` or `over all streams`.
        scope: &'static str,
    },
    /// A key longer than allowed.
    #[error(
        "a key of {len} bytes on stream '{stream}' is longer than the {limit} allowed (`limits.key_length`)"
    )]
    KeyTooLong {
        /// The stream.
        stream: String,
        /// The key's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A new stream name past the limits on names or streams.
    #[error("cannot create stream '{stream}': {why}")]
    StreamRefused {
        /// The name (cut to 64 characters).
        stream: String,
        /// Which limit.
        why: String,
        /// The reason to count.
        reason: RejectReason,
    },
    /// A value larger than allowed.
    #[error(
        "a value of {size} bytes on stream '{stream}' is larger than the {limit} allowed (`limits.value_size`)"
    )]
    ValueTooLarge {
        /// The stream.
        stream: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The budget for retained strings, records and buffers is spent.
    #[error(
        "stream '{stream}' cannot keep another {size} bytes: the input streams hold {limit} bytes of strings, records and buffers, the limit (`limits.retained_values`)"
    )]
    RetainedFull {
        /// The stream.
        stream: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl Rejection {
    /// The typed reason, for counters and metrics.
    pub fn reason(&self) -> RejectReason {
        match self {
            Rejection::UnknownStream { .. } => RejectReason::UnknownStream,
            Rejection::NodeOutput { .. } => RejectReason::NodeOutput,
            Rejection::NotANumber { .. } => RejectReason::NotANumber,
            Rejection::TypeMismatch { .. } => RejectReason::TypeMismatch,
            Rejection::NotFinite { .. } => RejectReason::NotFinite,
            Rejection::Late { .. } => RejectReason::Late,
            Rejection::BelowMin { .. } => RejectReason::BelowMin,
            Rejection::AboveMax { .. } => RejectReason::AboveMax,
            Rejection::TooManyKeys { .. } => RejectReason::TooManyKeys,
            Rejection::KeyTooLong { .. } => RejectReason::KeyTooLong,
            Rejection::StreamRefused { reason, .. } => *reason,
            Rejection::ValueTooLarge { .. } => RejectReason::ValueTooLarge,
            Rejection::RetainedFull { .. } => RejectReason::RetainedFull,
        }
    }
}

/// The closest of `candidates` to `name`, formatted as a hint.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(name.len()) / 3).max(1))
        .min();
    match best {
        Some((_, candidate)) => format!(" (did you mean '{candidate}'?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
