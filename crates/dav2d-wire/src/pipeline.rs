//! From bytes to decoded samples: decompression, splitting and parallel
//! parsing on the parser pool. Applying them is the `Intake`'s (in
//! `dav2d-component`).
//!
//! Bodies above the parallel threshold are split (arrays by a structural
//! scan, NDJSON at line boundaries) and parsed in chunks on every worker of
//! the pool; smaller bodies are parsed by one worker. Decoding errors are
//! per record; the good records are applied beside them.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use bytes::Bytes;

use dav2d_core::{RecordIn, RejectReason};
use rayon::prelude::*;

use crate::dto::{RecordError, WireObject, WireRecord};
use crate::scan::{BodyError, check_json_start, split_array, split_lines};

/// The encodings of request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One sample object, an array of them, or a columnar batch object.
    Json,
    /// One sample object per line.
    Ndjson,
}

/// Limits and tuning of the parser.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// Deepest nesting accepted in a body.
    pub max_depth: usize,
    /// Bodies at least this large are split and parsed in parallel.
    pub parallel_threshold: usize,
    /// Largest body accepted, after decompression.
    pub max_body: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_depth: 32,
            parallel_threshold: 1 << 20,
            max_body: 64 << 20,
        }
    }
}

/// Records decoded from a body, and the ones that could not be.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// Good records, in body order (their `index` is their body position).
    pub records: Vec<WireRecord<'a>>,
    /// Further good records, in body order after `records`, when parts were
    /// parsed in parallel (kept apart rather than copied together): each
    /// part's records, numbered from 0 within the part, and the body
    /// position of the part's first element.
    pub more: Vec<(usize, Cow<'a, [WireRecord<'a>]>)>,
    /// Rejected records, in body order (indices are body positions).
    pub errors: Vec<RecordError>,
}

impl<'a> Parsed<'a> {
    /// How many good records there are.
    pub fn len(&self) -> usize {
        self.records.len() + self.more.iter().map(|(_, part)| part.len()).sum::<usize>()
    }

    /// Whether there is no good record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every good record with its body position, in body order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &WireRecord<'a>)> {
        self.records.iter().map(|r| (r.index, r)).chain(
            self.more
                .iter()
                .flat_map(|(first, part)| part.iter().map(move |r| (first + r.index, r))),
        )
    }

    /// Every good record as the engine takes it, in body order.
    pub fn samples(&self) -> impl Iterator<Item = RecordIn<'_>> {
        self.iter().map(|(index, r)| RecordIn {
            index,
            stream: &r.stream,
            key: &r.key,
            value: r.value.clone(),
            ts_ns: r.ts,
        })
    }
}

/// Decompresses a `gzip` or `zstd` body, refusing to inflate past `limit`.
pub fn decompress(body: &[u8], encoding: &str, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let read = match encoding {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body)
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        "zstd" => match zstd::stream::read::Decoder::new(body) {
            Ok(decoder) => decoder.take(limit as u64 + 1).read_to_end(&mut out),
            Err(error) => Err(error),
        },
        other => return Err(DecompressError::Unsupported(other.to_string())),
    };
    match read {
        Ok(_) if out.len() > limit => Err(DecompressError::TooLarge(limit)),
        Ok(_) => Ok(out),
        Err(error) => Err(DecompressError::Corrupt(format!(
            "the {encoding} body cannot be decoded: {error}"
        ))),
    }
}

/// Why a compressed body could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecompressError {
    /// Not gzip or zstd.
    #[error("unsupported Content-Encoding '{0}'; send identity, gzip or zstd")]
    Unsupported(String),
    /// Inflates past the limit.
    #[error("the body inflates past the {0}-byte limit")]
    TooLarge(usize),
    /// Not valid for its encoding.
    #[error("{0}")]
    Corrupt(String),
}

