//! Splitting a body into records before parsing, so records can be parsed
//! in parallel and a bad record is rejected alone.
//!
//! The array scan is structural only: it follows strings, escapes and
//! brackets to find where each top-level element starts and ends, checks the
//! nesting depth and that the body is complete, and leaves everything else
//! (numbers, literals, UTF-8) to the JSON parser of each element.

use std::fmt;
use std::ops::Range;

use dav2d_core::RejectReason;

/// Why a whole body was refused before any record was parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError {
    /// Byte offset where the problem was found.
    pub offset: usize,
    /// What was found and what was expected.
    pub message: String,
    /// A short label for metrics.
    pub reason: RejectReason,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

fn describe(byte: u8) -> String {
    match byte {
        b' '..=b'~' => format!("'{}'", byte as char),
        _ => format!("byte 0x{byte:02x}"),
    }
}

/// The first non-whitespace byte and its offset.
pub fn first_significant(body: &[u8]) -> Option<(usize, u8)> {
    body.iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| (i, body[i]))
}

/// Refuses a body that cannot be JSON from its first byte, so a client
/// sending megabytes of something else is answered at once.
pub fn check_json_start(body: &[u8]) -> Result<(usize, u8), BodyError> {
    match first_significant(body) {
        Some((offset, byte @ (b'[' | b'{'))) => Ok((offset, byte)),
        Some((offset, byte)) => Err(BodyError {
            offset,
            message: format!(
                "found {} where a JSON object '{{' or array '[' of samples was expected",
                describe(byte)
            ),
            reason: RejectReason::NotJson,
        }),
        None => Err(BodyError {
            offset: body.len(),
            message: "the body is empty; send a JSON sample, an array of samples or NDJSON"
                .to_string(),
            reason: RejectReason::EmptyBody,
        }),
    }
}

/// The ranges of the top-level elements of the JSON array in `body`.
pub fn split_array(body: &[u8], max_depth: usize) -> Result<Vec<Range<usize>>, BodyError> {
    let mut elements = Vec::new();
    scan_array(body, max_depth, |range| elements.push(range))?;
    Ok(elements)
}

/// Calls `element` with the range of each top-level element of the JSON
/// array in `body`, in order, as the scan finds them (so parsing can start
/// before the scan ends). An error means the body as a whole is refused.
pub fn scan_array(
    body: &[u8],
    max_depth: usize,
    mut element: impl FnMut(Range<usize>),
) -> Result<(), BodyError> {
    let (open, _) = check_json_start(body)?;
    if body[open] != b'[' {
        return Err(BodyError {
            offset: open,
            message: "expected '[' to start an array".to_string(),
            reason: RejectReason::InvalidJson,
        });
    }
    let mut count = 0usize;
    let mut depth = 1usize;
    let mut start: Option<usize> = None;
    let mut i = open + 1;
    let len = body.len();
    while i < len {
        let byte = body[i];
        match byte {
            b'"' => {
                start.get_or_insert(i);
                // Jump to the closing quote, skipping escaped characters.
                let mut j = i + 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[j..]) {
                        Some(k) if body[j + k] == b'\\' => j += k + 2,
                        Some(k) => {
                            j += k;
                            break;
                        }
                        None => {
                            return Err(unterminated(i));
                        }
                    }
                    if j >= len {
                        return Err(unterminated(i));
                    }
                }
                i = j;
            }
            b'[' | b'{' => {
                start.get_or_insert(i);
                depth += 1;
                if depth > max_depth {
                    return Err(BodyError {
                        offset: i,
                        message: format!(
                            "nesting deeper than {max_depth} levels; samples are flat"
                        ),
                        reason: RejectReason::TooDeep,
                    });
                }
            }
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    if byte != b']' {
                        return Err(BodyError {
                            offset: i,
                            message: "found '}' where ']' closes the array".to_string(),
                            reason: RejectReason::InvalidJson,
                        });
                    }
                    if let Some(s) = start.take() {
                        element(s..trim_end(body, s, i));
                    } else if count > 0 {
                        return Err(BodyError {
                            offset: i,
                            message: "found ']' after ','; expected another element".to_string(),
                            reason: RejectReason::InvalidJson,
                        });
                    }
                    if let Some((offset, byte)) = first_significant(&body[i + 1..]) {
                        return Err(BodyError {
                            offset: i + 1 + offset,
                            message: format!("found {} after the end of the array", describe(byte)),
                            reason: RejectReason::InvalidJson,
                        });
                    }
                    return Ok(());
                }
            }
            b',' if depth == 1 => match start.take() {
                Some(s) => {
                    element(s..trim_end(body, s, i));
                    count += 1;
                }
                None => {
                    return Err(BodyError {
                        offset: i,
                        message: "found ',' where an element was expected".to_string(),
                        reason: RejectReason::InvalidJson,
                    });
                }
            },
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                start.get_or_insert(i);
            }
        }
        i += 1;
    }
    Err(BodyError {
        offset: len,
        message: format!(
            "the body ends inside the array ({depth} unclosed brackets); truncated JSON?"
        ),
        reason: RejectReason::Truncated,
    })
}

