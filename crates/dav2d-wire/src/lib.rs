//! Decoding and encoding of dav2d samples, shared by every connector (HTTP,
//! TCP, and later MQTT and NATS) so a body is refused for the same reasons,
//! in the same words, whichever door it came through.
//!
//! The key design decision: this crate has no sockets and no engine state.
//! It turns bytes into [`Parsed`] records (borrowing strings from the body)
//! on a rayon pool the caller owns, and engine values into JSON; admission
//! and applying are the `Intake`'s in `dav2d-component`. Every wire type
//! deserializes through `deserialize_any` with a visitor that refuses an
//! unexpected container at its first byte: sonic-rs skips a mismatched
//! container recursively with no depth limit, so a typed
//! `deserialize_str`/`_f64`/`_seq` on hostile input could overflow the stack.

pub mod dto;
pub mod encode;
pub mod pipeline;
pub mod scan;

pub use dto::{RecordError, WireRecord};
pub use encode::{UpdateKind, reading_json, update_json, value_json};
pub use pipeline::{
    ArrayCutter, Chunk, Columns, DecompressError, Format, Inflater, ParseOptions, Parsed,
    ParsedPiece, Part, PieceJob, assemble, decompress, decompress_charged, parse, parse_then,
};
pub use scan::{BodyError, check_json_start, first_significant};
