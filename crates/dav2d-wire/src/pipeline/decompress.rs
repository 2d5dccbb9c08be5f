//! Decompression of `gzip` and `zstd` bodies, capped at the body limit.

use std::io::Read;

/// Decompresses a `gzip` or `zstd` body, refusing to inflate past `limit`.
pub fn decompress(body: &[u8], encoding: &str, limit: usize) -> Result<Vec<u8>, DecompressError> {
    decompress_charged(body, encoding, limit, &mut |_| true)
}

/// How much is inflated between two charges.
pub(super) const CHARGE_STEP: usize = 64 << 10;

/// [`decompress`], asking `charge` for each step of inflated bytes before
/// it is held (the body budget): a `false` stops it with
/// [`DecompressError::Budget`], so what a small body inflates to is
/// counted as it is made, not after.
pub fn decompress_charged(
    body: &[u8],
    encoding: &str,
    limit: usize,
    charge: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, DecompressError> {
    let mut reader: Box<dyn Read> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(body)),
        "zstd" => match zstd::stream::read::Decoder::new(body) {
            Ok(decoder) => Box::new(decoder),
            Err(error) => return Err(corrupt(encoding, &error)),
        },
        other => return Err(DecompressError::Unsupported(other.to_string())),
    };
    let mut out: Vec<u8> = Vec::new();
    let mut meter = Meter::new(limit);
    let mut chunk = vec![0u8; CHARGE_STEP];
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(corrupt(encoding, &error)),
        };
        meter.admit(read, charge)?;
        out.extend_from_slice(&chunk[..read]);
    }
}

/// What was inflated, against the limit and the budget.
pub(super) struct Meter {
    limit: usize,
    pub(super) inflated: usize,
    charged: usize,
}

impl Meter {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            inflated: 0,
            charged: 0,
        }
    }

    /// Counts `len` more inflated bytes against the limit, asking `charge`
    /// for each step of them before they are held.
    pub(super) fn admit(
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
