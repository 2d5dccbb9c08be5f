//! Parse-while-arriving: a large array still arriving is cut into pieces
//! as its chunks come in, each piece parsed on the pool as soon as it is in
//! (a `ParsedPiece` owns its text and the records borrowing from it), and
//! the pieces are assembled in order.

use std::ops::Range;

use bytes::Bytes;

use super::*;
use crate::dto::RecordError;

/// Cuts a JSON array body into pieces while it is still arriving, so the
/// pieces already in are parsed on the pool while the rest is received.
///
/// Chunks are kept as they came (reference-counted, never copied here);
/// each [`PieceJob`] carries the slices of the chunks it covers. A cut is a
/// `}` `,` `{` boundary found inside one chunk; as in [`parse_then`], a cut
/// that falls inside a string makes a piece fail, and the caller then parses
/// the whole body the careful way.
#[derive(Debug)]
pub struct ArrayCutter {
    chunks: Vec<(usize, Bytes)>,
    received: usize,
    piece_start: usize,
    piece_bytes: usize,
    search_from: usize,
    pieces: usize,
    /// Whether the body is an array (known at its first significant byte);
    /// anything else is never cut.
    array: Option<bool>,
}

/// One piece of an arriving array, ready to be parsed on its own.
#[derive(Debug)]
pub struct PieceJob {
    /// Position of the piece among the pieces of the body.
    pub number: usize,
    chunks: Vec<Bytes>,
    len: usize,
    open: bool,
    close: bool,
}

impl ArrayCutter {
    /// A cutter aiming at pieces of about `piece_bytes`.
    pub fn new(piece_bytes: usize) -> Self {
        Self {
            chunks: Vec::new(),
            received: 0,
            piece_start: 0,
            piece_bytes: piece_bytes.max(1),
            search_from: 0,
            pieces: 0,
            array: None,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Whether any piece was cut off yet.
    pub fn has_pieces(&self) -> bool {
        self.pieces > 0
    }

    /// Takes one more chunk of the body.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.array.is_none() {
            self.array = chunk
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .map(|&b| b == b'[');
        }
        self.chunks.push((self.received, chunk));
        self.received += self.chunks.last().map_or(0, |(_, f)| f.len());
    }

    /// Cuts off the pieces complete so far.
    pub fn cut(&mut self) -> Vec<PieceJob> {
        let mut jobs = Vec::new();
        if self.array != Some(true) {
            return jobs;
        }
        while self.received - self.piece_start > self.piece_bytes {
            let from = self.search_from.max(self.piece_start + self.piece_bytes);
            match self.find_cut(from) {
                Ok(cut) => {
                    jobs.push(self.job(self.piece_start..cut, true));
                    self.piece_start = cut + 1;
                    self.search_from = self.piece_start;
                }
                Err(retry_from) => {
                    self.search_from = retry_from;
                    break;
                }
            }
        }
        jobs
    }

    /// The last piece, once the body is complete (`None` for an empty body
    /// or one that is not an array: those are parsed whole).
    pub fn finish(&mut self) -> Option<PieceJob> {
        if self.array != Some(true) || self.received == self.piece_start {
            return None;
        }
        Some(self.job(self.piece_start..self.received, false))
    }

