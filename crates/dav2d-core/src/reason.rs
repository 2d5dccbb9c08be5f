//! Why a sample or a request was refused, as one typed vocabulary shared by
//! the engine and every connector, so counters, metrics and answers agree
//! without matching strings across crates.

use std::fmt;

/// Where a refusal happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The whole request or message (bad body, too large, unauthorized, overloaded).
    Transport,
    /// One record that could not be decoded.
    Decode,
    /// One sample the engine refused (unknown stream, bounds, type).
    Engine,
}

impl Stage {
    /// The stage's label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Transport => "transport",
            Stage::Decode => "decode",
            Stage::Engine => "engine",
        }
    }
}

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $label:literal,)*) => {
        /// A short, stable reason for a refusal; its label names it in
        /// counters, metrics and answers.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RejectReason {
            $($(#[$doc])* $variant,)*
        }

        impl RejectReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$variant,)*];

            /// The reason's label, e.g. `above_max`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RejectReason::$variant => $label,)*
                }
            }
        }
    };
}

reasons! {
    /// The stream is not declared and streams must be.
    UnknownStream => "unknown_stream",
    /// The sample targets a node's or constraint's output.
    NodeOutput => "node_output",
    /// A non-number on a stream with numeric bounds.
    NotANumber => "not_a_number",
    /// NaN or infinity on a finite-only stream.
    NotFinite => "not_finite",
    /// Older than its key's latest sample, past the stream's allowed lateness.
    Late => "late",
    /// Below the stream's minimum.
    BelowMin => "below_min",
    /// Above the stream's maximum.
    AboveMax => "above_max",
    /// A value of another type than the stream's declared value type.
    TypeMismatch => "type_mismatch",
    /// A record with a field that is not part of a sample, or one missing.
    InvalidField => "invalid_field",
    /// A required field is missing.
    MissingField => "missing_field",
    /// A field of the wrong JSON type.
    WrongType => "wrong_type",
    /// A number out of range.
    OutOfRange => "out_of_range",
    /// Text that is not UTF-8.
    InvalidUtf8 => "invalid_utf8",
    /// A record or body that ends early.
    Truncated => "truncated",
    /// Text that is not JSON.
    InvalidJson => "invalid_json",
    /// A columnar batch whose parts do not fit together.
    InvalidShape => "invalid_shape",
    /// A body that cannot start JSON.
    NotJson => "not_json",
    /// A body with nothing in it.
    EmptyBody => "empty_body",
    /// A body nested deeper than allowed.
    TooDeep => "too_deep",
    /// A body or message over its size limit.
    TooLarge => "too_large",
    /// A compressed body that cannot be decoded.
    BadEncoding => "bad_encoding",
    /// A media type that is not JSON or NDJSON.
    UnsupportedMediaType => "unsupported_media_type",
    /// A content encoding other than identity, gzip or zstd.
    UnsupportedEncoding => "unsupported_encoding",
    /// A body that did not arrive in time.
    Timeout => "timeout",
    /// A body the connection broke off.
    BrokenBody => "broken_body",
    /// A request without the required token.
    Unauthorized => "unauthorized",
    /// The queue for `all`-edge streams is full: retry later.
    Overloaded => "overloaded",
    /// A TCP line over `max_line`.
    LineTooLong => "line_too_long",
    /// A binary TCP unit over `max_line`.
    UnitTooLong => "unit_too_long",
    /// A binary TCP unit of an unknown kind.
    UnknownUnitKind => "unknown_unit_kind",
    /// A new key past `limits.keys` or `limits.keys_per_stream`.
    TooManyKeys => "too_many_keys",
    /// A key longer than `limits.key_length`.
    KeyTooLong => "key_too_long",
    /// A new stream name longer than `limits.name_length`.
    NameTooLong => "name_too_long",
    /// A new stream past `limits.streams`.
    TooManyStreams => "too_many_streams",
    /// A value larger than `limits.value_size`.
    ValueTooLarge => "value_too_large",
    /// The budget `limits.retained_values` is spent.
    RetainedFull => "retained_full",
    /// The budget `limits.window_bytes` is spent: no new key.
    WindowsFull => "windows_full",
    /// The bytes of bodies in flight are at `ingest.body_budget`: retry later.
    BodyBudget => "body_budget",
    /// A connection past the listener's `max_connections`.
    TooManyConnections => "too_many_connections",
    /// A connection idle, or with a message half sent, for too long.
    IdleTimeout => "idle_timeout",
    /// A request whose `Host` is not allowed.
    ForbiddenHost => "forbidden_host",
    /// A lossless sink (persistence) is behind: retry later.
    SinkBehind => "sink_behind",
    /// A cluster message whose key is not of the partition it came on.
    WrongPartition => "wrong_partition",
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
