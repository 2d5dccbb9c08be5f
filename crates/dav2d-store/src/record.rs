//! The log's record codec: one logged sample (stream, key, timestamp,
//! value) in the store's encoding. The store writes and replays records,
//! history and inspection read them; all three import it from here.

use dav2d_core::Value;

use crate::checkpoint::{Decoder, Encoder};

/// The record kind of a logged sample.
const SAMPLE: u8 = 1;

/// Encodes one sample into `out` (cleared first); `pixels` keeps a frame's
/// pixels, else only its description.
pub(crate) fn encode_sample(
    out: &mut Vec<u8>,
    stream: &str,
    key: &str,
    ts: i64,
    value: &Value,
    pixels: bool,
) {
    out.clear();
    let mut e = Encoder(std::mem::take(out));
    e.u8(SAMPLE);
    e.str(stream);
    e.str(key);
    e.i64(ts);
    e.value_keeping(value, pixels);
    *out = e.0;
}

/// Decodes one logged sample: (stream, key, timestamp, value).
pub fn decode_sample(bytes: &[u8]) -> Result<(String, String, i64, Value), String> {
    let mut d = Decoder { bytes, at: 0 };
    if d.u8()? != SAMPLE {
        return Err("unknown record kind".to_string());
    }
    let stream = d.str()?;
    let key = d.str()?;
    let ts = d.i64()?;
    let value = d.value()?;
    Ok((stream, key, ts, value))
}