    /// The whole body in one buffer (for the careful path).
    pub fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.received);
        for (_, chunk) in &self.chunks {
            body.extend_from_slice(chunk);
        }
        body
    }

    fn job(&mut self, range: Range<usize>, close: bool) -> PieceJob {
        let mut chunks = Vec::new();
        for (start, chunk) in &self.chunks {
            let end = start + chunk.len();
            if end <= range.start || *start >= range.end {
                continue;
            }
            let from = range.start.max(*start) - start;
            let to = range.end.min(end) - start;
            chunks.push(chunk.slice(from..to));
        }
        let job = PieceJob {
            number: self.pieces,
            chunks,
            len: range.len(),
            open: self.pieces > 0,
            close,
        };
        self.pieces += 1;
        job
    }

    /// The first `}` `,` `{` comma at or after `from` whose brackets lie in
    /// the same chunk; `Err(position)` to look again from there once more
    /// has arrived.
    fn find_cut(&self, from: usize) -> Result<usize, usize> {
        let first = self
            .chunks
            .partition_point(|(start, chunk)| start + chunk.len() <= from);
        let last_chunk = self.chunks.len().saturating_sub(1);
        for (number, (start, chunk)) in self.chunks.iter().enumerate().skip(first) {
            let mut i = from.saturating_sub(*start);
            while let Some(offset) = memchr::memchr(b',', &chunk[i.min(chunk.len())..]) {
                let comma = i + offset;
                match cut_at(chunk, comma) {
                    Some(true) => return Ok(start + comma),
                    // The byte after the comma has not arrived yet.
                    None if number == last_chunk => return Err(start + comma),
                    _ => {}
                }
                i = comma + 1;
            }
        }
        Err(self.received)
    }
}

/// A piece's text as it arrived (the chunks' slices, shared, not copied),
/// the stream its records default to, and, only when the flat scanner
/// declined it, a copy with the brackets it needs to stand alone.
#[derive(Debug)]
pub struct PieceText {
    chunks: Vec<Bytes>,
    len: usize,
    /// The brackets of the array the piece holds itself.
    brackets: super::flat::Brackets,
    default_stream: Option<String>,
    joined: std::cell::OnceCell<Vec<u8>>,
}

pub(super) type PieceOutcome<'a> = Option<PieceRecords<'a>>;

self_cell::self_cell!(
    /// A parsed piece: its text and the records borrowing from it (`None`
    /// when something in the piece was bad).
    pub struct ParsedPiece {
        owner: PieceText,
        #[covariant]
        dependent: PieceOutcome,
    }
);

impl std::fmt::Debug for ParsedPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parsed = self
            .borrow_dependent()
            .as_ref()
            .map(|(r, _, n)| (r.len(), *n));
        f.debug_struct("ParsedPiece")
            .field("bytes", &self.borrow_owner().len)
            .field("records_and_elements", &parsed)
            .finish()
    }
}

impl PieceJob {
    /// Parses the piece where its chunks lie, by the flat scanner, or else
    /// copied whole by one typed deserializer call (run it on the pool).
    pub fn parse(self, default_stream: Option<&str>) -> ParsedPiece {
        let owner = PieceText {
            chunks: self.chunks,
            len: self.len,
            brackets: super::flat::Brackets {
                open: !self.open,
                close: !self.close,
            },
            default_stream: default_stream.map(str::to_string),
            joined: std::cell::OnceCell::new(),
        };
        ParsedPiece::new(owner, |owner| {
            let chunks: Vec<&[u8]> = owner.chunks.iter().map(|c| &c[..]).collect();
            let default_stream = owner.default_stream.as_deref();
            super::flat::scan_chunks(&chunks, owner.brackets, default_stream).or_else(|| {
                let joined = owner.joined.get_or_init(|| {
                    let mut text = Vec::new();
                    owner.brackets.standalone(&chunks, &mut text);
                    text
                });
                super::fast::parse_piece_serde(joined, default_stream)
            })
        })
    }
}

/// The records of the parsed pieces of a body, in order; `None` if any
/// piece failed (the body must then be parsed the careful way).
pub fn assemble(pieces: &[ParsedPiece]) -> Option<Parsed<'_>> {
    let mut parsed = Parsed::default();
    let mut offset = 0;
    for piece in pieces {
        let (records, errors, elements) = piece.borrow_dependent().as_ref()?;
        parsed.more.push((offset, records.as_part()));
        parsed.errors.extend(errors.iter().map(|e| RecordError {
            index: e.index + offset,
            ..e.clone()
        }));
        offset += elements;
    }
    Some(parsed)
}

#[cfg(test)]
mod cutter_tests {
    use super::*;

