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
use std::time::{Duration, Instant};

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
    let pitches = [word(16) as usize, word(20) as usize, word(24) as usize];
    let layout = format
        .layout(width, height)?
        .with_strides(&pitches)
        .map_err(|message| format!("bytes 16..28: {message}"))?;
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

/// How the TCP frame source treats its producers.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpOptions {
    /// Where it listens, in the shape every listener takes: the address of
    /// the URL; the token (a producer's first line must then be `AUTH
    /// <token>`); no TLS (put a terminator in front); one producer at a
    /// time (`max_connections` 1: another one is told so and closed).
    pub listen: dav2d_component::ListenConfig,
    /// A producer that sends nothing between frames for this long is closed.
    pub idle_timeout: Duration,
    /// A frame message begun must be finished within this time.
    pub partial_timeout: Duration,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            listen: dav2d_component::ListenConfig {
                max_connections: 1,
                ..dav2d_component::ListenConfig::loopback(7071)
            },
            idle_timeout: Duration::from_secs(300),
            partial_timeout: Duration::from_secs(30),
        }
    }
}

/// The longest `AUTH` line.
const MAX_AUTH_LINE: usize = 4096;

/// How long a connection may take to send its `AUTH` line (or
/// `idle_timeout`, if shorter).
pub const AUTH_WAIT: Duration = Duration::from_secs(5);

/// Connections waiting to authenticate at once, at most; more are refused.
pub const MAX_WAITING: usize = 16;

