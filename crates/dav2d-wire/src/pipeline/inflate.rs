//! Decompression of `gzip` and `zstd` bodies, and why one could not be
//! used. One decoder serves both: a body inflated as its
//! compressed chunks come, and handed on in chunks, so the pieces of an
//! inflated array are cut and parsed while the rest still inflates and the
//! inflated body is never held whole in one buffer. Capped at the body limit
//! and charged to the body budget as it is made, a step at a time: a bomb
//! is stopped within one step of the limit, never after inflating.

use std::io::Write;

use bytes::Bytes;

/// The decoder of one encoding, writing what it inflates into a `Vec`.
enum Decoder {
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Decoder {
    /// Takes in some of `input` (each call inflates at most the decoder's
    /// own buffer, about 32 KiB); how much it took.
    fn write(&mut self, input: &[u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Gzip(decoder) => decoder.write(input),
            Decoder::Zstd(decoder) => decoder.write(input),
        }
    }

    /// Ends the stream (an error if it was cut short); what it still held.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(decoder) => decoder.finish(),
            Decoder::Zstd(decoder) => decoder.finish(),
        }
    }

    /// What was inflated since the last call.
    fn take(&mut self) -> Vec<u8> {
        match self {
            Decoder::Gzip(decoder) => std::mem::take(decoder.get_mut()),
            Decoder::Zstd(decoder) => std::mem::take(decoder.get_mut()),
        }
    }
}

/// How much is inflated between two charges.
const CHARGE_STEP: usize = 64 << 10;

/// What was inflated, against the limit and the budget.
struct Meter {
    limit: usize,
    inflated: usize,
    charged: usize,
}

impl Meter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            inflated: 0,
            charged: 0,
        }
    }

    /// Counts `len` more inflated bytes against the limit, asking `charge`
    /// for each step of them before they are held.
    fn admit(
        &mut self,
        len: usize,
        charge: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), DecompressError> {
        let total = self.inflated + len;
        if total > self.limit {
            return Err(DecompressError::TooLarge(self.limit));
        }
        if total > self.charged {
            let step = (total - self.charged).max(CHARGE_STEP);
            if !charge(step) {
                return Err(DecompressError::Budget(total));
            }
            self.charged += step;
        }
        self.inflated = total;
        Ok(())
    }
}

/// Inflates a compressed body pushed a chunk at a time.
pub struct Inflater {
    encoding: String,
    decoder: Decoder,
    meter: Meter,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("encoding", &self.encoding)
            .field("inflated", &self.meter.inflated)
            .finish()
    }
}

impl Inflater {
    /// An inflater of `encoding` (`gzip`, `x-gzip` or `zstd`) refusing to
    /// inflate past `limit` bytes.
    pub fn new(encoding: &str, limit: usize) -> Result<Self, DecompressError> {
        let decoder = match encoding {
            "gzip" | "x-gzip" => {
                Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
            }
            "zstd" => match zstd::stream::write::Decoder::new(Vec::new()) {
                Ok(decoder) => Decoder::Zstd(Box::new(decoder)),
                Err(error) => return Err(corrupt(encoding, &error)),
            },
            other => return Err(DecompressError::Unsupported(other.to_string())),
        };
        Ok(Self {
            encoding: encoding.to_string(),
            decoder,
            meter: Meter::new(limit),
        })
    }

    /// Inflates `compressed`, handing each inflated chunk to `out`; asks
    /// `charge` for each step of inflated bytes before it is held (a `false`
    /// stops it with [`DecompressError::Budget`]).
    pub fn push(
        &mut self,
        mut compressed: &[u8],
        charge: &mut dyn FnMut(usize) -> bool,
        out: &mut dyn FnMut(Bytes),
    ) -> Result<(), DecompressError> {
        while !compressed.is_empty() {
            let taken = match self.decoder.write(compressed) {
                Ok(taken) => taken,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(corrupt(&self.encoding, &error)),
            };
            compressed = &compressed[taken..];
            let inflated = self.decoder.take();
            hand_on(&mut self.meter, inflated, charge, out)?;
            if taken == 0 {
                // Nothing taken: the decoder saw the end of its stream and
                // the rest is not another member or frame.
                return Err(DecompressError::Corrupt(format!(
                    "the {} body has {} bytes after its end",
                    self.encoding,
                    compressed.len()
                )));
            }
        }
        Ok(())
    }

    /// Inflates what the decoder still holds once the body is in, checking
    /// that the stream ended where the body did (an empty body never
    /// started one).
    pub fn finish(
        self,
        charge: &mut dyn FnMut(usize) -> bool,
        out: &mut dyn FnMut(Bytes),
    ) -> Result<(), DecompressError> {
        let Inflater {
            encoding,
            decoder,
            mut meter,
        } = self;
        match decoder.finish() {
            Ok(rest) => hand_on(&mut meter, rest, charge, out),
            Err(error) => Err(corrupt(&encoding, &error)),
        }
    }
}

/// Counts and charges what was inflated, then hands it on.
fn hand_on(
    meter: &mut Meter,
    inflated: Vec<u8>,
    charge: &mut dyn FnMut(usize) -> bool,
    out: &mut dyn FnMut(Bytes),
) -> Result<(), DecompressError> {
    if !inflated.is_empty() {
        meter.admit(inflated.len(), charge)?;
        out(Bytes::from(inflated));
    }
    Ok(())
}

/// Decompresses a `gzip` or `zstd` body, refusing to inflate past `limit`.
pub fn decompress(body: &[u8], encoding: &str, limit: usize) -> Result<Vec<u8>, DecompressError> {
    decompress_charged(body, encoding, limit, &mut |_| true)
}