fn parse_object<'a>(
    text: &'a [u8],
    index: usize,
    offset: usize,
    default_stream: Option<&'a str>,
    records: &mut Vec<WireRecord<'a>>,
    errors: &mut Vec<RecordError>,
) {
    match sonic_rs::from_slice::<WireObject<'a>>(text) {
        Ok(object) => {
            if let Err(error) = object.into_records(index, default_stream, records) {
                errors.push(error);
            }
        }
        Err(error) => errors.push(record_error(index, offset, text, &error)),
    }
}

fn record_error(index: usize, offset: usize, text: &[u8], error: &sonic_rs::Error) -> RecordError {
    let full = error.to_string();
    // sonic-rs appends the location and a snippet; keep the description.
    let description = full
        .split(" at line ")
        .next()
        .unwrap_or(&full)
        .trim()
        .to_string();
    let position = offset + error.offset().min(text.len());
    let reason = if description.contains("unknown field") || description.contains("missing field") {
        RejectReason::InvalidField
    } else if description.contains("invalid type")
        || description.contains("is null")
        || description.contains("nested")
    {
        RejectReason::WrongType
    } else if description.contains("out of range") || description.contains("overflow") {
        RejectReason::OutOfRange
    } else if description.contains("UTF-8")
        || description.contains("utf-8")
        || description.contains("Utf8")
    {
        RejectReason::InvalidUtf8
    } else if error.is_eof() {
        RejectReason::Truncated
    } else {
        RejectReason::InvalidJson
    };
    RecordError {
        index,
        reason,
        message: format!("at byte {position}: {description}"),
    }
}

fn parse_ranges<'a>(
    body: &'a [u8],
    ranges: &[(usize, Range<usize>)],
    default_stream: Option<&'a str>,
    pool: Option<&rayon::ThreadPool>,
) -> Parsed<'a> {
    let parse_chunk = |chunk: &[(usize, Range<usize>)]| {
        let mut parsed = Parsed {
            records: Vec::with_capacity(chunk.len()),
            more: Vec::new(),
            errors: Vec::new(),
        };
        for (index, range) in chunk {
            let text = &body[range.clone()];
            parse_object(
                text,
                *index,
                range.start,
                default_stream,
                &mut parsed.records,
                &mut parsed.errors,
            );
        }
        parsed
    };
    let Some(pool) = pool else {
        return parse_chunk(ranges);
    };
    let chunk = (ranges.len() / (pool.current_num_threads() * 4)).max(512);
    let parts: Vec<Parsed<'a>> =
        pool.install(|| ranges.par_chunks(chunk).map(parse_chunk).collect());
    let mut all = Parsed {
        records: Vec::with_capacity(parts.iter().map(|p| p.records.len()).sum()),
        more: Vec::new(),
        errors: Vec::new(),
    };
    for part in parts {
        all.records.extend(part.records);
        all.errors.extend(part.errors);
    }
    all
}

/// Where to cut a JSON array of objects into `parts` pieces: the commas of
/// `}` `,` `{` boundaries near equal fractions of the body. A cut that falls
/// inside a string is caught later: the piece before it then ends inside an
/// unterminated string and fails to parse.
fn cut_points(body: &[u8], parts: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::with_capacity(parts.saturating_sub(1));
    for k in 1..parts {
        let from = (body.len() * k / parts).max(cuts.last().map_or(0, |c| c + 1));
        let mut i = from;
        let found = loop {
            let Some(offset) = memchr::memchr(b',', &body[i.min(body.len())..]) else {
                break None;
            };
            let comma = i + offset;
            if cut_at(body, comma) == Some(true) {
                break Some(comma);
            }
            i = comma + 1;
        };
        match found {
            Some(comma) => cuts.push(comma),
            None => break,
        }
    }
    cuts
}

/// Whether the comma at `comma` separates two objects (`}` `,` `{`, with
/// any whitespace around it) as far as `text` shows; `None` when `text`
/// ends before the byte after the comma.
fn cut_at(text: &[u8], comma: usize) -> Option<bool> {
    let after = text[comma + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())?;
    let before = text[..comma]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace());
    Some(before == Some(&b'}') && *after == b'{')
}

