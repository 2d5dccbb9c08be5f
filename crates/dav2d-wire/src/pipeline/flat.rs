//! The flat path: a piece of a JSON array whose every element is a sample
//! object of the common shape (`stream`, `key`, `value`, `ts`; the strings
//! without escapes, the value a number, the timestamp an integer) read by a
//! scanner straight from the body's bytes, in place: without serde, without
//! a copy, and into columns whose (stream, key) pairs it interns as it goes
//! (on the parse worker, so the engine looks each pair up once).
//!
//! Anything else (an escape, another field, a string or bool value, a
//! timestamp in seconds or RFC 3339, `-0`, bad JSON) returns `None`, and the
//! piece takes the typed serde path, which decides and reports exactly as
//! before. A scanned sample's stream and missing value are checked by the
//! same functions `WireObject::into_records` calls, so the checks and their
//! words are one code either way.

use std::borrow::Cow;

use super::PieceRecords;
use super::parsed::{ColumnsBuilder, Samples};
use super::words::{Digits, exact_decimal, plain_string_bytes, same_bytes};
use crate::dto::{missing_value, sample_stream};

/// Which of an array's brackets a piece holds itself: the first piece of a
/// cut array holds its `[`, the last its `]`, a standalone array both.
#[derive(Clone, Copy, Debug)]
pub(super) struct Brackets {
    pub(super) open: bool,
    pub(super) close: bool,
}

impl Brackets {
    /// Copies `parts`, a piece's text, into `into` with the brackets it
    /// lacks, so it stands alone as an array (for the typed parser).
    pub(super) fn standalone(self, parts: &[&[u8]], into: &mut Vec<u8>) {
        into.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + 2);
        if !self.open {
            into.push(b'[');
        }
        for part in parts {
            into.extend_from_slice(part);
        }
        if !self.close {
            into.push(b']');
        }
    }
}

#[cfg(test)]
impl Brackets {
    /// A standalone array.
    pub(super) const BOTH: Brackets = Brackets {
        open: true,
        close: true,
    };
}

/// Reads `text`, a piece of a JSON array of flat sample objects holding the
/// brackets `brackets` says; `None` when anything in it is outside the flat
/// shape (the serde path then reads it).
pub(super) fn scan_piece<'a>(
    text: &'a [u8],
    brackets: Brackets,
    default_stream: Option<&'a str>,
) -> Option<PieceRecords<'a>> {
    scan_chunks(&[text], brackets, default_stream)
}

/// [`scan_piece`] over a piece that arrived in `chunks`, read where they
/// lie: only an element that straddles two chunks is copied (its strings
/// then owned by the columns), so a body needs no contiguous copy.
pub(super) fn scan_chunks<'a>(
    chunks: &[&'a [u8]],
    brackets: Brackets,
    default_stream: Option<&'a str>,
) -> Option<PieceRecords<'a>> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut out = Out {
        columns: ColumnsBuilder::with_capacity(total / 64),
        errors: Vec::new(),
        index: 0,
        default_stream,
        stream_seen: Vec::new(),
    };
    let mut cursor = Cursor::new(chunks);
    if brackets.open && cursor.next()? != b'[' {
        return None;
    }
    loop {
        cursor.skip_space()?;
        let start = cursor.scan.at;
        match cursor.scan.object() {
            Some(object) => out.take(object, Cow::Borrowed)?,
            None => {
                // Outside the flat shape, unless the chunk ends inside it.
                let carried = cursor.carry(start)?;
                let object = Scan::over(&carried).object()?;
                out.take(object, |s| Cow::Owned(s.to_owned()))?;
            }
        }
        match cursor.next() {
            None if !brackets.close => return Some(out.finish()),
            Some(b',') => {}
            Some(b']') if brackets.close => {
                return cursor.next().is_none().then(|| out.finish());
            }
            _ => return None,
        }
    }
}

