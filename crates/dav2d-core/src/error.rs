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
        "a sample at {} for '{stream}' key '{key}' is {} older than its latest ({}); {policy}",
        readable_time(*ts), readable_span(*behind_ns), readable_time(*latest)
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
    /// The budget for every key's windows is spent: no new key.
    #[error(
        "stream '{stream}' cannot take a new key: the keys' windows hold {limit} bytes, the limit (`limits.window_bytes`); lower `keep` or window lengths, or raise the limit"
    )]
    WindowsFull {
        /// The stream.
        stream: String,
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
            Rejection::WindowsFull { .. } => RejectReason::WindowsFull,
        }
    }
}

/// A timestamp for people: RFC 3339 in UTC with milliseconds
/// (`2026-12-06T01:39:38.641Z`), or the ns when it is before 1970.
pub fn readable_time(ns: i64) -> String {
    match u64::try_from(ns) {
        Ok(ns) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns),
        )
        .to_string(),
        Err(_) => format!("{ns} ns since the epoch"),
    }
}

/// A span for people: `5 s`, `1.5 ms`, `20 ns`.
pub fn readable_span(ns: i64) -> String {
    let ns = ns as f64;
    let (value, unit) = match ns.abs() {
        x if x >= 1e9 => (ns / 1e9, "s"),
        x if x >= 1e6 => (ns / 1e6, "ms"),
        x if x >= 1e3 => (ns / 1e3, "us"),
        _ => (ns, "ns"),
    };
    // At most 3 decimals, without trailing zeros.
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {unit}")
}

/// The closest of `candidates` to `name`, if one is close enough to be a
/// likely misspelling (at most a third of its letters differ, at least one
/// from 3 letters on, or one starts with the other and that part has 3
/// letters or more).
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let prefix = |candidate: &str| {
        name.len().min(candidate.len()) >= 3
            && (candidate.starts_with(name) || name.starts_with(candidate))
    };
    candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| {
            // Two-letter names differ by one letter from many others: no guess.
            let longest = candidate.len().max(name.len());
            *distance <= (longest / 3).max(usize::from(longest >= 3)) || prefix(candidate)
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// The closest of `candidates` to `name`, formatted as a hint.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    match closest(name, candidates) {
        Some(candidate) => format!(" (did you mean '{candidate}'?)"),
        None => String::new(),
    }
}

/// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`:
/// the optimal string alignment distance, so `tmep` is one edit from `temp`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let width = b.len() + 1;
    let mut d: Vec<usize> = vec![0; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::{closest, edit_distance, readable_span, readable_time};

    #[test]
    fn a_swap_of_neighbours_is_one_edit_and_a_prefix_is_close() {
        assert_eq!(edit_distance("tmep", "temp"), 1);
        assert_eq!(edit_distance("mni", "min"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        let names = ["temp", "temperature", "humidity"];
        assert_eq!(closest("tmep", names.iter().copied()), Some("temp"));
        assert_eq!(
            closest("temperatur", names.iter().copied()),
            Some("temperature")
        );
        assert_eq!(closest("pressure", names.iter().copied()), None);
        assert_eq!(
            closest("finite", ["finite_only", "min"].into_iter()),
            Some("finite_only")
        );
    }

    #[test]
    fn times_and_spans_read_as_people_write_them() {
        assert_eq!(
            readable_time(1_796_523_690_490_000_000),
            "2026-12-06T02:21:30.490Z"
        );
        assert_eq!(readable_time(-5), "-5 ns since the epoch");
        assert_eq!(readable_span(5_000_000_000), "5 s");
        assert_eq!(readable_span(1_500_000), "1.5 ms");
        assert_eq!(readable_span(20), "20 ns");
    }
}