/// One piece of a cut array: where it lies in the body, and the brackets it
/// needs to stand alone as a JSON array.
struct Piece {
    range: Range<usize>,
    open: bool,
    close: bool,
}

fn piece_specs(len: usize, cuts: &[usize]) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for (k, &cut) in cuts.iter().enumerate() {
        pieces.push(Piece {
            range: start..cut,
            open: k > 0,
            close: true,
        });
        start = cut + 1;
    }
    pieces.push(Piece {
        range: start..len,
        open: !cuts.is_empty(),
        close: false,
    });
    pieces
}

type PieceRecords<'a> = (Vec<WireRecord<'a>>, Vec<RecordError>, usize);

/// Parses one standalone JSON array of sample objects with one typed
/// deserializer call; `None` if anything in it is bad.
fn parse_piece<'a>(text: &'a [u8], default_stream: Option<&'a str>) -> Option<PieceRecords<'a>> {
    use serde::de::DeserializeSeed;
    let mut records = Vec::with_capacity(text.len() / 64);
    let mut errors = Vec::new();
    let mut seed = crate::dto::RecordsSeed {
        records: &mut records,
        errors: &mut errors,
        default_stream,
        next_index: 0,
    };
    let mut deserializer = sonic_rs::Deserializer::from_slice(text);
    (&mut seed).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    let elements = seed.next_index;
    Some((records, errors, elements))
}

/// The optimistic path for a JSON array: each piece parsed by one typed
/// deserializer call, pieces in parallel, each worker copying its own piece
/// into its buffer. `None` when any piece fails to parse; the caller then
/// takes the per-record path, which reports each bad record on its own.
fn parse_pieces<'a>(
    text: &'a [u8],
    pieces: &[Piece],
    buffers: &'a mut [Vec<u8>],
    default_stream: Option<&'a str>,
    pool: &rayon::ThreadPool,
) -> Option<Parsed<'a>> {
    let parts: Vec<PieceRecords<'a>> = if pieces.len() == 1 {
        vec![parse_piece(&text[pieces[0].range.clone()], default_stream)?]
    } else {
        pool.install(|| {
            buffers
                .par_iter_mut()
                .zip(pieces.par_iter())
                .map(|(buffer, piece)| {
                    buffer.reserve(piece.range.len() + 2);
                    if piece.open {
                        buffer.push(b'[');
                    }
                    buffer.extend_from_slice(&text[piece.range.clone()]);
                    if piece.close {
                        buffer.push(b']');
                    }
                    let buffer: &'a Vec<u8> = buffer;
                    parse_piece(buffer, default_stream)
                })
                .collect::<Option<Vec<_>>>()
        })?
    };
    // Each piece counted its elements from 0: shift to body positions.
    let mut parsed = Parsed::default();
    let mut offset = 0;
    for (number, (records, errors, elements)) in parts.into_iter().enumerate() {
        if number == 0 {
            parsed.records = records;
        } else {
            parsed.more.push((offset, Cow::Owned(records)));
        }
        parsed.errors.extend(errors.into_iter().map(|mut e| {
            e.index += offset;
            e
        }));
        offset += elements;
    }
    Some(parsed)
}

