//! The TCP frame source: dav2d listens, a producer connects and sends
//! frame messages, each a 48-byte little-endian header and the payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `DV2F` |
//! | 4 | version, 1 |
//! | 5 | pixel format: 0 gray8, 1 rgb8, 2 bgr8, 3 rgba8, 4 bgra8, 5 i420, 6 nv12, 7 i444 |
//! | 6..8 | reserved, 0 |
//! | 8..12 | width |
//! | 12..16 | height |
//! | 16..28 | the row pitch of planes 0, 1, 2 (0: tight; unused planes 0) |
//! | 28..32 | reserved, 0 |
//! | 32..40 | timestamp, ns since the epoch (0: the receive time) |
//! | 40..48 | payload length |
//!
//! The payload is the planes one after the other, each `rows × pitch`
//! bytes. A header whose length disagrees with its dimensions and pitches,
//! that declares absurd dimensions or a frame over the limit, or that does
//! not start with the magic, is answered on the socket with an error line
//! naming the field, and the connection is closed; the stream keeps
//! running for the next producer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::format::{FrameLayout, PixelFormat};
use crate::pool::{Delivery, FramePool};
use crate::synthetic::RunningSource;

/// The bytes of a frame message's header.
pub const HEADER: usize = 48;
/// The header's first bytes.
pub const MAGIC: &[u8; 4] = b"DV2F";
/// The largest width or height a message may declare.
pub const MAX_DIMENSION: u32 = 16384;

/// The header of a frame message for `layout` at `ts_ns`.
pub fn encode_header(layout: &FrameLayout, ts_ns: i64) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4] = 1;
    header[5] = PixelFormat::ALL
        .iter()
        .position(|f| *f == layout.format)
        .unwrap_or(0) as u8;
    header[8..12].copy_from_slice(&layout.width.to_le_bytes());
    header[12..16].copy_from_slice(&layout.height.to_le_bytes());
    for (i, plane) in layout.planes.iter().enumerate() {
        let pitch = u32::try_from(plane.stride).unwrap_or(u32::MAX);
        header[16 + 4 * i..20 + 4 * i].copy_from_slice(&pitch.to_le_bytes());
    }
    header[32..40].copy_from_slice(&ts_ns.to_le_bytes());
    header[40..48].copy_from_slice(&(layout.size as u64).to_le_bytes());
    header
}

/// The layout and timestamp a header declares, or what is wrong with it.
pub fn decode_header(
    header: &[u8; HEADER],
    max_bytes: usize,
) -> Result<(FrameLayout, i64), String> {
    if &header[..4] != MAGIC {
        return Err("bytes 0..4: a frame message starts with the magic DV2F".to_string());
    }
    if header[4] != 1 {
        return Err(format!(
            "byte 4: version {} is not supported; send version 1",
            header[4]
        ));
    }
    let format = *PixelFormat::ALL
        .get(header[5] as usize)
        .ok_or_else(|| format!("byte 5: pixel format {} is unknown (0..=7)", header[5]))?;
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (width, height) = (word(8), word(12));
    if !(1..=MAX_DIMENSION).contains(&width) || !(1..=MAX_DIMENSION).contains(&height) {
        return Err(format!(
            "bytes 8..16: {width}x{height} is not a frame size dav2d takes (1 to {MAX_DIMENSION} each way)"
        ));
    }
    let mut layout = format.layout(width, height)?;
    let mut offset = 0;
    for (i, plane) in layout.planes.iter_mut().enumerate() {
        let pitch = word(16 + 4 * i) as usize;
        if pitch != 0 {
            if pitch < plane.row_bytes {
                return Err(format!(
                    "bytes {}..{}: a pitch of {pitch} is shorter than a row of plane {i} ({} bytes)",
                    16 + 4 * i,
                    20 + 4 * i,
                    plane.row_bytes
                ));
            }
            plane.stride = pitch;
        }
        plane.offset = offset;
        offset += plane.stride * plane.rows;
    }
    layout.size = offset;
    let ts = i64::from_le_bytes(header[32..40].try_into().unwrap_or([0; 8]));
    let length = u64::from_le_bytes(header[40..48].try_into().unwrap_or([0; 8]));
    if length != layout.size as u64 {
        return Err(format!(
            "bytes 40..48: the payload length {length} disagrees with a {width}x{height} {format} frame of those pitches ({} bytes)",
            layout.size
        ));
    }
    if layout.size > max_bytes {
        return Err(format!(
            "a {width}x{height} {format} frame takes {} bytes, more than the {max_bytes} this stream takes (max_bytes=)",
            layout.size
        ));
    }
    Ok((layout, ts))
}

/// Listens on `address` and feeds the pool from each producer in turn.
pub fn listen(address: &str, slots: usize, max_bytes: usize) -> Result<RunningSource, String> {
    let listener = TcpListener::bind(address)
        .map_err(|e| format!("cannot listen for frames on {address}: {e}; give a free address"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen for frames on {address}: {e}"))?;
    let local = listener.local_addr().ok();
    let pool = FramePool::new(slots, max_bytes, Delivery::Latest);
    let mut source = RunningSource::spawn("dav2d-frames-tcp", pool, move |pool, stop| {
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((stream, _)) => serve(stream, pool, stop, max_bytes),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => {
                    tracing::warn!(%error, "Accepting a frame producer failed.");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    })?;
    source.set_address(local);
    Ok(source)
}

fn serve(mut stream: TcpStream, pool: &FramePool, stop: &AtomicBool, max_bytes: usize) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut scratch: Vec<u8> = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        match read_exact(&mut stream, &mut header, stop) {
            Ok(true) => {}
            Ok(false) => return,
            Err(message) => return refuse(&mut stream, &message),
        }
        let (layout, ts) = match decode_header(&header, max_bytes) {
            Ok(decoded) => decoded,
            Err(message) => return refuse(&mut stream, &message),
        };
        let ts = if ts == 0 { crate::now_ns() } else { ts };
        match pool.begin(Duration::ZERO) {
            Some(mut slot) => {
                match read_exact(&mut stream, &mut slot.buffer()[..layout.size], stop) {
                    Ok(true) => {
                        slot.publish(layout, ts);
                    }
                    Ok(false) => return refuse(&mut stream, "the connection ended inside a frame"),
                    Err(message) => return refuse(&mut stream, &message),
                }
            }
            None => {
                // Every slot is held: read the frame past, counted as skipped.
                scratch.resize(layout.size, 0);
                if !matches!(read_exact(&mut stream, &mut scratch, stop), Ok(true)) {
                    return;
                }
            }
        }
    }
}

/// Fills `buffer`; `Ok(false)` on a clean end before its first byte.
fn read_exact(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    stop: &AtomicBool,
) -> Result<bool, String> {
    let mut got = 0;
    while got < buffer.len() {
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        match stream.read(&mut buffer[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(format!(
                    "the connection ended {got} bytes into {} expected",
                    buffer.len()
                ));
            }
            Ok(n) => got += n,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(true)
}

fn refuse(stream: &mut TcpStream, message: &str) {
    tracing::warn!(message, "A frame producer was refused.");
    let _ = writeln!(stream, "{{\"error\": {:?}}}", message);
}
