//! From bytes to decoded samples: decompression, splitting and parallel
//! parsing on the parser pool. Applying them is the `Intake`'s (in
//! `dav2d-component`).
//!
//! Bodies above the parallel threshold are split (arrays by a structural
//! scan, NDJSON at line boundaries) and parsed in chunks on every worker of
//! the pool; smaller bodies are parsed by one worker. Decoding errors are
//! per record; the good records are applied beside them.

use std::ops::Range;

use dav2d_core::RejectReason;
use rayon::prelude::*;

use crate::dto::{RecordError, WireObject, WireRecord};
use crate::scan::{BodyError, check_json_start, split_array, split_lines};

mod arriving;
mod careful;
mod fast;
mod flat;
mod inflate;
mod parsed;
mod words;

pub use arriving::{ArrayCutter, ParsedPiece, PieceJob, PieceText, assemble};
use careful::scan_and_parse;

use fast::{cut_at, cut_points, parse_pieces, piece_specs};
pub use inflate::{DecompressError, Inflater, decompress, decompress_charged};
use parsed::Samples;
pub use parsed::{Chunk, Columns, Parsed, Part};

/// One piece's good samples, its per-record errors and its element count.
pub(super) type PieceRecords<'a> = (Samples<'a>, Vec<RecordError>, usize);

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

/// Where the byte offsets in record errors count from: the body (a JSON
/// array is one document) or the record's line (NDJSON: the error already
/// names the line).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Offsets {
    FromBody,
    FromLine,
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
    offsets: Offsets,
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
                match offsets {
                    Offsets::FromBody => range.start,
                    Offsets::FromLine => 0,
                },
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
            Ok(parse_ranges(
                body,
                &lines,
                default_stream,
                parallel,
                Offsets::FromLine,
            ))
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
                    Ok(parse_ranges(
                        body,
                        &ranges,
                        default_stream,
                        None,
                        Offsets::FromBody,
                    ))
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
                    .samples()
                    .map(|s| (s.index, s.key.to_string(), s.value.to_string()))
                    .collect();
                (records, parsed.more.len())
            },
        )
        .unwrap();
        assert_eq!(more, 3, "three pieces were parsed");
        let expected: Vec<(usize, String, String)> = serial
            .samples()
            .map(|s| (s.index, s.key.to_string(), s.value.to_string()))
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
