//! The TCP run loop: NDJSON samples, one per line, on many connections; or
//! length-prefixed binary units.
//!
//! A connection is read in chunks; each chunk's complete lines are parsed
//! and applied before the next read, so a slow engine (a full `all` queue)
//! stops the reads and TCP flow control pushes back on the sender. Memory
//! per connection is bounded by `max_line` plus one read buffer. Rejected
//! lines are answered with one NDJSON line each:
//! `{"line": 12, "error": "..."}`.
//!
//! # Binary units
//!
//! A connection that starts with the 4 bytes `DV2B` carries units instead:
//! a 4-byte big-endian payload length, a 1-byte kind, then the payload.
//! Kind `1` is a JSON or NDJSON payload of samples, parsed like an HTTP body;
//! other kinds are reserved (video frames) and are refused with an error
//! line. A unit longer than `max_line` ends the connection.
//!
//! # Auth, limits and timeouts
//!
//! With a token, a connection's first line must be `AUTH <token>` (before
//! anything else, binary magic included); a wrong or missing one gets an
//! error line and the connection is closed. Past `max_connections` a new
//! connection gets an error line and is closed. A connection that sends
//! nothing for `idle_timeout`, or leaves a line or unit unfinished for
//! `partial_timeout`, is told so and closed.
//!
//! # Durable acknowledgements
//!
//! A connection whose first line (after `AUTH`) is `ACK durable` is told,
//! after each batch of lines it sent, once that batch is on disk:
//! `{"durable_through_line": N}` (lines before N are durable), or
//! `{"error": "...", "through_line": N}` when they were not made durable in
//! time. Without persistence the `ACK durable` line is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use dav2d_component::{
    Accepted, Admission, Connection, Durability, Intake, Listener, Outcome, close_gently,
};
use dav2d_core::RejectReason;
use dav2d_wire::{Format, first_significant};

use crate::config::TcpConfig;
use crate::framing::{Frame, UNIT_HEADER, complete_lines, next_unit};

/// The magic that selects binary framing.
pub const BINARY_MAGIC: &[u8; 4] = b"DV2B";
/// Unit kind: a JSON or NDJSON payload of samples.
pub const UNIT_SAMPLES: u8 = 1;

/// The most a read takes at once.
const READ_CHUNK: usize = 256 << 10;
/// What a read reserves at least (an idle connection holds no more).
const READ_MIN: usize = 8 << 10;
/// The longest `AUTH` line.
const MAX_AUTH_LINE: usize = 4096;

