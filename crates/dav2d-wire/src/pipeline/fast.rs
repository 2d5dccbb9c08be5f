//! The optimistic path for a JSON array: cut at `},{` boundaries into one
//! piece per worker, each piece deserialized straight into records by one
//! typed call; any failure sends the body down the careful path.

use std::ops::Range;

use rayon::prelude::*;

use super::*;

/// Where to cut a JSON array of objects into `parts` pieces: the commas of
/// `}` `,` `{` boundaries near equal fractions of the body. A cut that falls
/// inside a string is caught later: the piece before it then ends inside an
/// unterminated string and fails to parse.
pub(super) fn cut_points(body: &[u8], parts: usize) -> Vec<usize> {
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
pub(super) fn cut_at(text: &[u8], comma: usize) -> Option<bool> {
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
pub(super) struct Piece {
    range: Range<usize>,
    open: bool,
    close: bool,
}

pub(super) fn piece_specs(len: usize, cuts: &[usize]) -> Vec<Piece> {
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

/// Parses one standalone JSON array of sample objects with one typed
/// deserializer call (the SIMD parser); `None` if anything in it is bad.
pub(super) fn parse_piece_serde<'a>(
    text: &'a [u8],
    default_stream: Option<&'a str>,
) -> Option<PieceRecords<'a>> {
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
    Some((Samples::Records(records), errors, elements))
}

/// The optimistic path for a JSON array: each piece read in place by the
/// flat scanner, or else copied into its buffer (with the brackets that
/// make it an array) and parsed by one typed deserializer call; pieces in
/// parallel. `None` when any piece fails to parse; the caller then takes the
/// per-record path, which reports each bad record on its own.
pub(super) fn parse_pieces<'a>(
    text: &'a [u8],
    pieces: &[Piece],
    buffers: &'a mut [Vec<u8>],
    default_stream: Option<&'a str>,
    pool: &rayon::ThreadPool,
) -> Option<Parsed<'a>> {
    let parse = |(buffer, piece): (&'a mut Vec<u8>, &Piece)| {
        let own = &text[piece.range.clone()];
        let brackets = super::flat::Brackets {
            open: !piece.open,
            close: !piece.close,
        };
        if let Some(read) = super::flat::scan_piece(own, brackets, default_stream) {
            return Some(read);
        }
        brackets.standalone(&[own], buffer);
        let buffer: &'a Vec<u8> = buffer;
        parse_piece_serde(buffer, default_stream)
    };
    let parts: Vec<PieceRecords<'a>> = if pieces.len() == 1 {
        vec![parse((&mut buffers[0], &pieces[0]))?]
    } else {
        pool.install(|| {
            buffers
                .par_iter_mut()
                .zip(pieces.par_iter())
                .map(parse)
                .collect::<Option<Vec<_>>>()
        })?
    };
    // Each piece counted its elements from 0: shift to body positions.
    let mut parsed = Parsed::default();
    let mut offset = 0;
    for (part, errors, elements) in parts {
        parsed.more.push((offset, part.into_part()));
        parsed.errors.extend(errors.into_iter().map(|mut e| {
            e.index += offset;
            e
        }));
        offset += elements;
    }
    Some(parsed)
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
