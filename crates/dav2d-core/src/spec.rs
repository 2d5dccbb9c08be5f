//! What a graph is made of, as the engine takes it: nodes (`NodeSpec`) and
//! their inputs (`InputSpec`, `EdgePolicy`), logic (`LogicSpec`), stream
//! bounds, late policy, the graph's options and the limits on what
//! producers can make it hold. Plain values with no engine state, so the
//! graph, its readers and the faces that describe it share them without
//! importing the graph.

use std::fmt;

use crate::constraint::ConstraintSpec;
use crate::error::did_you_mean;
use crate::logic::{Builtin, CustomLogic};

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
    /// The policy written `text`: `latest` or `all` (YAML and Python read
    /// it here alike).
    pub fn from_name(text: &str) -> Result<EdgePolicy, String> {
        match text {
            "latest" => Ok(EdgePolicy::Latest),
            "all" => Ok(EdgePolicy::All),
            other => Err(format!("unknown policy '{other}'; expected latest or all")),
        }
    }

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
    /// How many recent samples the logic sees (with `span_ns`: at most).
    pub window: usize,
    /// How the edge wakes the node.
    pub policy: EdgePolicy,
    /// A time window: the logic sees the samples whose timestamp is less
    /// than this many nanoseconds older than the newest one's, on event
    /// time: `(newest - span, newest]`.
    pub span_ns: Option<i64>,
}

impl InputSpec {
    /// An input with the given window and the `latest` policy.
    pub fn new(name: impl Into<String>, window: usize) -> Self {
        Self {
            name: name.into(),
            window,
            policy: EdgePolicy::Latest,
            span_ns: None,
        }
    }

    /// An input whose window is the last `span_ns` of event time, at most
    /// `max_samples` samples of it.
    pub fn over(name: impl Into<String>, span_ns: i64, max_samples: usize) -> Self {
        Self {
            span_ns: Some(span_ns),
            ..Self::new(name, max_samples)
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

    /// Makes every input's window the last `span_ns` of event time, at
    /// most `max_samples` samples of it.
    pub fn with_span(mut self, span_ns: i64, max_samples: usize) -> Self {
        for input in &mut self.inputs {
            input.span_ns = Some(span_ns);
            input.window = max_samples;
        }
        self
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
    pub(crate) fn is_numeric(&self) -> bool {
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
    pub default_keep: usize,
    /// What any client can make the engine hold.
    pub limits: Limits,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            auto_create_streams: true,
            default_keep: 4,
            limits: Limits::default(),
        }
    }
}

/// What any producer can make the engine hold; a sample past a limit is
/// refused with its reason (and counted) while the samples beside it are
/// applied. The defaults keep a graph under about 1 GB whatever its
/// clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// (stream, key) pairs over all input streams.
    pub max_keys: usize,
    /// Keys of one input stream.
    pub max_keys_per_stream: usize,
    /// Bytes of a key.
    pub max_key_len: usize,
    /// Bytes of a stream name (a sample naming a longer unknown stream is
    /// refused rather than creating it).
    pub max_name_len: usize,
    /// Streams, counting node outputs (a sample naming a new stream past
    /// this is refused rather than creating it).
    pub max_streams: usize,
    /// Bytes of one value (a string, a record, a byte buffer).
    pub max_value_bytes: usize,
    /// Bytes of strings, records and buffers all input streams hold in
    /// their rings together.
    pub max_retained_bytes: usize,
    /// Bytes of every key's window rings (timestamps and numbers) over all
    /// streams and nodes: a new key past it is refused.
    pub max_window_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_keys: 200_000,
            max_keys_per_stream: 200_000,
            max_key_len: 1024,
            max_name_len: 256,
            max_streams: 10_000,
            max_value_bytes: 1 << 20,
            max_retained_bytes: 256 << 20,
            max_window_bytes: 512 << 20,
        }
    }
}

impl Limits {
    /// The names a config or a Python keyword gives each limit, the most
    /// each takes, and what it bounds.
    pub const FIELDS: &'static [(&'static str, usize, &'static str)] = &[
        (
            "keys",
            u32::MAX as usize,
            "(stream, key) pairs over all input streams",
        ),
        (
            "keys_per_stream",
            u32::MAX as usize,
            "keys of one input stream",
        ),
        ("key_length", 1 << 20, "bytes of a key"),
        ("name_length", 1 << 16, "bytes of a new stream's name"),
        ("streams", 1 << 24, "streams, counting node outputs"),
        (
            "value_size",
            1 << 30,
            "bytes of one string, record or buffer",
        ),
        (
            "retained_values",
            1 << 40,
            "bytes of strings, records and buffers the input streams keep",
        ),
        (
            "window_bytes",
            1 << 40,
            "bytes of every key's windows (timestamps and numbers) over all streams",
        ),
    ];

    /// Sets the limit called `name` (one of [`Limits::FIELDS`]) to `value`,
    /// refusing 0, values past the field's maximum and unknown names.
    pub fn set(&mut self, name: &str, value: usize) -> Result<(), String> {
        let Some(&(_, most, _)) = Self::FIELDS.iter().find(|(field, _, _)| *field == name) else {
            let names: Vec<&str> = Self::FIELDS.iter().map(|(field, _, _)| *field).collect();
            return Err(format!(
                "unknown limit '{name}'{}; the limits are: {}",
                did_you_mean(name, names.iter().copied()),
                names.join(", ")
            ));
        };
        if value == 0 || value > most {
            return Err(format!("{name} must be between 1 and {most}, got {value}"));
        }
        let field = match name {
            "keys" => &mut self.max_keys,
            "keys_per_stream" => &mut self.max_keys_per_stream,
            "key_length" => &mut self.max_key_len,
            "name_length" => &mut self.max_name_len,
            "streams" => &mut self.max_streams,
            "value_size" => &mut self.max_value_bytes,
            "window_bytes" => &mut self.max_window_bytes,
            _ => &mut self.max_retained_bytes,
        };
        *field = value;
        Ok(())
    }

    /// No limit at all (tests and benchmarks that build huge graphs on purpose).
    pub fn unbounded() -> Self {
        Self {
            max_keys: usize::MAX,
            max_keys_per_stream: usize::MAX,
            max_key_len: usize::MAX,
            max_name_len: usize::MAX,
            max_streams: usize::MAX,
            max_value_bytes: usize::MAX,
            max_retained_bytes: usize::MAX,
            max_window_bytes: usize::MAX,
        }
    }
}