/// What a piece's scan gathers.
struct Out<'a> {
    columns: ColumnsBuilder<'a>,
    errors: Vec<crate::dto::RecordError>,
    index: usize,
    default_stream: Option<&'a str>,
    /// The last stream a sample named that was found to be UTF-8 (with no
    /// stream given by the door): a body names the same one again and
    /// again, so it is checked once rather than per sample.
    stream_seen: Vec<u8>,
}

impl<'a> Out<'a> {
    /// Takes the next element; `own` makes a string the columns keep out of
    /// one the object borrows (only for a pair seen for the first time).
    /// `None` when a string is not UTF-8 (the serde path then reports it).
    fn take<'s>(
        &mut self,
        object: FlatObject<'s>,
        own: impl Fn(&'s str) -> Cow<'a, str>,
    ) -> Option<()>
    where
        'a: 's,
    {
        let index = self.index;
        self.index += 1;
        let text = |bytes: &'s [u8]| std::str::from_utf8(bytes).ok();
        let door = self.default_stream;
        // The stream as bytes, and whether it is the door's.
        let stream = match (object.stream, door) {
            (Some(stream), Some(named)) if stream == named.as_bytes() => Ok((stream, true)),
            (None, Some(named)) => Ok((named.as_bytes(), true)),
            (Some(stream), None) if same_bytes(stream, &self.stream_seen) => Ok((stream, false)),
            (Some(stream), _) => {
                // Checked here: it is kept or named in an error.
                let stream = text(stream)?;
                if door.is_none() {
                    self.stream_seen.clear();
                    self.stream_seen.extend_from_slice(stream.as_bytes());
                }
                sample_stream(Some(Cow::Borrowed(stream)), door, index)
                    .map(|_| (stream.as_bytes(), false))
            }
            (None, None) => sample_stream(None, None, index).map(|_| (&[][..], false)),
        };
        let key = object.key.unwrap_or(b"");
        let (stream, from_door) = match stream {
            Ok(stream) => stream,
            Err(error) => {
                text(key)?;
                self.errors.push(error);
                return Some(());
            }
        };
        let Some(value) = object.value else {
            text(key)?;
            self.errors.push(missing_value(index));
            return Some(());
        };
        self.columns.push(
            index,
            stream,
            key,
            || {
                let stream = match door {
                    Some(door) if from_door => Cow::Borrowed(door),
                    _ => own(text(stream)?),
                };
                Some((stream, own(text(key)?)))
            },
            value,
            object.ts,
        )
    }

    fn finish(self) -> PieceRecords<'a> {
        (
            Samples::Columns(self.columns.finish()),
            self.errors,
            self.index,
        )
    }
}

/// A position in a piece's chunks.
struct Cursor<'c, 'a> {
    chunks: &'c [&'a [u8]],
    /// The chunk `scan` reads.
    chunk: usize,
    scan: Scan<'a>,
}

impl<'c, 'a> Cursor<'c, 'a> {
    fn new(chunks: &'c [&'a [u8]]) -> Self {
        Self {
            chunks,
            chunk: 0,
            scan: Scan::over(chunks.first().copied().unwrap_or(&[])),
        }
    }

    /// Moves to the next chunk; `None` at the end of the piece.
    fn advance(&mut self) -> Option<()> {
        let next = *self.chunks.get(self.chunk + 1)?;
        self.scan = Scan::over(next);
        self.chunk += 1;
        Some(())
    }

    /// Skips whitespace across chunks; `None` when the piece ends first.
    fn skip_space(&mut self) -> Option<()> {
        loop {
            self.scan.skip_space();
            if self.scan.at < self.scan.text.len() {
                return Some(());
            }
            self.advance()?;
        }
    }

    /// The next byte that is not whitespace, across chunks, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_space()?;
        self.scan.next()
    }

    /// The element starting at `start` in the current chunk, when it runs
    /// on into the next chunks: its bytes up to its closing brace, copied,
    /// with the cursor moved past it. `None` when it ends in this chunk (it
    /// is then outside the flat shape) or never ends. A flat element nests
    /// nothing and its strings hold no escape, so it ends at the first `}`
    /// outside quotes.
    fn carry(&mut self, start: usize) -> Option<Vec<u8>> {
        let mut quoted = false;
        let mut end_in = |text: &[u8]| -> Result<Option<usize>, ()> {
            for (i, &byte) in text.iter().enumerate() {
                match byte {
                    b'"' => quoted = !quoted,
                    b'\\' => return Err(()),
                    b'}' if !quoted => return Ok(Some(i)),
                    _ => {}
                }
            }
            Ok(None)
        };
        let first = &self.scan.text[start..];
        if end_in(first).ok()?.is_some() {
            return None;
        }
        let mut carried = first.to_vec();
        loop {
            self.advance()?;
            let text = self.scan.text;
            if let Some(end) = end_in(text).ok()? {
                carried.extend_from_slice(&text[..=end]);
                self.scan.at = end + 1;
                return Some(carried);
            }
            carried.extend_from_slice(text);
        }
    }
}

