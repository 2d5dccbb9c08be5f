//! YUV4MPEG2 (`.y4m`): the header (`W`, `H`, `F`, `C`, and the fields it
//! may carry besides), then `FRAME` lines each followed by one frame's
//! planes. `ffmpeg -i in.mp4 -f yuv4mpegpipe -` and AV1/AV2 decoders write
//! it, so a file or a pipe of it feeds dav2d directly.
//!
//! Colourspaces: `420jpeg`, `420`, `420mpeg2`, `420paldv` (all I420),
//! `444` (I444) and `mono` (gray8); others, and high bit depths, are
//! refused by name. A malformed header or frame marker is an error naming
//! the byte offset and the field; a truncated final frame ends the stream
//! with an error saying so.

use std::io::{BufRead, Read};

use crate::format::{FrameLayout, PixelFormat};

/// The longest header or `FRAME` line accepted.
const MAX_LINE: usize = 4096;

/// What a y4m stream's header says.
#[derive(Clone, Debug, PartialEq)]
pub struct Y4mHeader {
    /// The frames' layout (tight rows, planes in order).
    pub layout: FrameLayout,
    /// Frames per second (`F`), when given.
    pub rate: Option<(u32, u32)>,
}

/// Why a y4m stream could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Y4mError {
    /// The header or a frame marker is malformed.
    #[error("y4m at byte {offset}: {message}")]
    Malformed {
        /// Where.
        offset: u64,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The stream ended inside a frame.
    #[error("y4m at byte {offset}: the stream ends inside frame {frame} ({got} of {size} bytes)")]
    Truncated {
        /// Where the frame's data began.
        offset: u64,
        /// The frame's number.
        frame: u64,
        /// Bytes there were.
        got: usize,
        /// Bytes a frame takes.
        size: usize,
    },
    /// Reading failed.
    #[error("reading y4m: {0}")]
    Io(String),
}

/// Reads a y4m stream frame by frame, into caller-given buffers.
pub struct Y4mReader<R: BufRead> {
    input: R,
    header: Y4mHeader,
    offset: u64,
    frames: u64,
}

impl<R: BufRead> Y4mReader<R> {
    /// Reads the header; refuses a stream that is not y4m or that dav2d
    /// cannot carry, and frames past `max_frame_bytes`.
    pub fn new(mut input: R, max_frame_bytes: usize) -> Result<Y4mReader<R>, Y4mError> {
        let line = read_line(&mut input, 0)?.ok_or_else(|| Y4mError::Malformed {
            offset: 0,
            message: "the stream is empty; a y4m stream starts with 'YUV4MPEG2 '".to_string(),
        })?;
        let header = parse_header(&line, max_frame_bytes)?;
        Ok(Y4mReader {
            input,
            header,
            offset: line.len() as u64 + 1,
            frames: 0,
        })
    }

    /// The header.
    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }

    /// Reads the next frame into `buffer` (at least the layout's size);
    /// `Ok(false)` at the end of the stream.
    pub fn read_frame(&mut self, buffer: &mut [u8]) -> Result<bool, Y4mError> {
        let Some(line) = read_line(&mut self.input, self.offset)? else {
            return Ok(false);
        };
        let marker_at = self.offset;
        if !(line == b"FRAME" || line.starts_with(b"FRAME ")) {
            return Err(Y4mError::Malformed {
                offset: marker_at,
                message: format!(
                    "expected a 'FRAME' line before frame {}, found {:?}",
                    self.frames,
                    String::from_utf8_lossy(&line[..line.len().min(32)])
                ),
            });
        }
        self.offset += line.len() as u64 + 1;
        let size = self.header.layout.size;
        let mut got = 0;
        while got < size {
            match self.input.read(&mut buffer[got..size]) {
                Ok(0) => {
                    return Err(Y4mError::Truncated {
                        offset: self.offset,
                        frame: self.frames,
                        got,
                        size,
                    });
                }
                Ok(n) => got += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Y4mError::Io(error.to_string())),
            }
        }
        self.offset += size as u64;
        self.frames += 1;
        Ok(true)
    }
}

/// One line without its `\n`, or `None` at a clean end of the stream.
fn read_line(input: &mut impl BufRead, offset: u64) -> Result<Option<Vec<u8>>, Y4mError> {
    let mut line = Vec::new();
    let read = input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| Y4mError::Io(e.to_string()))?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(Y4mError::Malformed {
            offset,
            message: if line.len() > MAX_LINE {
                format!("a header or FRAME line longer than {MAX_LINE} bytes")
            } else {
                "the stream ends inside a header or FRAME line".to_string()
            },
        });
    }
    line.pop();
    Ok(Some(line))
}