/// What an input stream does with a sample older than the latest of its
/// (stream, key): it never becomes the latest value (the graph keeps the
/// latest *valid* snapshot), and it is counted as late (`stats().late`,
/// `dav2d_late_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatePolicy {
    /// Refused with reason `late`; the window and the latest stay as they are.
    #[default]
    Drop,
    /// Put into the key's window in timestamp order when at most
    /// `allowed_ns` older than the latest (refused past that), waking the
    /// nodes that read the stream through `latest` edges (an `all` edge has
    /// evaluated every sample once, as it arrived, and does not again).
    Insert {
        /// How much older than the latest a sample may be, in ns.
        allowed_ns: i64,
    },
}

/// The longest duration any setting takes: longer ones are refused where
/// they are given (far past any sensible timer, and far from the values
/// that overflow nanosecond arithmetic).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// A time window's length as configs and Python write it: a number with a
/// unit (`30s`, `1m`, `500ms`, `250000ns`), longer than 0 and at most
/// [`MAX_DURATION`]; in nanoseconds. (A bare number is a count of samples,
/// not a duration.)
pub fn parse_span(text: &str) -> Result<i64, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|error| {
        format!("'{text}' is not a duration ({error}); write e.g. 30s, 1m or 500ms")
    })?;
    if duration.is_zero() {
        return Err(format!("a time window must be longer than 0, got '{text}'"));
    }
    if duration > MAX_DURATION {
        return Err(format!(
            "'{text}' is longer than the longest duration dav2d takes (100 years); write a shorter one"
        ));
    }
    Ok(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
}

/// What a node sees of an input, as written: the newest `n` samples, or
/// the samples within a duration of event time of the newest, at most
/// `cap` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The newest this many samples.
    Count(usize),
    /// The samples within `ns` of the newest, at most `cap`.
    Span {
        /// The window's length in ns.
        ns: i64,
        /// The most samples it keeps.
        cap: usize,
    },
}

/// Which setting a window error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowField {
    /// `window`.
    Window,
    /// `max_samples`.
    MaxSamples,
}

impl Window {
    /// Reads a window as YAML's `window:` and Python's `window=` write it
    /// (a whole number of samples, or a duration such as `30s`) with its
    /// `max_samples` (a time window's cap): the one place both faces check
    /// it. The error names the setting it is about.
    pub fn parse(
        written: Option<&str>,
        max_samples: Option<f64>,
    ) -> Result<Option<Window>, (WindowField, String)> {
        let cap = match max_samples {
            None => None,
            Some(value)
                if value >= 1.0
                    && value < crate::window::MAX_WINDOW as f64
                    && value.fract() == 0.0 =>
            {
                Some(value as usize)
            }
            Some(value) => {
                return Err((
                    WindowField::MaxSamples,
                    format!(
                        "max_samples must be a whole number from 1 to {}, got {value}",
                        crate::window::MAX_WINDOW - 1
                    ),
                ));
            }
        };
        let window = match written.map(str::trim) {
            None => None,
            Some(written) => Some(match written.parse::<u64>() {
                Ok(count) if count == 0 || count > crate::window::MAX_WINDOW as u64 => {
                    return Err((
                        WindowField::Window,
                        format!(
                            "a window of {count} samples; give 1 to {} samples, or a duration such as 30s",
                            crate::window::MAX_WINDOW
                        ),
                    ));
                }
                Ok(count) => Window::Count(count as usize),
                Err(_) => Window::Span {
                    ns: parse_span(written).map_err(|message| {
                        (
                            WindowField::Window,
                            format!("{message} (or a whole number of samples)"),
                        )
                    })?,
                    cap: cap.unwrap_or(crate::window::DEFAULT_SPAN_SAMPLES),
                },
            }),
        };
        if max_samples.is_some() && !matches!(window, Some(Window::Span { .. })) {
            return Err((
                WindowField::MaxSamples,
                "max_samples caps a time window; give a duration such as 30s as the window with it"
                    .to_string(),
            ));
        }
        Ok(window)
    }

    /// The samples it shows at most.
    pub fn samples(self) -> usize {
        match self {
            Window::Count(n) => n,
            Window::Span { cap, .. } => cap,
        }
    }

    /// The time window's length, if it is one.
    pub fn span_ns(self) -> Option<i64> {
        match self {
            Window::Count(_) => None,
            Window::Span { ns, .. } => Some(ns),
        }
    }
}