/// One sample object of the flat shape, as read.
#[derive(Default)]
struct FlatObject<'a> {
    stream: Option<&'a [u8]>,
    key: Option<&'a [u8]>,
    value: Option<f64>,
    ts: Option<i64>,
}

/// The fields of the flat shape.
#[derive(Clone, Copy)]
enum Field {
    Stream,
    Key,
    Value,
    Ts,
}

/// A number as read.
enum Number<'a> {
    /// An integer that fits an i64.
    Integer(i64),
    /// A decimal fraction read exactly (see [`exact_decimal`]).
    Float(f64),
    /// Any other number's text, and whether it is an integer.
    Text(&'a str, bool),
}

/// A cursor over the bytes of a piece. Strings are returned as bytes: a
/// sample's stream and key are checked to be UTF-8 once per distinct pair
/// (when the columns first keep it), any other string where it is read.
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn over(text: &'a [u8]) -> Self {
        Self { text, at: 0 }
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not JSON whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_space();
        let byte = *self.text.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A string without escapes or control characters, borrowed as bytes.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let mut i = start;
        // Eight bytes at a time while none of them ends the string or is
        // refused (a quote, a backslash, a control character).
        while let Some(word) = self
            .text
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            if plain_string_bytes(u64::from_le_bytes(word)) {
                i += 8;
            } else {
                break;
            }
        }
        loop {
            match *self.text.get(i)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => i += 1,
            }
        }
        self.at = i + 1;
        Some(&self.text[start..i])
    }

    /// A field name of the flat shape, with its closing quote and colon.
    fn name(&mut self) -> Option<Field> {
        self.eat(b'"')?;
        let rest = &self.text[self.at..];
        // One branch on the first letter, then the rest of the name and its
        // closing quote compared at once (a fixed length each: no `memcmp`).
        let (field, name_len) = match rest.first()? {
            b's' if rest.starts_with(b"stream\"") => (Field::Stream, 7),
            b'k' if rest.starts_with(b"key\"") => (Field::Key, 4),
            b'v' if rest.starts_with(b"value\"") => (Field::Value, 6),
            b't' if rest.starts_with(b"ts\"") => (Field::Ts, 3),
            _ => return None,
        };
        self.at += name_len;
        // The colon, usually right after the name.
        if self.text.get(self.at) == Some(&b':') {
            self.at += 1;
        } else {
            self.eat(b':')?;
        }
        self.skip_space();
        Some(field)
    }

    /// A JSON number (`None`: not one, or a negative zero, which the serde
    /// path reads).
    fn number(&mut self) -> Option<Number<'a>> {
        let text = self.text;
        let start = self.at;
        let negative = text.get(start) == Some(&b'-');
        let mut i = start + usize::from(negative);
        let first = i;
        // The digits as one integer, while there are at most 19 of them.
        let mut digits = Digits::default();
        match text.get(i) {
            Some(b'0') => {
                i += 1;
                digits.count = 1;
            }
            Some(b'1'..=b'9') => i = digits.read(text, i),
            _ => return None,
        }
        let whole = i;
        let mut fraction = 0;
        if text.get(i) == Some(&b'.') {
            let end = digits.read(text, i + 1);
            if end == i + 1 {
                return None;
            }
            fraction = end - (i + 1);
            i = end;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = text.get(i) {
            exponent = true;
            i += 1;
            if let Some(b'+' | b'-') = text.get(i) {
                i += 1;
            }
            let end = Digits::default().read(text, i);
            if end == i {
                return None;
            }
            i = end;
        }
        self.at = i;
        // `-0` (and any negative zero) is left to the serde path.
        if negative
            && text[first..i]
                .iter()
                .all(|b| matches!(b, b'0' | b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        if !exponent && digits.count <= 19 {
            let mantissa = digits.value;
            if i == whole {
                // 19 digits fit a u64; the i64 range is checked.
                let integer = if negative {
                    0i64.checked_sub_unsigned(mantissa)
                } else {
                    i64::try_from(mantissa).ok()
                };
                if let Some(integer) = integer {
                    return Some(Number::Integer(integer));
                }
            } else if let Some(value) = exact_decimal(mantissa, fraction) {
                return Some(Number::Float(if negative { -value } else { value }));
            }
        }
        let written = std::str::from_utf8(&text[start..i]).ok()?;
        Some(Number::Text(written, i == whole))
    }

    /// A sample's value: a number, as the serde path makes it (integers
    /// through i64 or u64, others parsed as f64 and required finite).
    fn value(&mut self) -> Option<f64> {
        let value = match self.number()? {
            Number::Integer(v) => v as f64,
            Number::Float(v) => v,
            Number::Text(written, true) => match written.parse::<i64>() {
                Ok(v) => v as f64,
                Err(_) => written.parse::<u64>().ok()? as f64,
            },
            Number::Text(written, false) => {
                written.parse::<f64>().ok().filter(|v| v.is_finite())?
            }
        };
        Some(value)
    }

    /// One sample object of the flat shape, each field at most once.
    fn object(&mut self) -> Option<FlatObject<'a>> {
        self.eat(b'{')?;
        let mut object = FlatObject::default();
        self.skip_space();
        if self.text.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(object);
        }
        loop {
            match self.name()? {
                Field::Stream if object.stream.is_none() => object.stream = Some(self.string()?),
                Field::Key if object.key.is_none() => object.key = Some(self.string()?),
                Field::Value if object.value.is_none() => object.value = Some(self.value()?),
                Field::Ts if object.ts.is_none() => {
                    object.ts = Some(match self.number()? {
                        Number::Integer(ts) => ts,
                        Number::Text(written, true) => written.parse::<i64>().ok()?,
                        Number::Float(_) | Number::Text(_, false) => return None,
                    });
                }
                _ => return None,
            }
            match self.next()? {
                b',' => {}
                b'}' => return Some(object),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::words::Random;

    /// A piece's samples, errors and element count as written.
    fn show(piece: Option<PieceRecords<'_>>) -> Option<String> {
        piece.map(|(samples, e, n)| {
            let parsed = super::super::Parsed {
                more: vec![(0, samples.into_part())],
                ..Default::default()
            };
            let samples: Vec<_> = parsed.samples().collect();
            format!("{samples:?} {e:?} {n}")
        })
    }

    /// What the serde path makes of `text`, beside what the scanner does.
    fn both(text: &str, stream: Option<&str>) -> (Option<String>, Option<String>) {
        (
            show(scan_piece(text.as_bytes(), Brackets::BOTH, stream)),
            show(super::super::fast::parse_piece_serde(
                text.as_bytes(),
                stream,
            )),
        )
    }

    #[test]
    fn the_common_shape_is_scanned_as_serde_reads_it() {
        let text = r#"[{"stream":"temp","key":"dev-0000","value":24.63,"ts":1700000000000000000},
            { "key" : "d\u00e9v" , "value" : -3 , "stream": "temp" },
            {"key":"big","value":18446744073709551615,"ts":-5},
            {"key":"exp","value":1.5e-7},{"value":7},{}]"#;
        let (scanned, serde) = both(text, Some("temp"));
        assert!(scanned.is_none(), "an escape goes to serde");
        let text = text.replace(r"d\u00e9v", "dév");
        let (scanned, serde_read) = both(&text, Some("temp"));
        assert!(scanned.is_some(), "the flat shape is scanned");
        assert_eq!(scanned, serde_read);
        assert!(serde.is_some());
        // A stream other than the door's is the same per-record error.
        let (scanned, serde) = both(r#"[{"stream":"other","key":"k","value":1}]"#, Some("temp"));
        assert!(scanned.is_some());
        assert_eq!(scanned, serde);
    }

    #[test]
    fn anything_outside_the_flat_shape_goes_to_serde() {
        for text in [
            r#"[{"key":"k","value":"text"}]"#,
            r#"[{"key":"k","value":true}]"#,
            r#"[{"key":"k","value":1,"ts":1.5}]"#,
            r#"[{"key":"k","value":1,"ts":"2026-01-01T00:00:00Z"}]"#,
            r#"[{"key":"k","value":-0}]"#,
            r#"[{"key":"k","value":1e999}]"#,
            r#"[{"key":"k","key":"j","value":1}]"#,
            r#"[{"key":"k","values":[1]}]"#,
            r#"[{"key":"k","value":01}]"#,
            r#"[{"key":"k","value":1.}]"#,
            r#"[{"key":"k","value":1}] x"#,
            r#"[{"key":"k","value":1},]"#,
            r#"[]"#,
            "[{\"key\":\"a\tb\",\"value\":1}]",
        ] {
            assert!(
                scan_piece(text.as_bytes(), Brackets::BOTH, Some("s")).is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_goes_to_serde_wherever_it_stands() {
        for text in [
            &b"[{\"key\":\"k\xff\",\"value\":1}]"[..],
            b"[{\"key\":\"k\",\"value\":1},{\"key\":\"k\xff\"}]",
            b"[{\"stream\":\"s\xc3\",\"key\":\"k\",\"value\":1}]",
            b"[{\"stream\":\"other\",\"key\":\"\xe9\",\"value\":1}]",
        ] {
            assert!(scan_piece(text, Brackets::BOTH, Some("s")).is_none());
        }
        // With no stream from the door, a name seen valid is not checked
        // again, but any other bytes are, after it as before it.
        for text in [
            &b"[{\"stream\":\"s\",\"key\":\"k\",\"value\":1},{\"stream\":\"s\xff\",\"key\":\"k\",\"value\":2}]"[..],
            b"[{\"stream\":\"s\xc3\",\"key\":\"k\",\"value\":1},{\"stream\":\"s\",\"key\":\"k\",\"value\":2}]",
        ] {
            assert!(scan_piece(text, Brackets::BOTH, None).is_none());
        }
        let text = b"[{\"stream\":\"s\",\"key\":\"a\",\"value\":1},{\"stream\":\"t\",\"key\":\"a\",\"value\":2},{\"stream\":\"s\",\"key\":\"b\",\"value\":3}]";
        let (samples, errors, n) = scan_piece(text, Brackets::BOTH, None).unwrap();
        assert!(errors.is_empty());
        assert_eq!(n, 3);
        let Samples::Columns(columns) = samples else {
            panic!("read by the scanner")
        };
        let pairs: Vec<(&str, &str)> = columns.series.iter().map(|(s, k)| (&**s, &**k)).collect();
        assert_eq!(pairs, [("s", "a"), ("t", "a"), ("s", "b")]);
        // A character cut between two chunks is read whole.
        let text = "[{\"key\":\"d\u{e9}v\",\"value\":1},{\"key\":\"d\u{e9}v\",\"value\":2}]";
        let bytes = text.as_bytes();
        let cut = text.find('\u{e9}').unwrap() + 1;
        let (samples, errors, n) =
            scan_chunks(&[&bytes[..cut], &bytes[cut..]], Brackets::BOTH, Some("s")).unwrap();
        assert!(errors.is_empty());
        assert_eq!(n, 2);
        let Samples::Columns(columns) = samples else {
            panic!("read by the scanner")
        };
        assert_eq!(
            columns.series.len(),
            1,
            "one pair, owned once and borrowed once"
        );
        assert_eq!(columns.series[0].1, "d\u{e9}v");
    }

    #[test]
    fn wherever_the_scanner_reads_a_piece_it_agrees_with_serde() {
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        let numbers = [
            "0",
            "1",
            "-1",
            "24.63",
            "0.1",
            "1e3",
            "1E-3",
            "-2.5e+10",
            "123456789012345678",
            "9007199254740993",
            "18446744073709551616",
            "1.7976931348623157e308",
            "5e-324",
            "0.30000000000000004",
            "-0.0",
            "3.14159265358979323846264338327950288",
        ];
        let (mut scanned, mut total) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::from("[");
            for element in 0..1 + random.next() % 4 {
                if element > 0 {
                    text.push_str(random.pick(&[",", " , ", ",\n"]));
                }
                let mut fields = vec![];
                if !random.one_in(4) {
                    fields.push(format!(
                        "\"key\":\"{}\"",
                        random.pick(&["k", "dev-17", "é", ""])
                    ));
                }
                if !random.one_in(5) {
                    let number = if random.one_in(2) {
                        random.pick(&numbers).to_string()
                    } else {
                        // Random digits, fraction and exponent.
                        let r = random.next();
                        let exponent = match random.next() % 2 {
                            0 => String::new(),
                            _ => format!("e{}", (random.next() % 600) as i64 - 300),
                        };
                        let fraction = random.next() % 10u64.pow(1 + (r % 17) as u32);
                        format!(
                            "{}{}.{:0width$}{exponent}",
                            if r.is_multiple_of(3) { "-" } else { "" },
                            r % 100_000,
                            fraction,
                            width = (random.next() % 20) as usize,
                        )
                    };
                    fields.push(format!("\"value\":{number}"));
                }
                if random.one_in(3) {
                    let ts = random.pick(&[
                        "1700000000000000000",
                        "-1",
                        "0",
                        "1.5",
                        "9223372036854775808",
                    ]);
                    fields.push(format!("\"ts\":{ts}"));
                }
                if random.one_in(3) {
                    fields.push(format!("\"stream\":\"{}\"", random.pick(&["s", "t"])));
                }
                let n = fields.len();
                if n > 1 {
                    let at = (random.next() % n as u64) as usize;
                    fields.swap(0, at);
                }
                text.push('{');
                text.push_str(&fields.join(random.pick(&[",", " ,\t"])));
                text.push('}');
            }
            text.push(']');
            let stream = if random.one_in(2) { Some("s") } else { None };
            let (flat, serde) = both(&text, stream);
            total += 1;
            if flat.is_some() {
                scanned += 1;
                assert_eq!(flat, serde, "{text}");
                // The same text cut into chunks anywhere (inside a number,
                // a name or a character too) reads the same.
                let bytes = text.as_bytes();
                let mut cuts: Vec<usize> = (0..1 + random.next() % 4)
                    .map(|_| (random.next() % bytes.len() as u64) as usize)
                    .collect();
                cuts.sort_unstable();
                let mut chunks = Vec::new();
                let mut from = 0;
                for cut in cuts.into_iter().chain([bytes.len()]) {
                    chunks.push(&bytes[from..cut]);
                    from = cut;
                }
                let chunked = show(scan_chunks(&chunks, Brackets::BOTH, stream));
                assert_eq!(chunked, flat, "{text} in {chunks:?}");
            }
        }
        assert!(
            scanned * 2 > total,
            "the scanner read only {scanned} of {total}"
        );
    }
}