/// Parses a body and hands the result to `then` (which applies it), taking
/// the optimistic whole-array path first. The pieces it may copy live only
/// for the duration of this call.
pub fn parse_then<R>(
    body: &[u8],
    format: Format,
    default_stream: Option<&str>,
    options: &ParseOptions,
    pool: &rayon::ThreadPool,
    then: impl FnOnce(Parsed<'_>) -> R,
) -> Result<R, BodyError> {
    if format == Format::Json
        && let Some((start, b'[')) = crate::scan::first_significant(body)
    {
        let parts = if body.len() >= options.parallel_threshold {
            pool.current_num_threads()
        } else {
            1
        };
        let text = &body[start..];
        let cuts = if parts > 1 {
            cut_points(text, parts)
        } else {
            Vec::new()
        };
        let pieces = piece_specs(text.len(), &cuts);
        let mut buffers: Vec<Vec<u8>> = (0..pieces.len()).map(|_| Vec::new()).collect();
        // No field recurses into nested values (see `wire`), so any depth is
        // safe here; a deep body fails this path and meets the scanner's limit.
        if let Some(parsed) = parse_pieces(text, &pieces, &mut buffers, default_stream, pool) {
            return Ok(then(parsed));
        }
    }
    let parsed = parse(body, format, default_stream, options, pool)?;
    Ok(then(parsed))
}

/// Cuts a JSON array body into pieces while it is still arriving, so the
/// pieces already in are parsed on the pool while the rest is received.
///
/// Frames are kept as they came (reference-counted, never copied here);
/// each [`PieceJob`] carries the slices of the frames it covers. A cut is a
/// `}` `,` `{` boundary found inside one frame; as in [`parse_then`], a cut
/// that falls inside a string makes a piece fail, and the caller then parses
/// the whole body the careful way.
#[derive(Debug)]
pub struct ArrayCutter {
    frames: Vec<(usize, Bytes)>,
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
    frames: Vec<Bytes>,
    len: usize,
    open: bool,
    close: bool,
}

impl ArrayCutter {
    /// A cutter aiming at pieces of about `piece_bytes`.
    pub fn new(piece_bytes: usize) -> Self {
        Self {
            frames: Vec::new(),
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

    /// Takes one more frame of the body.
    pub fn push(&mut self, frame: Bytes) {
        if frame.is_empty() {
            return;
        }
        if self.array.is_none() {
            self.array = frame
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .map(|&b| b == b'[');
        }
        self.frames.push((self.received, frame));
        self.received += self.frames.last().map_or(0, |(_, f)| f.len());
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
        for (_, frame) in &self.frames {
            body.extend_from_slice(frame);
        }
        body
    }

    fn job(&mut self, range: Range<usize>, close: bool) -> PieceJob {
        let mut frames = Vec::new();
        for (start, frame) in &self.frames {
            let end = start + frame.len();
            if end <= range.start || *start >= range.end {
                continue;
            }
            let from = range.start.max(*start) - start;
            let to = range.end.min(end) - start;
            frames.push(frame.slice(from..to));
        }
        let job = PieceJob {
            number: self.pieces,
            frames,
            len: range.len(),
            open: self.pieces > 0,
            close,
        };
        self.pieces += 1;
        job
    }

    /// The first `}` `,` `{` comma at or after `from` whose brackets lie in
    /// the same frame; `Err(position)` to look again from there once more
    /// has arrived.
    fn find_cut(&self, from: usize) -> Result<usize, usize> {
        let first = self
            .frames
            .partition_point(|(start, frame)| start + frame.len() <= from);
        let last_frame = self.frames.len().saturating_sub(1);
        for (number, (start, frame)) in self.frames.iter().enumerate().skip(first) {
            let mut i = from.saturating_sub(*start);
            while let Some(offset) = memchr::memchr(b',', &frame[i.min(frame.len())..]) {
                let comma = i + offset;
                match cut_at(frame, comma) {
                    Some(true) => return Ok(start + comma),
                    // The byte after the comma has not arrived yet.
                    None if number == last_frame => return Err(start + comma),
                    _ => {}
                }
                i = comma + 1;
            }
        }
        Err(self.received)
    }
}

/// A piece's own copy of its text, with the brackets it needs to stand
/// alone, and the stream its records default to.
#[derive(Debug)]
pub struct PieceText {
    text: Vec<u8>,
    default_stream: Option<String>,
}

type PieceOutcome<'a> = Option<PieceRecords<'a>>;

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
            .field("bytes", &self.borrow_owner().text.len())
            .field("records_and_elements", &parsed)
            .finish()
    }
}

impl PieceJob {
    /// Copies the piece into its own buffer and parses it with one typed
    /// deserializer call (run it on the pool).
    pub fn parse(self, default_stream: Option<&str>) -> ParsedPiece {
        let mut text = Vec::with_capacity(self.len + 2);
        if self.open {
            text.push(b'[');
        }
        for frame in &self.frames {
            text.extend_from_slice(frame);
        }
        if self.close {
            text.push(b']');
        }
        let owner = PieceText {
            text,
            default_stream: default_stream.map(str::to_string),
        };
        ParsedPiece::new(owner, |owner| {
            parse_piece(&owner.text, owner.default_stream.as_deref())
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
        parsed
            .more
            .push((offset, Cow::Borrowed(records.as_slice())));
        parsed.errors.extend(errors.iter().map(|e| RecordError {
            index: e.index + offset,
            ..e.clone()
        }));
        offset += elements;
    }
    Some(parsed)
}

/// Elements handed to a parser task at a time while the scan goes on.
const SCAN_CHUNK: usize = 1024;

/// Scans the array on this thread and parses each chunk of elements on the
/// pool as soon as it is found, so scanning and parsing overlap.
fn scan_and_parse<'a>(
    body: &'a [u8],
    max_depth: usize,
    default_stream: Option<&'a str>,
    pool: &rayon::ThreadPool,
) -> Result<Parsed<'a>, BodyError> {
    let parts: std::sync::Mutex<Vec<(usize, Parsed<'a>)>> = std::sync::Mutex::new(Vec::new());
    let parse_chunk = |number: usize, chunk: Vec<(usize, Range<usize>)>| {
        let parsed = parse_ranges(body, &chunk, default_stream, None);
        if let Ok(mut parts) = parts.lock() {
            parts.push((number, parsed));
        }
    };
    let scanned = pool.install(|| {
        rayon::scope(|scope| {
            let mut chunk = Vec::with_capacity(SCAN_CHUNK);
            let mut index = 0usize;
            let mut number = 0usize;
            let result = crate::scan::scan_array(body, max_depth, |range| {
                chunk.push((index, range));
                index += 1;
                if chunk.len() == SCAN_CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(SCAN_CHUNK));
                    let task = &parse_chunk;
                    scope.spawn(move |_| task(number, full));
                    number += 1;
                }
            });
            if result.is_ok() && !chunk.is_empty() {
                parse_chunk(number, chunk);
            }
            result
        })
    });
    scanned?;
    let mut parts = parts.into_inner().unwrap_or_default();
    parts.sort_unstable_by_key(|(number, _)| *number);
    let mut all = Parsed {
        records: Vec::with_capacity(parts.iter().map(|(_, p)| p.records.len()).sum()),
        more: Vec::new(),
        errors: Vec::new(),
    };
    for (_, part) in parts {
        all.records.extend(part.records);
        all.errors.extend(part.errors);
    }
    Ok(all)
}

