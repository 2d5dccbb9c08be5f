//! The TCP server: NDJSON samples, one per line, on many connections; or
//! length-prefixed binary frames.
//!
//! A connection is read in chunks; each chunk's complete lines are parsed
//! and applied before the next read, so a slow engine (a full `all` queue)
//! stops the reads and TCP flow control pushes back on the sender. Memory
//! per connection is bounded by `max_line` plus one read buffer. Rejected
//! lines are answered with one NDJSON line each:
//! `{"line": 12, "error": "..."}`.
//!
//! # Binary framing
//!
//! A connection that starts with the 4 bytes `DV2B` carries frames instead:
//! a 4-byte big-endian payload length, a 1-byte kind, then the payload.
//! Kind `1` is a JSON or NDJSON payload of samples, parsed like an HTTP body;
//! other kinds are reserved for frame streams and are refused with an error
//! line. A frame longer than `max_line` ends the connection.

use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::pipeline::Format;
use crate::server::{Outcome, Shared, TcpConfig};

/// The magic that selects binary framing.
pub const BINARY_MAGIC: &[u8; 4] = b"DV2B";
/// Frame kind: a JSON or NDJSON payload of samples.
pub const FRAME_SAMPLES: u8 = 1;

const READ_CHUNK: usize = 256 << 10;

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: TcpConfig,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let (shared, config) = (Arc::clone(&shared), Arc::clone(&config));
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = connection(stream, shared, config) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "Accepting a TCP connection failed.");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Parses and applies `body` on the pool, waiting for room in a full queue.
async fn ingest(shared: &Arc<Shared>, body: Vec<u8>, format: Format) -> Outcome {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let worker = Arc::clone(shared);
    shared.pool.spawn(move || {
        let _ = sender.send(worker.ingest(&body, None, format, None, "tcp", true));
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
                line(json!({"line": first_line + index, "error": error}));
            }
        }
        Outcome::BadBody(error) => line(json!({"line": first_line, "error": error.to_string()})),
        Outcome::TooLarge(message) | Outcome::BadEncoding(message) => {
            line(json!({"error": message}))
        }
        Outcome::Overloaded => line(json!({"error": "overloaded"})),
    }
    out
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>, config: Arc<TcpConfig>) {
    let _ = stream.set_nodelay(true);
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Read until the first 4 bytes decide the protocol.
    while buffer.len() < BINARY_MAGIC.len() {
        match read_more(&mut stream, &mut buffer).await {
            Some(0) | None => {
                if !buffer.is_empty() && !BINARY_MAGIC.starts_with(&buffer) {
                    lines(stream, buffer, shared, config).await;
                }
                return;
            }
            Some(_) => {}
        }
    }
    if buffer.starts_with(BINARY_MAGIC) {
        buffer.drain(..BINARY_MAGIC.len());
        frames(stream, buffer, shared, config).await;
    } else {
        lines(stream, buffer, shared, config).await;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    let start = buffer.len();
    buffer.resize(start + READ_CHUNK, 0);
    let read = stream.read(&mut buffer[start..]).await;
    match read {
        Ok(n) => {
            buffer.truncate(start + n);
            Some(n)
        }
        Err(error) => {
            buffer.truncate(start);
            tracing::debug!(%error, "Reading a TCP connection failed.");
            None
        }
    }
}

async fn lines(
    mut stream: TcpStream,
    mut buffer: Vec<u8>,
    shared: Arc<Shared>,
    config: Arc<TcpConfig>,
) {
    let mut line_number = 0usize;
    loop {
        // Apply every complete line in the buffer, then read more.
        if let Some(last_newline) = memchr::memrchr(b'\n', &buffer) {
            let rest = buffer.split_off(last_newline + 1);
            let chunk = std::mem::replace(&mut buffer, rest);
            let count = memchr::memchr_iter(b'\n', &chunk).count();
            let outcome = ingest(&shared, chunk, Format::Ndjson).await;
            let errors = error_lines(&outcome, line_number);
            line_number += count;
            if !errors.is_empty() && stream.write_all(&errors).await.is_err() {
                return;
            }
        }
        if buffer.len() > config.max_line {
            let message = json!({"line": line_number, "error": format!("a line is longer than {} bytes (tcp.max_line); closing", config.max_line)});
            let _ = stream.write_all(format!("{message}\n").as_bytes()).await;
            shared.metrics.reject("line_too_long", "transport", 1);
            return;
        }
        match read_more(&mut stream, &mut buffer).await {
            Some(0) | None => {
                // The last line may lack its newline.
                if buffer.iter().any(|b| !b.is_ascii_whitespace()) {
                    let outcome = ingest(&shared, buffer, Format::Ndjson).await;
                    let errors = error_lines(&outcome, line_number);
                    let _ = stream.write_all(&errors).await;
                }
                return;
            }
            Some(_) => {}
        }
    }
}

async fn frames(
    mut stream: TcpStream,
    mut buffer: Vec<u8>,
    shared: Arc<Shared>,
    config: Arc<TcpConfig>,
) {
    let mut frame_number = 0usize;
    loop {
        while buffer.len() >= 5 {
            let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
            if length > config.max_line {
                let message = json!({"frame": frame_number, "error": format!("a frame of {length} bytes exceeds tcp.max_line ({}); closing", config.max_line)});
                let _ = stream.write_all(format!("{message}\n").as_bytes()).await;
                shared.metrics.reject("frame_too_long", "transport", 1);
                return;
            }
            if buffer.len() < 5 + length {
                break;
            }
            let kind = buffer[4];
            let rest = buffer.split_off(5 + length);
            let frame = std::mem::replace(&mut buffer, rest);
            let payload = frame[5..].to_vec();
            let reply = if kind == FRAME_SAMPLES {
                let format = match crate::scan::first_significant(&payload) {
                    Some((_, b'{')) if payload.contains(&b'\n') => Format::Ndjson,
                    _ => Format::Json,
                };
                let outcome = ingest(&shared, payload, format).await;
                error_lines(&outcome, 0)
            } else {
                shared.metrics.reject("unknown_frame_kind", "transport", 1);
                format!("{}\n", json!({"frame": frame_number, "error": format!("frame kind {kind} is not supported; kind 1 carries samples")})).into_bytes()
            };
            frame_number += 1;
            if !reply.is_empty() && stream.write_all(&reply).await.is_err() {
                return;
            }
        }
        match read_more(&mut stream, &mut buffer).await {
            Some(0) | None => return,
            Some(_) => {}
        }
    }
}
