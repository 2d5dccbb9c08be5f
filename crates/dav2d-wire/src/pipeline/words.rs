//! Word-at-a-time tests and decimal digits for the flat scanner: eight
//! bytes judged or read at once with plain integer arithmetic (no SIMD
//! intrinsics, no `unsafe`), each checked against the byte-at-a-time answer.

/// Powers of ten that an f64 holds exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `mantissa / 10^fraction` as the correctly rounded f64, when the
/// mantissa is below 2^53 and the fraction has at most 22 digits: both are
/// then exact f64s, and one IEEE division rounds correctly (Clinger's fast
/// path). `None` otherwise (the caller parses the text).
pub(super) fn exact_decimal(mantissa: u64, fraction: usize) -> Option<f64> {
    if mantissa >= 1 << 53 {
        return None;
    }
    Some(mantissa as f64 / EXACT_POWERS.get(fraction)?)
}

/// A run of decimal digits read as one integer: its value while it has at
/// most 19 digits (which a u64 always holds), and how many digits it has.
#[derive(Default)]
pub(super) struct Digits {
    pub(super) value: u64,
    pub(super) count: usize,
}

impl Digits {
    /// Reads the digits from `i` on (eight at a time where it can), adding
    /// them to the ones already read; returns where they end.
    pub(super) fn read(&mut self, text: &[u8], mut i: usize) -> usize {
        while let Some(word) = text.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            let word = u64::from_le_bytes(word);
            if !eight_digits(word) {
                break;
            }
            if self.count + 8 <= 19 {
                self.value = self.value * 100_000_000 + eight_digits_value(word);
            }
            self.count += 8;
            i += 8;
        }
        while let Some(&digit @ b'0'..=b'9') = text.get(i) {
            if self.count < 19 {
                self.value = self.value * 10 + u64::from(digit - b'0');
            }
            self.count += 1;
            i += 1;
        }
        i
    }
}

/// Whether none of the eight bytes of `word` is a quote, a backslash or a
/// control character (below 0x20): the classic test for a zero byte, run on
/// the word xor each of the two characters, and on the word for "less than
/// 0x20". A byte of 0x80 and above (UTF-8) is plain.
pub(super) fn plain_string_bytes(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control == 0
}

/// Whether the eight bytes of `word` (little-endian) are all ASCII digits.
fn eight_digits(word: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // A digit's high nibble is 3, and adding 6 keeps it 3 (`:` and above
    // carry into it).
    (word & HIGH) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4)
        == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits (checked by [`eight_digits`]) read as a
/// little-endian word, the first digit in its lowest byte: pairs, then
/// quads, then the whole, each step one multiply.
fn eight_digits_value(word: u64) -> u64 {
    let digits = word - 0x3030_3030_3030_3030;
    // Each even byte: its digit times 10 plus the next one's.
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let low = pairs & 0x0000_00FF_0000_00FF;
    let high = (pairs >> 16) & 0x0000_00FF_0000_00FF;
    (low.wrapping_mul(100 + (1_000_000 << 32))).wrapping_add(high.wrapping_mul(1 + (10_000 << 32)))
        >> 32
}

/// `a == b` for the short texts a body repeats (keys, stream names): up to
/// 16 bytes as two overlapping words, so no `memcmp` is called; longer ones
/// compared as usual. A call per key lookup and per field name was 6 % of
/// parsing a 10 MB body.
#[inline]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        _ => a == b,
    }
}

/// The `N` bytes of `text` from `at` (zeros past its end, which the callers
/// never ask for: they compare texts of the same length).
#[inline]
fn word<const N: usize>(text: &[u8], at: usize) -> [u8; N] {
    text.get(at..at + N)
        .and_then(|w| <[u8; N]>::try_from(w).ok())
        .unwrap_or([0; N])
}

/// A small deterministic generator (xorshift) for the scanner's tests.
#[cfg(test)]
pub(super) struct Random(pub(super) u64);

#[cfg(test)]
impl Random {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    pub(super) fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_string_bytes_at_once_are_judged_as_one_at_a_time() {
        let mut random = Random(0x1234_5678_9ABC_DEF1);
        let pool = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x00, 0x7f, 0x80, 0xc3, 0xff, b'-', b'0',
        ];
        for _ in 0..200_000 {
            let bytes: [u8; 8] = std::array::from_fn(|_| {
                if random.one_in(4) {
                    pool[random.next() as usize % pool.len()]
                } else {
                    (random.next() % 256) as u8
                }
            });
            let one_at_a_time = bytes.iter().all(|&b| b != b'"' && b != b'\\' && b >= 0x20);
            assert_eq!(
                plain_string_bytes(u64::from_le_bytes(bytes)),
                one_at_a_time,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn short_texts_compare_as_slices_do() {
        let mut random = Random(0x0DDB_A11C_AFE0_F00D);
        for _ in 0..200_000 {
            let len = (random.next() % 24) as usize;
            let a: Vec<u8> = (0..len).map(|_| b'a' + (random.next() % 3) as u8).collect();
            let mut b = a.clone();
            match random.next() % 4 {
                0 => {}
                1 if len > 0 => {
                    let at = (random.next() % len as u64) as usize;
                    b[at] ^= 1 << (random.next() % 8);
                }
                2 => b.push(b'a'),
                _ => b = (0..len).map(|_| b'a' + (random.next() % 3) as u8).collect(),
            }
            assert_eq!(same_bytes(&a, &b), a == b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn eight_digits_at_once_read_as_one_at_a_time() {
        let mut random = Random(0x2545_F491_4F6C_DD1D);
        for _ in 0..100_000 {
            let n = random.next() % 100_000_000;
            let text = format!("{n:08}");
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert!(eight_digits(word), "{text}");
            assert_eq!(eight_digits_value(word), n, "{text}");
            let mut bytes = text.into_bytes();
            let at = (random.next() % 8) as usize;
            bytes[at] =
                [b'/', b':', b'.', b'e', b' ', 0xFF, b'-', b'9' + 7][random.next() as usize % 8];
            let word = u64::from_le_bytes(bytes[..].try_into().unwrap());
            assert!(!eight_digits(word), "{bytes:?}");
        }
        let mut digits = Digits::default();
        assert_eq!(digits.read(b"1700000000000000000,", 0), 19);
        assert_eq!(
            (digits.value, digits.count),
            (1_700_000_000_000_000_000, 19)
        );
        let mut digits = Digits::default();
        assert_eq!(digits.read(b"12345678901234567890}", 0), 20);
        assert_eq!(digits.count, 20, "too long to hold: read as text");
    }
}