/// [`decompress`], asking `charge` for each step of inflated bytes before
/// it is held (the body budget): a `false` stops it with
/// [`DecompressError::Budget`], so what a small body inflates to is
/// counted as it is made, not after. The [`Inflater`] a large body streams
/// through, fed the whole body at once.
pub fn decompress_charged(
    body: &[u8],
    encoding: &str,
    limit: usize,
    charge: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, DecompressError> {
    let mut inflater = Inflater::new(encoding, limit)?;
    let mut out: Vec<u8> = Vec::new();
    inflater.push(body, charge, &mut |chunk| out.extend_from_slice(&chunk))?;
    inflater.finish(charge, &mut |chunk| out.extend_from_slice(&chunk))?;
    Ok(out)
}

pub(super) fn corrupt(encoding: &str, error: &std::io::Error) -> DecompressError {
    DecompressError::Corrupt(format!("the {encoding} body cannot be decoded: {error}"))
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
    /// What it inflated to (so far) did not fit the body budget.
    #[error("the body inflated to {0} bytes, more than the body budget has room for; retry later")]
    Budget(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip_of(body: &[u8]) -> Vec<u8> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(body).unwrap();
        gzip.finish().unwrap()
    }

    fn inflate_in(
        compressed: &[u8],
        encoding: &str,
        limit: usize,
        step: usize,
    ) -> Result<Vec<u8>, DecompressError> {
        let mut inflater = Inflater::new(encoding, limit)?;
        let mut whole = Vec::new();
        let mut most = 0;
        let mut out = |chunk: Bytes| {
            most = most.max(chunk.len());
            whole.extend_from_slice(&chunk);
        };
        for part in compressed.chunks(step.max(1)) {
            inflater.push(part, &mut |_| true, &mut out)?;
        }
        inflater.finish(&mut |_| true, &mut out)?;
        assert!(most <= 256 << 10, "no inflated chunk is large: {most}");
        Ok(whole)
    }

    #[test]
    fn a_body_inflated_in_parts_is_the_body_in_either_encoding() {
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"key\":\"k{}\",\"value\":{i}}},", i % 97).into_bytes())
            .collect();
        let gzip = gzip_of(&body);
        let zstd = zstd::encode_all(&body[..], 1).unwrap();
        for (encoding, compressed) in [("gzip", &gzip), ("zstd", &zstd)] {
            for step in [1, 7, 4096, 1 << 20] {
                if step == 1 && compressed.len() > 200_000 {
                    continue;
                }
                let whole = inflate_in(compressed, encoding, 64 << 20, step).unwrap();
                assert!(whole == body, "{encoding} in parts of {step}");
            }
            assert_eq!(
                decompress_all(compressed, encoding),
                body,
                "as the whole-body decoder reads it"
            );
        }
    }

    fn decompress_all(compressed: &[u8], encoding: &str) -> Vec<u8> {
        decompress(compressed, encoding, 64 << 20).unwrap()
    }

    #[test]
    fn bombs_stop_within_a_step_of_the_limit_and_bad_streams_are_named() {
        let zeros = vec![0u8; 64 << 20];
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&zeros).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = zstd::encode_all(&zeros[..], 19).unwrap();
        for (encoding, bomb) in [("gzip", &gzip), ("zstd", &zstd)] {
            let mut inflater = Inflater::new(encoding, 1 << 20).unwrap();
            let mut held = 0usize;
            let result = inflater.push(bomb, &mut |_| true, &mut |chunk| held += chunk.len());
            assert_eq!(
                result,
                Err(DecompressError::TooLarge(1 << 20)),
                "{encoding}"
            );
            assert!(held <= 1 << 20, "{encoding}: held {held}");
            // The budget stops it the same way.
            let mut inflater = Inflater::new(encoding, 64 << 20).unwrap();
            let mut granted = 0usize;
            let result = inflater.push(
                bomb,
                &mut |bytes| {
                    granted += bytes;
                    granted <= 2 << 20
                },
                &mut |_| {},
            );
            assert!(
                matches!(result, Err(DecompressError::Budget(_))),
                "{encoding}: {result:?}"
            );
        }
        // Cut short, or not compressed at all.
        let truncated = &gzip[..gzip.len() / 2];
        let mut inflater = Inflater::new("gzip", 64 << 20).unwrap();
        inflater
            .push(truncated, &mut |_| true, &mut |_| {})
            .unwrap();
        assert!(matches!(
            inflater.finish(&mut |_| true, &mut |_| {}),
            Err(DecompressError::Corrupt(_))
        ));
        let plain = inflate_in(b"[{\"value\": 1}]", "gzip", 1 << 20, 4);
        assert!(
            matches!(plain, Err(DecompressError::Corrupt(_))),
            "{plain:?}"
        );
        assert!(matches!(
            Inflater::new("br", 1),
            Err(DecompressError::Unsupported(_))
        ));
        // Empty, or with bytes after the end.
        for encoding in ["gzip", "zstd"] {
            let empty = decompress(b"", encoding, 1 << 20);
            assert!(
                matches!(empty, Err(DecompressError::Corrupt(_))),
                "{empty:?}"
            );
        }
        let mut trailing = zstd::encode_all(&b"[1]"[..], 1).unwrap();
        trailing.extend_from_slice(b"xyz");
        let trailing = decompress(&trailing, "zstd", 1 << 20);
        assert!(
            matches!(trailing, Err(DecompressError::Corrupt(_))),
            "{trailing:?}"
        );
        let mut trailing = gzip_of(b"[1]");
        trailing.extend_from_slice(b"xyz");
        let trailing = decompress(&trailing, "gzip", 1 << 20);
        assert!(
            matches!(trailing, Err(DecompressError::Corrupt(_))),
            "{trailing:?}"
        );
    }
}