/// Listens on `options.listen.bind` and feeds the pool from one producer
/// at a time; a producer that connects while another is sending is told so
/// and closed. With a token, connections wait in a lobby until they send
/// their `AUTH` line (each for [`AUTH_WAIT`] at most, [`MAX_WAITING`] at
/// once): the first to authenticate becomes the producer, so a connection
/// that has not authenticated never holds the stream.
pub fn listen(
    slots: usize,
    max_bytes: usize,
    options: TcpOptions,
) -> Result<RunningSource, String> {
    let address = options.listen.bind;
    let listener = TcpListener::bind(address)
        .map_err(|e| format!("cannot listen for frames on {address}: {e}; give a free address"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen for frames on {address}: {e}"))?;
    let local = listener.local_addr().ok();
    let pool = FramePool::new(slots, max_bytes, Delivery::Latest);
    let mut source = RunningSource::spawn("dav2d-frames-tcp", pool, move |pool, stop| {
        let mut lobby: Vec<Candidate> = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let mut accepted = false;
            match listener.accept() {
                Ok((stream, _)) => {
                    accepted = true;
                    match &options.listen.token {
                        None => serve(stream, &listener, stop, &options, pool, max_bytes),
                        Some(_) if lobby.len() >= MAX_WAITING => refuse(
                            stream,
                            "too many connections are waiting to authenticate; try again",
                        ),
                        Some(_) => {
                            let _ = stream.set_nonblocking(true);
                            lobby.push(Candidate {
                                stream,
                                line: Vec::with_capacity(64),
                                since: Instant::now(),
                            });
                        }
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::warn!(%error, "Accepting a frame producer failed.");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            let Some(token) = &options.listen.token else {
                if !accepted {
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            };
            let wait = AUTH_WAIT.min(options.idle_timeout);
            let mut producer = None;
            let mut i = 0;
            while i < lobby.len() {
                match lobby[i].step(token) {
                    Step::Waiting if lobby[i].since.elapsed() <= wait => i += 1,
                    Step::Waiting => refuse(
                        lobby.swap_remove(i).stream,
                        &format!(
                            "no `AUTH <token>` line within {wait:?} (the wait before authenticating: {AUTH_WAIT:?}, or idle_timeout if shorter); closing"
                        ),
                    ),
                    Step::Left => drop(lobby.swap_remove(i)),
                    Step::Refused(message) => refuse(lobby.swap_remove(i).stream, &message),
                    Step::Authenticated => {
                        producer = Some(lobby.swap_remove(i).stream);
                        break;
                    }
                }
            }
            if let Some(stream) = producer {
                // The others would only be turned away: tell them now.
                for other in lobby.drain(..) {
                    refuse(
                        other.stream,
                        "this frame stream already has a producer; try again when it has left",
                    );
                }
                serve(stream, &listener, stop, &options, pool, max_bytes);
            } else if !accepted {
                std::thread::sleep(Duration::from_millis(if lobby.is_empty() { 20 } else { 5 }));
            }
        }
    })?;
    source.set_address(local);
    Ok(source)
}

/// Serves one producer (authenticated, or with no token to give) until it
/// leaves, or tells it why it is closed.
fn serve(
    stream: TcpStream,
    listener: &TcpListener,
    stop: &AtomicBool,
    options: &TcpOptions,
    pool: &FramePool,
    max_bytes: usize,
) {
    let mut producer = Producer {
        stream,
        listener,
        stop,
        options,
        last_byte: Instant::now(),
        began: None,
    };
    if let Err(message) = producer.serve(pool, max_bytes) {
        refuse(producer.stream, &message);
    }
}

/// A connection that has not sent its `AUTH` line yet.
struct Candidate {
    stream: TcpStream,
    line: Vec<u8>,
    since: Instant,
}

/// Where a candidate's `AUTH` line stands.
enum Step {
    /// Not finished; nothing wrong yet.
    Waiting,
    /// The right token: the frames follow.
    Authenticated,
    /// It closed first.
    Left,
    /// Wrong: told why and closed.
    Refused(String),
}

impl Candidate {
    /// Reads what has arrived of the `AUTH` line, a byte at a time (so
    /// nothing after it is taken from the frames).
    fn step(&mut self, token: &str) -> Step {
        const REFUSED: &str = "this frame stream requires a first line `AUTH <token>` (its token, by default http.token); closing";
        loop {
            let mut byte = [0u8];
            match self.stream.read(&mut byte) {
                Ok(0) => return Step::Left,
                Ok(_) if byte[0] == b'\n' => {
                    let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                    let good = line.strip_prefix(b"AUTH ").is_some_and(|given| {
                        dav2d_component::token_matches(given.trim_ascii(), token)
                    });
                    return if good {
                        Step::Authenticated
                    } else {
                        Step::Refused(REFUSED.to_string())
                    };
                }
                Ok(_) => {
                    self.line.push(byte[0]);
                    // Refuse at the first byte that cannot begin `AUTH ` (a
                    // frame header sent without the line), or past the
                    // longest line.
                    let head = self.line.len().min(5);
                    if self.line[..head] != b"AUTH "[..head] || self.line.len() > MAX_AUTH_LINE {
                        return Step::Refused(REFUSED.to_string());
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    return Step::Waiting;
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Left,
            }
        }
    }
}

/// The producer being served, and the clocks of its timeouts.
struct Producer<'a> {
    stream: TcpStream,
    listener: &'a TcpListener,
    stop: &'a AtomicBool,
    options: &'a TcpOptions,
    /// When the last byte came.
    last_byte: Instant,
    /// When the message being read began (`None` between messages).
    began: Option<Instant>,
}

impl Producer<'_> {
    /// Reads frame messages into `pool` until the producer leaves (`Ok`)
    /// or must be told why it is closed (`Err`).
    fn serve(&mut self, pool: &FramePool, max_bytes: usize) -> Result<(), String> {
        let _ = self.stream.set_nonblocking(false);
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)));
        let mut scratch: Vec<u8> = Vec::new();
        loop {
            let mut header = [0u8; HEADER];
            self.began = None;
            if !self.read_exact(&mut header)? {
                return Ok(());
            }
            let (layout, ts) = decode_header(&header, max_bytes)?;
            let ts = if ts == 0 { crate::now_ns() } else { ts };
            match pool.begin(Duration::ZERO) {
                Some(mut slot) => {
                    if !self.read_exact(&mut slot.buffer()[..layout.size])? {
                        return Err("the connection ended inside a frame".to_string());
                    }
                    slot.publish(layout, ts);
                }
                None => {
                    // Every slot is held: read the frame past, counted as skipped.
                    scratch.resize(layout.size, 0);
                    if !self.read_exact(&mut scratch)? {
                        return Err("the connection ended inside a frame".to_string());
                    }
                }
            }
        }
    }

    /// Fills `buffer`; `Ok(false)` on a clean end (or a stop) before its
    /// first byte. While it waits it enforces the timeouts and turns away
    /// producers that connect meanwhile.
    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<bool, String> {
        let mut got = 0;
        while got < buffer.len() {
            if self.stop.load(Ordering::Acquire) {
                return Ok(false);
            }
            match self.stream.read(&mut buffer[got..]) {
                Ok(0) if got == 0 && self.began.is_none() => return Ok(false),
                Ok(0) => {
                    return Err(format!(
                        "the connection ended {got} bytes into {} expected",
                        buffer.len()
                    ));
                }
                Ok(n) => {
                    got += n;
                    self.last_byte = Instant::now();
                    self.began.get_or_insert(self.last_byte);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    self.waited()?;
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(true)
    }

    /// Between reads: the timeouts, and a word to producers that connect
    /// while this one sends.
    fn waited(&mut self) -> Result<(), String> {
        if let Ok((other, _)) = self.listener.accept() {
            let _ = other.set_nonblocking(false);
            refuse(
                other,
                "this frame stream already has a producer; try again when it has left",
            );
        }
        match self.began {
            Some(began) if began.elapsed() > self.options.partial_timeout => Err(format!(
                "a frame message begun {:.0?} ago is still unfinished (partial_timeout {:?}); closing",
                began.elapsed(),
                self.options.partial_timeout
            )),
            None if self.last_byte.elapsed() > self.options.idle_timeout => Err(format!(
                "nothing was sent for {:?} (idle_timeout); closing",
                self.options.idle_timeout
            )),
            _ => Ok(()),
        }
    }
}

/// Tells a producer why it is closed, then closes gently so it can read
/// the line even while its frame bytes are still arriving.
fn refuse(mut stream: TcpStream, message: &str) {
    tracing::warn!(message, "A frame producer was refused.");
    let _ = writeln!(stream, "{{\"error\": {:?}}}", message);
    dav2d_component::close_gently_blocking(stream);
}