fn unterminated(offset: usize) -> BodyError {
    BodyError {
        offset,
        message: "unterminated string; the body ends inside it (truncated JSON?)".to_string(),
        reason: RejectReason::Truncated,
    }
}

fn trim_end(body: &[u8], start: usize, end: usize) -> usize {
    let mut end = end;
    while end > start && body[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

/// The non-blank lines of an NDJSON body, with their line numbers (0-based).
pub fn split_lines(body: &[u8]) -> Vec<(usize, Range<usize>)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for (number, end) in ends.enumerate() {
        if start > body.len() {
            break;
        }
        let line = &body[start..end];
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            lines.push((number, start..end));
        }
        start = end + 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<Vec<&str>, &str>) {
        let got = split_array(body.as_bytes(), 8)
            .map(|ranges| ranges.into_iter().map(|r| &body[r]).collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(String::from), "body: {body}");
    }

    #[test]
    fn arrays_split_into_their_elements() {
        check("[]", Ok(vec![]));
        check(
            " [ 1 , {\"a\": [1, 2]} ,\"x,]\" ] ",
            Ok(vec!["1", "{\"a\": [1, 2]}", "\"x,]\""]),
        );
        check(
            r#"[{"s": "a\"b"}, {"s": "\\"}]"#,
            Ok(vec![r#"{"s": "a\"b"}"#, r#"{"s": "\\"}"#]),
        );
    }

    #[test]
    fn broken_arrays_say_where_and_what() {
        check(
            "xxxx",
            Err(
                "at byte 0: found 'x' where a JSON object '{' or array '[' of samples was expected",
            ),
        );
        check(
            "[1, 2",
            Err("at byte 5: the body ends inside the array (1 unclosed brackets); truncated JSON?"),
        );
        check(
            "[\"abc",
            Err("at byte 1: unterminated string; the body ends inside it (truncated JSON?)"),
        );
        check(
            "[1,,2]",
            Err("at byte 3: found ',' where an element was expected"),
        );
        check(
            "[1] x",
            Err("at byte 4: found 'x' after the end of the array"),
        );
        check(
            "[[[[[[[[[1]]]]]]]]]",
            Err("at byte 8: nesting deeper than 8 levels; samples are flat"),
        );
        check(
            "",
            Err("at byte 0: the body is empty; send a JSON sample, an array of samples or NDJSON"),
        );
    }

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_numbers() {
        let body = "{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}";
        let lines: Vec<(usize, &str)> = split_lines(body.as_bytes())
            .into_iter()
            .map(|(n, r)| (n, &body[r]))
            .collect();
        assert_eq!(
            lines,
            vec![(0, "{\"a\":1}"), (3, "{\"b\":2}\r"), (4, "{\"c\":3}")]
        );
    }
}