fn parse_header(line: &[u8], max_frame_bytes: usize) -> Result<Y4mHeader, Y4mError> {
    let malformed = |offset: usize, message: String| Y4mError::Malformed {
        offset: offset as u64,
        message,
    };
    let text = std::str::from_utf8(line)
        .map_err(|_| malformed(0, "the header is not text".to_string()))?;
    let Some(fields) = text.strip_prefix("YUV4MPEG2") else {
        return Err(malformed(
            0,
            "not a y4m stream: it does not start with 'YUV4MPEG2'".to_string(),
        ));
    };
    let (mut width, mut height, mut rate, mut colour) = (None, None, None, "420jpeg".to_string());
    let mut at = "YUV4MPEG2".len();
    for field in fields.split(' ') {
        at += 1;
        if field.is_empty() {
            continue;
        }
        let (tag, value) = field.split_at(1);
        let number = |what: &str| {
            value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                malformed(
                    at,
                    format!("{what} '{value}' is not a positive whole number"),
                )
            })
        };
        match tag {
            "W" => width = Some(number("the width W")?),
            "H" => height = Some(number("the height H")?),
            "F" => {
                let parsed = value.split_once(':').and_then(|(n, d)| {
                    Some((
                        n.parse::<u32>().ok()?,
                        d.parse::<u32>().ok().filter(|d| *d > 0)?,
                    ))
                });
                rate = Some(parsed.ok_or_else(|| {
                    malformed(at, format!("the frame rate F '{value}' is not N:D"))
                })?);
            }
            "C" => colour = value.to_string(),
            "I" | "A" | "X" => {}
            other => {
                return Err(malformed(
                    at,
                    format!("unknown header field '{other}{value}'"),
                ));
            }
        }
        at += field.len();
    }
    let width = width.ok_or_else(|| malformed(0, "the header has no width (W)".to_string()))?;
    let height = height.ok_or_else(|| malformed(0, "the header has no height (H)".to_string()))?;
    let format = match colour.as_str() {
        "420jpeg" | "420" | "420mpeg2" | "420paldv" => PixelFormat::I420,
        "444" => PixelFormat::I444,
        "mono" => PixelFormat::Gray8,
        other => {
            return Err(malformed(
                0,
                format!(
                    "colourspace C{other} is not supported; dav2d reads C420jpeg, C420, C420mpeg2, C420paldv, C444 and Cmono (8-bit)"
                ),
            ));
        }
    };
    let layout = format
        .layout(width, height)
        .map_err(|message| malformed(0, message))?;
    if layout.size > max_frame_bytes {
        return Err(malformed(
            0,
            format!(
                "a {width}x{height} frame takes {} bytes, more than the {max_frame_bytes} allowed",
                layout.size
            ),
        ));
    }
    Ok(Y4mHeader { layout, rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(header: &str, frames: &[&[u8]]) -> Vec<u8> {
        let mut bytes = format!("{header}\n").into_bytes();
        for frame in frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend_from_slice(frame);
        }
        bytes
    }

    #[test]
    fn frames_are_read_and_bad_streams_named() {
        let frame = [7u8; 6]; // 2x2 I420: 4 + 1 + 1
        let bytes = stream(
            "YUV4MPEG2 W2 H2 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG",
            &[&frame, &frame],
        );
        let mut reader = Y4mReader::new(&bytes[..], 1 << 20).unwrap();
        assert_eq!(reader.header().rate, Some((30, 1)));
        let mut buffer = [0u8; 6];
        assert!(reader.read_frame(&mut buffer).unwrap());
        assert!(reader.read_frame(&mut buffer).unwrap());
        assert!(!reader.read_frame(&mut buffer).unwrap());
        let cut = &bytes[..bytes.len() - 2];
        let mut reader = Y4mReader::new(cut, 1 << 20).unwrap();
        reader.read_frame(&mut buffer).unwrap();
        assert!(matches!(
            reader.read_frame(&mut buffer),
            Err(Y4mError::Truncated { got: 4, .. })
        ));
        for (header, part) in [
            ("MPEG2 W2 H2", "does not start with 'YUV4MPEG2'"),
            ("YUV4MPEG2 W2 H2 C420p10", "C420p10 is not supported"),
            ("YUV4MPEG2 W0 H2", "not a positive whole number"),
            ("YUV4MPEG2 H2", "no width"),
            ("YUV4MPEG2 W99999 H99999", "more than the"),
            ("YUV4MPEG2 W2 H2 F30", "is not N:D"),
        ] {
            let error = Y4mReader::new(format!("{header}\n").as_bytes(), 1 << 20)
                .err()
                .unwrap();
            assert!(error.to_string().contains(part), "{header}: {error}");
        }
        let mut bad = stream("YUV4MPEG2 W2 H2", &[&frame]);
        let marker = bad.len() - frame.len() - 6;
        bad[marker + 4] = b'X';
        let mut reader = Y4mReader::new(&bad[..], 1 << 20).unwrap();
        let error = reader.read_frame(&mut buffer).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("at byte 16: expected a 'FRAME' line"),
            "{error}"
        );
    }
}