pub(crate) async fn serve(
    mut listener: Listener,
    config: Arc<TcpConfig>,
    intake: Intake,
    durability: Arc<Durability>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        match accepted {
            Accepted::Open(incoming) => {
                let (intake, config) = (intake.clone(), Arc::clone(&config));
                let durability = Arc::clone(&durability);
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let stream = match incoming.establish(config.partial_timeout).await {
                        Ok(stream) => stream,
                        Err(error) => {
                            tracing::debug!(%error, "A TCP TLS handshake failed.");
                            return;
                        }
                    };
                    tokio::select! {
                        () = connection(stream, intake, config, durability) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
            Accepted::OverLimit(mut stream) => {
                intake.reject(RejectReason::TooManyConnections, 1);
                let max = config.listen.max_connections;
                tokio::spawn(async move {
                    let line = format!(
                        "{}\n",
                        json!({"error": format!("too many connections ({max}, tcp.max_connections); closing")})
                    );
                    let write = stream.write_all(line.as_bytes());
                    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
                    close_gently(&mut stream).await;
                });
            }
        }
    }
}

/// Parses and applies `body` on the pool, waiting for room in a full queue.
async fn ingest(intake: &Intake, body: Vec<u8>, format: Format) -> Outcome {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let worker = intake.clone();
    intake.spawn(move || {
        let _ = sender.send(worker.ingest(&body, None, format, None, Admission::Wait));
    });
    receiver.await.unwrap_or(Outcome::Overloaded)
}

fn error_lines(outcome: &Outcome, first_line: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = |value: serde_json::Value| {
        out.extend_from_slice(value.to_string().as_bytes());
        out.push(b'\n');
    };
    match outcome {
        Outcome::Applied(report) => {
            for (index, error) in &report.errors {
                line(json!({"line": first_line + index + 1, "error": error}));
            }
        }
        Outcome::BadBody(error) => {
            line(json!({"line": first_line + 1, "error": error.to_string()}))
        }
        Outcome::TooLarge(message)
        | Outcome::BadEncoding(message)
        | Outcome::BodyBudget(message) => line(json!({"error": message})),
        Outcome::Overloaded => line(json!({"error": "overloaded"})),
        Outcome::SinkBehind => line(json!({"error": "persistence is behind"})),
    }
    out
}

/// One connection's reading side: the buffer and the timeouts.
struct Reader {
    stream: Connection,
    buffer: Vec<u8>,
    /// When the unfinished message at the end of the buffer began.
    partial_since: Option<Instant>,
    config: Arc<TcpConfig>,
    intake: Intake,
    /// Set when the peer asked for durable acknowledgements.
    durable: Option<Arc<Durability>>,
}

enum Read {
    Data,
    Closed,
    /// Closed for a timeout; the peer was told.
    TimedOut,
}

impl Reader {
    /// The messages in the buffer were taken: what is left is a new partial one.
    fn consumed(&mut self) {
        self.partial_since = None;
    }

    /// Reads more into the buffer within the idle or partial timeout.
    async fn read_more(&mut self) -> Read {
        let (deadline, what) = if self.buffer.is_empty() {
            (self.config.idle_timeout, "nothing arrived")
        } else {
            let since = *self.partial_since.get_or_insert_with(Instant::now);
            (
                self.config.partial_timeout.saturating_sub(since.elapsed()),
                "a line or unit stayed unfinished",
            )
        };
        let spare = self.buffer.capacity() - self.buffer.len();
        if spare < READ_MIN {
            self.buffer
                .reserve(self.buffer.len().clamp(READ_MIN, READ_CHUNK));
        }
        match tokio::time::timeout(deadline, self.stream.read_buf(&mut self.buffer)).await {
            Ok(Ok(0)) => Read::Closed,
            Ok(Ok(_)) => Read::Data,
            Ok(Err(error)) => {
                tracing::debug!(%error, "Reading a TCP connection failed.");
                Read::Closed
            }
            Err(_) => {
                self.intake.reject(RejectReason::IdleTimeout, 1);
                let setting = if self.buffer.is_empty() {
                    format!(
                        "{} s, tcp.idle_timeout",
                        self.config.idle_timeout.as_secs_f64()
                    )
                } else {
                    format!(
                        "{} s, tcp.partial_timeout",
                        self.config.partial_timeout.as_secs_f64()
                    )
                };
                let line = json!({"error": format!("{what} for too long ({setting}); closing")});
                self.reply(format!("{line}\n").as_bytes()).await;
                Read::TimedOut
            }
        }
    }

    /// Writes `bytes` to the peer; false if the connection broke.
    async fn reply(&mut self, bytes: &[u8]) -> bool {
        let write = self.stream.write_all(bytes);
        matches!(
            tokio::time::timeout(self.config.partial_timeout, write).await,
            Ok(Ok(()))
        )
    }

    /// With a token, reads and checks the `AUTH <token>` line; false (the
    /// peer told why) when it is wrong or missing.
    async fn authenticate(&mut self) -> bool {
        let Some(token) = self.config.listen.token.clone() else {
            return true;
        };
        loop {
            if let Some(end) = memchr::memchr(b'\n', &self.buffer) {
                let line = &self.buffer[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let good = line.strip_prefix(b"AUTH ").is_some_and(|given| {
                    dav2d_component::token_matches(given.trim_ascii(), &token)
                });
                if good {
                    self.buffer.drain(..=end);
                    self.consumed();
                    return true;
                }
                break;
            }
            if self.buffer.len() > MAX_AUTH_LINE {
                break;
            }
            match self.read_more().await {
                Read::Data => {}
                Read::Closed | Read::TimedOut => return false,
            }
        }
        self.intake.reject(RejectReason::Unauthorized, 1);
        let line = json!({"error": "this server requires a first line `AUTH <token>` (the token of http.token or tcp.token); closing"});
        self.reply(format!("{line}\n").as_bytes()).await;
        false
    }

    /// Reads an `ACK durable` line if the connection starts with one; false
    /// (the peer told why) when it asks for durability without persistence.
    async fn ack_mode(&mut self, durability: Arc<Durability>) -> bool {
        const LINE: &[u8] = b"ACK durable";
        while self.buffer.len() <= LINE.len() && LINE.starts_with(self.buffer.trim_ascii_end()) {
            match self.read_more().await {
                Read::Data => {}
                Read::Closed | Read::TimedOut => return true,
            }
        }
        let Some(rest) = self.buffer.strip_prefix(LINE) else {
            return true;
        };
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return true;
        };
        if !rest[..end].trim_ascii().is_empty() {
            return true;
        }
        self.buffer.drain(..LINE.len() + end + 1);
        self.consumed();
        if !durability.has_sink() {
            let line = json!({"error": "ACK durable needs persistence, and this server keeps everything in memory; closing"});
            self.reply(format!("{line}\n").as_bytes()).await;
            return false;
        }
        self.durable = Some(durability);
        true
    }

    /// With durable acknowledgements, tells the peer once the lines before
    /// `through_line` are on disk; false if the connection broke.
    async fn acknowledge(&mut self, outcome: &Outcome, through_line: usize) -> bool {
        let (Some(durability), Outcome::Applied(report)) = (&self.durable, outcome) else {
            return true;
        };
        let durable = durability
            .wait_for(report.settled, self.config.partial_timeout)
            .await;
        let line = if durable {
            json!({"durable_through_line": through_line})
        } else {
            json!({"error": "not made durable in time; resend these lines", "through_line": through_line})
        };
        self.reply(format!("{line}\n").as_bytes()).await
    }
}

async fn connection(
    stream: Connection,
    intake: Intake,
    config: Arc<TcpConfig>,
    durability: Arc<Durability>,
) {
    let mut reader = Reader {
        stream,
        buffer: Vec::new(),
        partial_since: None,
        config,
        intake,
        durable: None,
    };
    read_connection(&mut reader, durability).await;
    // The peer may still be sending when an error line ends the connection:
    // a gentle close lets it read the line instead of a reset.
    reader.stream.close_gently().await;
}

/// Reads `reader`'s connection until it ends (its peer left, a timeout, or
/// an error the peer was told).
async fn read_connection(reader: &mut Reader, durability: Arc<Durability>) {
    if !reader.authenticate().await || !reader.ack_mode(durability).await {
        return;
    }
    // Read until the first 4 bytes decide the protocol.
    while reader.buffer.len() < BINARY_MAGIC.len() {
        if BINARY_MAGIC.starts_with(&reader.buffer) || reader.buffer.is_empty() {
            match reader.read_more().await {
                Read::Data => {}
                Read::TimedOut => return,
                Read::Closed => {
                    if !reader.buffer.is_empty() && !BINARY_MAGIC.starts_with(&reader.buffer) {
                        lines(reader).await;
                    }
                    return;
                }
            }
        } else {
            break;
        }
    }
    if reader.buffer.starts_with(BINARY_MAGIC) {
        reader.buffer.drain(..BINARY_MAGIC.len());
        units(reader).await;
    } else {
        lines(reader).await;
    }
}

async fn lines(reader: &mut Reader) {
    let mut line_number = 0usize;
    loop {
        // Apply every complete line in the buffer, then read more.
        if let Some(end) = complete_lines(&reader.buffer) {
            let rest = reader.buffer.split_off(end);
            let chunk = std::mem::replace(&mut reader.buffer, rest);
            reader.consumed();
            let count = memchr::memchr_iter(b'\n', &chunk).count();
            let outcome = ingest(&reader.intake, chunk, Format::Ndjson).await;
            let errors = error_lines(&outcome, line_number);
            line_number += count;
            if !errors.is_empty() && !reader.reply(&errors).await {
                return;
            }
            if !reader.acknowledge(&outcome, line_number).await {
                return;
            }
        }
        let max_line = reader.config.max_line;
        if reader.buffer.len() > max_line {
            let message = json!({"line": line_number + 1, "error": format!("a line is longer than {max_line} bytes (tcp.max_line); closing")});
            reader.reply(format!("{message}\n").as_bytes()).await;
            reader.intake.reject(RejectReason::LineTooLong, 1);
            return;
        }
        match reader.read_more().await {
            Read::Data => {}
            Read::TimedOut => return,
            Read::Closed => {
                // The last line may lack its newline.
                if reader.buffer.iter().any(|b| !b.is_ascii_whitespace()) {
                    let buffer = std::mem::take(&mut reader.buffer);
                    let outcome = ingest(&reader.intake, buffer, Format::Ndjson).await;
                    let errors = error_lines(&outcome, line_number);
                    reader.reply(&errors).await;
                    reader.acknowledge(&outcome, line_number + 1).await;
                }
                return;
            }
        }
    }
}

async fn units(reader: &mut Reader) {
    let mut unit_number = 1usize;
    loop {
        loop {
            let max_line = reader.config.max_line;
            let len = match next_unit(&reader.buffer, max_line) {
                Frame::Incomplete => break,
                Frame::TooLong(length) => {
                    let message = json!({"unit": unit_number, "error": format!("a unit of {length} bytes exceeds tcp.max_line ({max_line}); closing")});
                    reader.reply(format!("{message}\n").as_bytes()).await;
                    reader.intake.reject(RejectReason::UnitTooLong, 1);
                    return;
                }
                Frame::Unit { kind, len } => (kind, len),
            };
            let (kind, len) = len;
            let rest = reader.buffer.split_off(UNIT_HEADER + len);
            let unit = std::mem::replace(&mut reader.buffer, rest);
            reader.consumed();
            let payload = unit[UNIT_HEADER..].to_vec();
            let reply = if kind == UNIT_SAMPLES {
                let format = match first_significant(&payload) {
                    Some((_, b'{')) if payload.contains(&b'\n') => Format::Ndjson,
                    _ => Format::Json,
                };
                let outcome = ingest(&reader.intake, payload, format).await;
                error_lines(&outcome, 0)
            } else {
                reader.intake.reject(RejectReason::UnknownUnitKind, 1);
                format!("{}\n", json!({"unit": unit_number, "error": format!("unit kind {kind} is not supported; kind 1 carries samples")})).into_bytes()
            };
            unit_number += 1;
            if !reply.is_empty() && !reader.reply(&reply).await {
                return;
            }
        }
        match reader.read_more().await {
            Read::Data => {}
            Read::Closed | Read::TimedOut => return,
        }
    }
}
