//! Decompression of `gzip` and `zstd` bodies, capped at the body limit.

use std::io::Read;

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
