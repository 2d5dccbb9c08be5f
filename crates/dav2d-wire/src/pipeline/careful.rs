//! The careful path: a structural scan feeds chunks of elements to the
//! pool as it goes, each element parsed alone so each bad record is
//! reported alone, and a broken body is refused whole.

use std::ops::Range;

use super::*;

/// Elements handed to a parser task at a time while the scan goes on.
pub(super) const SCAN_CHUNK: usize = 1024;

/// Scans the array on this thread and parses each chunk of elements on the
/// pool as soon as it is found, so scanning and parsing overlap.
pub(super) fn scan_and_parse<'a>(
    body: &'a [u8],
    max_depth: usize,
    default_stream: Option<&'a str>,
    pool: &rayon::ThreadPool,
) -> Result<Parsed<'a>, BodyError> {
    let parts: std::sync::Mutex<Vec<(usize, Parsed<'a>)>> = std::sync::Mutex::new(Vec::new());
    let parse_chunk = |number: usize, chunk: Vec<(usize, Range<usize>)>| {
        let parsed = parse_ranges(body, &chunk, default_stream, None, super::Offsets::FromBody);
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
