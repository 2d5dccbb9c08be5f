//! Sample values: the scalars, strings, records and byte buffers that flow
//! through streams.
//!
//! Values are cheap to clone: strings, records and byte buffers are reference
//! counted, so a frame-sized buffer travels the graph without being copied.

use std::fmt;
use std::sync::Arc;

/// One field of a [`Record`]: a scalar or a string.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A 64-bit float.
    Float(f64),
    /// A 64-bit signed integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(Arc<str>),
}

/// A flat record: an ordered list of (name, scalar) fields.
pub type Record = Vec<(Arc<str>, Scalar)>;

/// What the engine knows of a video frame: its description. The pixels
/// stay where the frame's source put them (a pinned pool slot); the engine
/// never copies them.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixel format's name, e.g. `bgra8`.
    pub format: std::borrow::Cow<'static, str>,
    /// Position in its stream.
    pub seq: u64,
    /// Timestamp, ns since the epoch.
    pub ts_ns: i64,
    /// Bytes of the frame.
    pub size: usize,
    /// Frames of its source the stream's reader did not get since the one
    /// before this (a slow reader gets the newest frame, never a backlog).
    pub skipped: u64,
    /// The row pitch of each plane in bytes, planes one after the other in
    /// the format's order (0 for a plane the format does not have).
    pub strides: [usize; 3],
    /// For a mask (a processor node's output): the fraction of its pixels
    /// set, 0 to 1.
    pub coverage: Option<f64>,
}

/// A video frame as a value: implemented by the frames crate (a lease on a
/// pool slot, which stays pinned while the value lives) and by
/// [`OwnedFrame`] (a frame read back from the store).
pub trait FrameData: Send + Sync + fmt::Debug {
    /// The frame's description.
    fn info(&self) -> FrameInfo;
    /// The frame's bytes, all planes as laid out.
    fn bytes(&self) -> &[u8];
    /// The implementation, for the layers that know it (Python's `Frame`).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A frame that owns its bytes: what persistence restores of a stream that
/// keeps pixels. Readers that want a pool's frame copy it into one.
#[derive(Debug)]
pub struct OwnedFrame {
    /// Its description (`size` is the length of `bytes`).
    pub info: FrameInfo,
    /// Its planes, as laid out by `info.strides`.
    pub bytes: Vec<u8>,
}

impl FrameData for OwnedFrame {
    fn info(&self) -> FrameInfo {
        self.info.clone()
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A shared frame value; two are equal when they are the same frame.
#[derive(Clone, Debug)]
pub struct FrameRef(pub Arc<dyn FrameData>);

impl PartialEq for FrameRef {
    fn eq(&self, other: &FrameRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The value carried by a sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A 64-bit float.
    Float(f64),
    /// A 64-bit signed integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(Arc<str>),
    /// A flat record of named scalars.
    Record(Arc<Record>),
    /// A reference-counted byte buffer, shared without copying.
    Bytes(Arc<[u8]>),
    /// A video frame, shared without copying.
    Frame(FrameRef),
}

impl Default for Value {
    fn default() -> Self {
        Value::Float(0.0)
    }
}

impl Value {
    /// Bytes this value holds on the heap beyond its own size: the text of
    /// a string, the bytes of a buffer, the names and strings of a record.
    /// Numbers and booleans hold none.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Float(_) | Value::Int(_) | Value::Bool(_) => 0,
            Value::Str(text) => text.len(),
            Value::Bytes(bytes) => bytes.len(),
            // The pixels live in the source's pool, bounded by its slots.
            Value::Frame(_) => 0,
            Value::Record(fields) => fields
                .iter()
                .map(|(name, scalar)| {
                    name.len()
                        + std::mem::size_of::<(Arc<str>, Scalar)>()
                        + match scalar {
                            Scalar::Str(text) => text.len(),
                            _ => 0,
                        }
                })
                .sum(),
        }
    }

    /// The value as a number, if it is one (booleans count as 0 and 1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            Value::Bool(v) => Some(if *v { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Float(_) => "float",
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Record(_) => "record",
            Value::Bytes(_) => "bytes",
            Value::Frame(_) => "frame",
        }
    }

    /// Whether this is a plain float (the fast path of windows).
    pub fn is_float(&self) -> bool {
        matches!(self, Value::Float(_))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(Arc::from(v))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(v) => write!(f, "{v}"),
            Value::Record(fields) => {
                write!(f, "{{")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    match value {
                        Scalar::Float(v) => write!(f, "{name}: {v}")?,
                        Scalar::Int(v) => write!(f, "{name}: {v}")?,
                        Scalar::Bool(v) => write!(f, "{name}: {v}")?,
                        Scalar::Str(v) => write!(f, "{name}: {v:?}")?,
                    }
                }
                write!(f, "}}")
            }
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Frame(frame) => {
                let info = frame.0.info();
                write!(
                    f,
                    "<frame {} {}x{} {}>",
                    info.seq, info.width, info.height, info.format
                )
            }
        }
    }
}

/// One sample of a (stream, key): its value, timestamp and sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The value.
    pub value: Value,
    /// Timestamp in nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Position of this sample in its (stream, key) series, starting at 0.
    pub seq: u64,
}

/// The type of the values a stream takes; a sample of another type is
/// rejected at the door (`type_mismatch`) instead of putting the nodes that
/// read it into an error state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Floats and integers: the default of a stream that numeric nodes
    /// (built-ins, constraints) read.
    Number,
    /// Booleans.
    Bool,
    /// Text.
    String,
    /// Flat records.
    Record,
    /// Raw bytes.
    Bytes,
    /// Video frames.
    Frame,
    /// Anything: the default of a stream no numeric node reads.
    Any,
}

impl ValueType {
    /// Every type, in the order they are listed to users.
    pub const ALL: [ValueType; 7] = [
        ValueType::Number,
        ValueType::String,
        ValueType::Bool,
        ValueType::Record,
        ValueType::Bytes,
        ValueType::Frame,
        ValueType::Any,
    ];

    /// The name users write, e.g. `number`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Number => "number",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Record => "record",
            ValueType::Bytes => "bytes",
            ValueType::Frame => "frame",
            ValueType::Any => "any",
        }
    }

    /// The type named `name`, if any.
    pub fn from_name(name: &str) -> Option<ValueType> {
        ValueType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether a value of this type may be `value`.
    pub fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (ValueType::Any, _)
                | (ValueType::Number, Value::Float(_) | Value::Int(_))
                | (ValueType::Bool, Value::Bool(_))
                | (ValueType::String, Value::Str(_))
                | (ValueType::Record, Value::Record(_))
                | (ValueType::Bytes, Value::Bytes(_))
                | (ValueType::Frame, Value::Frame(_))
        )
    }
}