    /// Cuts `body` arriving in chunks of the given sizes (cycled) and parses
    /// the pieces; `None` when a piece failed.
    fn cut_and_parse(
        body: &[u8],
        chunk_sizes: &[usize],
        piece_bytes: usize,
    ) -> Option<Vec<(usize, String, String)>> {
        let mut cutter = ArrayCutter::new(piece_bytes);
        let mut jobs = Vec::new();
        let mut at = 0;
        for size in chunk_sizes.iter().cycle() {
            if at >= body.len() {
                break;
            }
            let end = (at + size).min(body.len());
            cutter.push(Bytes::copy_from_slice(&body[at..end]));
            jobs.extend(cutter.cut());
            at = end;
        }
        jobs.extend(cutter.finish());
        assert_eq!(cutter.body(), body, "the cutter keeps the whole body");
        assert!(jobs.iter().enumerate().all(|(i, job)| job.number == i));
        let pieces: Vec<ParsedPiece> = jobs.into_iter().map(|job| job.parse(Some("s"))).collect();
        let parsed = assemble(&pieces)?;
        // The flat bodies here are read where their chunks lie, an element
        // cut between chunks included: never copied whole for serde.
        assert!(
            parsed
                .more
                .iter()
                .all(|(_, part)| matches!(part, Part::Columns(_))),
            "read by the flat scanner"
        );
        assert!(
            pieces
                .iter()
                .all(|p| p.borrow_owner().joined.get().is_none()),
            "no piece was copied"
        );
        Some(
            parsed
                .samples()
                .map(|s| (s.index, s.key.to_string(), s.value.to_string()))
                .collect(),
        )
    }

    fn samples(n: usize) -> String {
        let samples: Vec<String> = (0..n)
            .map(|i| format!("{{\"key\": \"k{i}\", \"value\": {i}}}"))
            .collect();
        format!(" [{}]\n", samples.join(" ,\n "))
    }

    #[test]
    fn pieces_cut_from_any_chunks_parse_to_the_whole_body() {
        let text = samples(3000);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let serial = parse(
            text.as_bytes(),
            Format::Json,
            Some("s"),
            &ParseOptions::default(),
            &pool,
        )
        .unwrap();
        let expected: Vec<(usize, String, String)> = serial
            .samples()
            .map(|s| (s.index, s.key.to_string(), s.value.to_string()))
            .collect();
        assert_eq!(expected.len(), 3000);
        for (chunks, piece) in [
            (vec![1], 997),
            (vec![3, 1, 4096], 5000),
            (vec![65536], 10_000),
            (vec![8192, 7], 1),
            (vec![1 << 20], 1 << 20),
        ] {
            let got = cut_and_parse(text.as_bytes(), &chunks, piece)
                .unwrap_or_else(|| panic!("chunks {chunks:?}, pieces of {piece}: a piece failed"));
            assert_eq!(got, expected, "chunks {chunks:?}, pieces of {piece}");
        }
    }

    #[test]
    fn a_bad_record_or_a_cut_inside_a_string_fails_a_piece() {
        let mut text = samples(2000);
        text = text.replacen("\"value\": 1500}", "\"value\": \"x\", \"oops\": 1}", 1);
        assert!(cut_and_parse(text.as_bytes(), &[4096], 2000).is_none());
        // Keys holding the very bytes of a cut: a piece ends inside a string.
        let tricky: Vec<String> = (0..2000)
            .map(|i| format!("{{\"key\": \"a}},{{b{i}\", \"value\": {i}}}"))
            .collect();
        let tricky = format!("[{}]", tricky.join(","));
        assert!(cut_and_parse(tricky.as_bytes(), &[4096], 2000).is_none());
    }

    #[test]
    fn bodies_that_are_not_arrays_are_never_cut() {
        let mut cutter = ArrayCutter::new(4);
        cutter.push(Bytes::from_static(
            b"  {\"keys\": [\"a\"], \"values\": [1]},{}",
        ));
        let jobs = cutter.cut();
        assert!(jobs.is_empty());
        assert!(cutter.finish().is_none());
        assert!(!cutter.has_pieces());
        let mut empty = ArrayCutter::new(4);
        assert!(empty.finish().is_none());
    }
}
