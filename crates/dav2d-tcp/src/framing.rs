//! The TCP source's framing over bytes, with no socket: where the complete
//! NDJSON lines of a buffer end, and the next binary unit (a 4-byte
//! big-endian payload length, a 1-byte kind, the payload). Pure functions,
//! so the fuzz targets drive exactly what a connection runs.

/// What the front of a unit buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole unit yet: read more.
    Incomplete,
    /// A unit whose declared payload is longer than the limit.
    TooLong(usize),
    /// A whole unit: its kind, its payload at `5..5 + len`, and the bytes
    /// it takes (`5 + len`).
    Unit {
        /// The unit's kind byte.
        kind: u8,
        /// The payload's length.
        len: usize,
    },
}

/// The bytes a unit header takes.
pub const UNIT_HEADER: usize = 5;

/// The unit at the front of `buffer`, refusing payloads over `max_len`
/// from the header alone (before any of it is buffered).
pub fn next_unit(buffer: &[u8], max_len: usize) -> Frame {
    let Some(header) = buffer.get(..UNIT_HEADER) else {
        return Frame::Incomplete;
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > max_len {
        return Frame::TooLong(len);
    }
    if buffer.len() < UNIT_HEADER + len {
        return Frame::Incomplete;
    }
    Frame::Unit {
        kind: header[4],
        len,
    }
}

/// Where the complete lines of `buffer` end (just past its last newline),
/// if it has any.
pub fn complete_lines(buffer: &[u8]) -> Option<usize> {
    memchr::memrchr(b'\n', buffer).map(|last| last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_cut_by_their_header() {
        assert_eq!(next_unit(b"\x00\x00", 10), Frame::Incomplete);
        assert_eq!(next_unit(b"\x00\x00\x00\x02\x01a", 10), Frame::Incomplete);
        assert_eq!(
            next_unit(b"\x00\x00\x00\x02\x01ab", 10),
            Frame::Unit { kind: 1, len: 2 }
        );
        assert_eq!(
            next_unit(b"\xff\xff\xff\xff\x01", 10),
            Frame::TooLong(u32::MAX as usize)
        );
        assert_eq!(complete_lines(b"a\nb\nc"), Some(4));
        assert_eq!(complete_lines(b"abc"), None);
    }
}