/// Parses a whole body. A body that is not JSON at all, is truncated or
/// nests too deeply is refused as a whole (`BodyError`); otherwise each
/// record is decoded on its own. Large bodies use every worker of `pool`.
pub fn parse<'a>(
    body: &'a [u8],
    format: Format,
    default_stream: Option<&'a str>,
    options: &ParseOptions,
    pool: &rayon::ThreadPool,
) -> Result<Parsed<'a>, BodyError> {
    let parallel = (body.len() >= options.parallel_threshold && pool.current_num_threads() > 1)
        .then_some(pool);
    match format {
        Format::Ndjson => {
            let lines = split_lines(body);
            Ok(parse_ranges(body, &lines, default_stream, parallel))
        }
        Format::Json => {
            let (start, first) = check_json_start(body)?;
            if first == b'{' {
                let mut parsed = Parsed::default();
                parse_object(
                    &body[start..],
                    0,
                    start,
                    default_stream,
                    &mut parsed.records,
                    &mut parsed.errors,
                );
                return Ok(parsed);
            }
            match parallel {
                None => {
                    let elements = split_array(body, options.max_depth)?;
                    let ranges: Vec<(usize, Range<usize>)> =
                        elements.into_iter().enumerate().collect();
                    Ok(parse_ranges(body, &ranges, default_stream, None))
                }
                Some(pool) => scan_and_parse(body, options.max_depth, default_stream, pool),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize, bad_every: usize) -> String {
        let samples: Vec<String> = (0..n)
            .map(|i| {
                if bad_every != usize::MAX && i % bad_every == 7 {
                    format!(
                        "{{\"stream\": \"s\", \"key\": \"k{i}\", \"value\": \"x\", \"oops\": 1}}"
                    )
                } else {
                    format!("{{\"stream\": \"s\", \"key\": \"k{i}\", \"value\": {i}}}")
                }
            })
            .collect();
        format!("[{}]", samples.join(",\n"))
    }

    #[test]
    fn the_parallel_fast_path_matches_the_serial_path() {
        let text = body(5000, usize::MAX);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let serial_options = ParseOptions {
            parallel_threshold: usize::MAX,
            ..ParseOptions::default()
        };
        let serial = parse(text.as_bytes(), Format::Json, None, &serial_options, &pool).unwrap();
        let parallel_options = ParseOptions {
            parallel_threshold: 0,
            ..ParseOptions::default()
        };
        let (records, more) = parse_then(
            text.as_bytes(),
            Format::Json,
            None,
            &parallel_options,
            &pool,
            |parsed| {
                let records: Vec<(usize, String, String)> = parsed
                    .iter()
                    .map(|(i, r)| (i, r.key.to_string(), r.value.to_string()))
                    .collect();
                (records, parsed.more.len())
            },
        )
        .unwrap();
        assert_eq!(more, 2, "three pieces were parsed");
        let expected: Vec<(usize, String, String)> = serial
            .iter()
            .map(|(i, r)| (i, r.key.to_string(), r.value.to_string()))
            .collect();
        assert_eq!(records, expected);
    }

    #[test]
    fn parallel_parsing_matches_serial_parsing_in_order() {
        let text = body(5000, 1000);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let serial_options = ParseOptions {
            parallel_threshold: usize::MAX,
            ..ParseOptions::default()
        };
        let parallel_options = ParseOptions {
            parallel_threshold: 0,
            ..ParseOptions::default()
        };
        let serial = parse(text.as_bytes(), Format::Json, None, &serial_options, &pool).unwrap();
        let parallel = parse(
            text.as_bytes(),
            Format::Json,
            None,
            &parallel_options,
            &pool,
        )
        .unwrap();
        assert_eq!(parallel.records, serial.records);
        assert_eq!(parallel.errors, serial.errors);
        assert_eq!(parallel.records.len(), 4995);
        let bad: Vec<usize> = parallel.errors.iter().map(|e| e.index).collect();
        assert_eq!(bad, vec![7, 1007, 2007, 3007, 4007]);
        assert!(parallel.records.windows(2).all(|w| w[0].index < w[1].index));
        // A broken body is refused whole on the parallel path too.
        let truncated = &text[..text.len() - 1];
        assert!(
            parse(
                truncated.as_bytes(),
                Format::Json,
                None,
                &parallel_options,
                &pool
            )
            .is_err()
        );
    }
}

#[cfg(test)]
mod cutter_tests {
    use super::*;

    /// Cuts `body` arriving in frames of the given sizes (cycled) and parses
    /// the pieces; `None` when a piece failed.
    fn cut_and_parse(
        body: &[u8],
        frame_sizes: &[usize],
        piece_bytes: usize,
    ) -> Option<Vec<(usize, String, String)>> {
        let mut cutter = ArrayCutter::new(piece_bytes);
        let mut jobs = Vec::new();
        let mut at = 0;
        for size in frame_sizes.iter().cycle() {
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
        Some(
            parsed
                .iter()
                .map(|(i, r)| (i, r.key.to_string(), r.value.to_string()))
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
    fn pieces_cut_from_any_frames_parse_to_the_whole_body() {
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
            .iter()
            .map(|(i, r)| (i, r.key.to_string(), r.value.to_string()))
            .collect();
        assert_eq!(expected.len(), 3000);
        for (frames, piece) in [
            (vec![1], 997),
            (vec![3, 1, 4096], 5000),
            (vec![65536], 10_000),
            (vec![8192, 7], 1),
            (vec![1 << 20], 1 << 20),
        ] {
            let got = cut_and_parse(text.as_bytes(), &frames, piece)
                .unwrap_or_else(|| panic!("frames {frames:?}, pieces of {piece}: a piece failed"));
            assert_eq!(got, expected, "frames {frames:?}, pieces of {piece}");
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

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    fn run(body: &str) -> Result<(usize, Vec<String>), String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        parse_then(
            body.as_bytes(),
            Format::Json,
            Some("s"),
            &ParseOptions::default(),
            &pool,
            |parsed| {
                (
                    parsed.len(),
                    parsed.errors.iter().map(|e| e.message.clone()).collect(),
                )
            },
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn every_bad_record_kind_on_a_small_stack() {
        let bodies = [
            r#"[{"key": "hot", "value": 999}]"#,
            r#"[{"key": 5, "value": 1}]"#,
            r#"[{"key": "nul", "value": null}]"#,
            r#"[{"key": "none"}]"#,
            r#"[{"key": "typo", "valu": 1}]"#,
            r#"[{"key": "big", "value": 1e999}]"#,
            r#"[{"key": "nan", "value": NaN}]"#,
            r#"[{"key": "inf", "value": Infinity}]"#,
            r#"[{"key": "deep", "value": {"a": {"b": 1}}}]"#,
            r#"[{"key": "arr", "value": [1, 2]}]"#,
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            r#"[{"value": 1}, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"#,
            r#"[{"value": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]"#,
            r#"[{"keys": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["a"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "values": [1]}]"#,
        ];
        for body in bodies {
            let outcome = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || run(body).map(|(n, _)| n))
                .unwrap()
                .join();
            assert!(outcome.is_ok(), "{body} overflowed or panicked");
        }
    }

    #[test]
    fn deep_bodies_never_make_the_fast_path_recurse() {
        let bodies = [
            format!("[{}1{}]", "[".repeat(100), "]".repeat(100)),
            format!(
                "[{{\"value\": 1}}, {}1{}]",
                "[".repeat(100),
                "]".repeat(100)
            ),
            format!("[{{\"value\": {}1{}}}]", "[".repeat(100), "]".repeat(100)),
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            // sonic-rs skips mismatched containers recursively; the wire
            // types must never let it, whatever the depth.
            let outcome = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .unwrap();
                    let text = body.as_bytes();
                    let pieces = piece_specs(text.len(), &[]);
                    let mut buffers = vec![Vec::new()];
                    assert!(
                        parse_pieces(text, &pieces, &mut buffers, None, &pool).is_none(),
                        "body {i} is refused"
                    );
                })
                .unwrap()
                .join();
            assert!(outcome.is_ok());
        }
    }

    #[test]
    fn nested_values_fail_without_recursing() {
        assert_eq!(
            run(r#"[{"key": "a", "value": {"a": {"b": 1}}}]"#)
                .unwrap()
                .0,
            0
        );
        let deep = format!(
            "[{{\"value\": {}1{}}}]",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert!(
            run(&deep).is_err(),
            "refused whole by the scanner's depth limit"
        );
        let deep_record = format!(
            "[{{\"value\": {}1{}}}]",
            "{\"a\": ".repeat(50_000),
            "}".repeat(50_000)
        );
        assert!(run(&deep_record).is_err());
    }
}
