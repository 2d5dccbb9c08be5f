//! The flat path: a piece (a standalone JSON array) whose every element is
//! a sample object of the common shape (`stream`, `key`, `value`, `ts`; the
//! strings without escapes, the value a number, the timestamp an integer)
//! read by a scanner straight from the bytes, without serde and without the
//! copy the SIMD parser makes of its input.
//!
//! Anything else (an escape, another field, a string or bool value, a
//! timestamp in seconds or RFC 3339, `-0`, bad JSON) returns `None`, and the
//! piece takes the typed serde path, which decides and reports exactly as
//! before. Each scanned object becomes the `WireObject` the serde path
//! builds and goes through the same `into_records`, so the checks on a
//! sample are the same code either way.

use std::borrow::Cow;

use dav2d_core::Value;

use super::PieceRecords;
use crate::dto::{WireObject, WireStr, WireTs, WireValue};

/// Reads `text`, a JSON array of flat sample objects; `None` when anything
/// in it is outside the flat shape (the serde path then reads it).
pub(super) fn scan_piece<'a>(
    text: &'a [u8],
    default_stream: Option<&'a str>,
) -> Option<PieceRecords<'a>> {
    let mut scan = Scan { text, at: 0 };
    scan.eat(b'[')?;
    let mut records = Vec::with_capacity(text.len() / 64);
    let mut errors = Vec::new();
    let mut index = 0;
    loop {
        let object = scan.object()?;
        if let Err(error) = object.into_records(index, default_stream, &mut records) {
            errors.push(error);
        }
        index += 1;
        match scan.next()? {
            b',' => {}
            b']' => {
                scan.skip_space();
                return (scan.at == text.len()).then_some((records, errors, index));
            }
            _ => return None,
        }
    }
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
    /// An integer of at most 18 digits.
    Integer(i64),
    /// A decimal fraction read exactly (see [`exact_decimal`]).
    Float(f64),
    /// Any other number's text, and whether it is an integer.
    Text(&'a str, bool),
}

/// Powers of ten that an f64 holds exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits.fraction` (no sign, no exponent) as the correctly rounded f64,
/// when its digits make an integer below 2^53 and the fraction has at most
/// 22 digits: both are then exact f64s, and one IEEE division rounds
/// correctly (Clinger's fast path). `None` otherwise (the caller parses it).
fn exact_decimal(number: &[u8]) -> Option<f64> {
    let mut mantissa: u64 = 0;
    let mut fraction_digits = 0usize;
    let mut in_fraction = false;
    for &byte in number {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa
                    .checked_mul(10)?
                    .checked_add(u64::from(byte - b'0'))?;
                fraction_digits += usize::from(in_fraction);
            }
            b'.' => in_fraction = true,
            _ => return None,
        }
    }
    if mantissa >= 1 << 53 {
        return None;
    }
    Some(mantissa as f64 / EXACT_POWERS.get(fraction_digits)?)
}

/// A cursor over the bytes of a piece.
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
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

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let mut i = start;
        loop {
            match *self.text.get(i)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => i += 1,
            }
        }
        let text = std::str::from_utf8(&self.text[start..i]).ok()?;
        self.at = i + 1;
        Some(text)
    }

    /// A field name of the flat shape, with its closing quote and colon.
    fn name(&mut self) -> Option<Field> {
        self.eat(b'"')?;
        let rest = &self.text[self.at..];
        let (field, length) = if rest.starts_with(b"key\"") {
            (Field::Key, 4)
        } else if rest.starts_with(b"value\"") {
            (Field::Value, 6)
        } else if rest.starts_with(b"ts\"") {
            (Field::Ts, 3)
        } else if rest.starts_with(b"stream\"") {
            (Field::Stream, 7)
        } else {
            return None;
        };
        self.at += length;
        self.eat(b':')?;
        self.skip_space();
        Some(field)
    }

    /// A JSON number (`None`: not one, or a negative zero, which the serde
    /// path reads).
    fn number(&mut self) -> Option<Number<'a>> {
        let digits = |text: &[u8], mut i: usize| {
            while let Some(b'0'..=b'9') = text.get(i) {
                i += 1;
            }
            i
        };
        let text = self.text;
        let start = self.at;
        let negative = text.get(start) == Some(&b'-');
        let mut i = start + usize::from(negative);
        let first = i;
        match text.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(text, i + 1),
            _ => return None,
        }
        let whole = i;
        if text.get(i) == Some(&b'.') {
            let end = digits(text, i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if let Some(b'e' | b'E') = text.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = text.get(i) {
                i += 1;
            }
            let end = digits(text, i);
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
        if i == whole && whole - first <= 18 {
            // At most 18 digits: no overflow.
            let magnitude = text[first..whole]
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            return Some(Number::Integer(if negative {
                -magnitude
            } else {
                magnitude
            }));
        }
        if let Some(value) = exact_decimal(&text[first..i]) {
            return Some(Number::Float(if negative { -value } else { value }));
        }
        let written = std::str::from_utf8(&text[start..i]).ok()?;
        Some(Number::Text(written, i == whole))
    }

    /// A sample's value: a number, as the serde path makes it (integers
    /// through i64 or u64, others parsed as f64 and required finite).
    fn value(&mut self) -> Option<Value> {
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
        Some(Value::Float(value))
    }

    /// One sample object of the flat shape, each field at most once.
    fn object(&mut self) -> Option<WireObject<'a>> {
        self.eat(b'{')?;
        let mut object = WireObject::default();
        self.skip_space();
        if self.text.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(object);
        }
        loop {
            match self.name()? {
                Field::Stream if object.stream.is_none() => {
                    object.stream = Some(WireStr(Cow::Borrowed(self.string()?)));
                }
                Field::Key if object.key.is_none() => {
                    object.key = Some(WireStr(Cow::Borrowed(self.string()?)));
                }
                Field::Value if object.value.is_none() => {
                    object.value = Some(WireValue(self.value()?));
                }
                Field::Ts if object.ts.is_none() => {
                    let ts = match self.number()? {
                        Number::Integer(ts) => ts,
                        Number::Text(written, true) => written.parse::<i64>().ok()?,
                        Number::Float(_) | Number::Text(_, false) => return None,
                    };
                    object.ts = Some(WireTs::One(ts));
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

    /// What the serde path makes of `text`, beside what the scanner does.
    fn both(text: &str, stream: Option<&str>) -> (Option<String>, Option<String>) {
        let show = |p: Option<PieceRecords<'_>>| p.map(|(r, e, n)| format!("{r:?} {e:?} {n}"));
        (
            show(scan_piece(text.as_bytes(), stream)),
            show(super::super::parse_piece_serde(text.as_bytes(), stream)),
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
            assert!(scan_piece(text.as_bytes(), Some("s")).is_none(), "{text}");
        }
    }

    /// A small deterministic generator (xorshift), for the differential test.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn one_in(&mut self, n: u64) -> bool {
            self.next().is_multiple_of(n)
        }
        fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
            from[(self.next() % from.len() as u64) as usize]
        }
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
            }
        }
        assert!(
            scanned * 2 > total,
            "the scanner read only {scanned} of {total}"
        );
    }
}
