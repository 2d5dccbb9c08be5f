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

use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use dav2d_component::{Admission, Intake, Outcome};
use dav2d_core::RejectReason;
use dav2d_wire::{Format, first_significant};

use crate::config::TcpConfig;

/// The magic that selects binary framing.
pub const BINARY_MAGIC: &[u8; 4] = b"DV2B";
/// Unit kind: a JSON or NDJSON payload of samples.
pub const UNIT_SAMPLES: u8 = 1;

const READ_CHUNK: usize = 256 << 10;

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<TcpConfig>,
    intake: Intake,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let (intake, config) = (intake.clone(), Arc::clone(&config));
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = connection(stream, intake, config) => {}
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

async fn connection(mut stream: TcpStream, intake: Intake, config: Arc<TcpConfig>) {
    let _ = stream.set_nodelay(true);
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Read until the first 4 bytes decide the protocol.
    while buffer.len() < BINARY_MAGIC.len() {
        match read_more(&mut stream, &mut buffer).await {
            Some(0) | None => {
                if !buffer.is_empty() && !BINARY_MAGIC.starts_with(&buffer) {
                    lines(stream, buffer, intake, config).await;
                }
                return;
            }
            Some(_) => {}
        }
    }
    if buffer.starts_with(BINARY_MAGIC) {
        buffer.drain(..BINARY_MAGIC.len());
        units(stream, buffer, intake, config).await;
    } else {
        lines(stream, buffer, intake, config).await;
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

async fn lines(mut stream: TcpStream, mut buffer: Vec<u8>, intake: Intake, config: Arc<TcpConfig>) {
    let mut line_number = 0usize;
    loop {
        // Apply every complete line in the buffer, then read more.
        if let Some(last_newline) = memchr::memrchr(b'\n', &buffer) {
            let rest = buffer.split_off(last_newline + 1);
            let chunk = std::mem::replace(&mut buffer, rest);
            let count = memchr::memchr_iter(b'\n', &chunk).count();
            let outcome = ingest(&intake, chunk, Format::Ndjson).await;
            let errors = error_lines(&outcome, line_number);
            line_number += count;
            if !errors.is_empty() && stream.write_all(&errors).await.is_err() {
                return;
            }
        }
        if buffer.len() > config.max_line {
            let message = json!({"line": line_number, "error": format!("a line is longer than {} bytes (tcp.max_line); closing", config.max_line)});
            let _ = stream.write_all(format!("{message}\n").as_bytes()).await;
            intake.reject(RejectReason::LineTooLong, 1);
            return;
        }
        match read_more(&mut stream, &mut buffer).await {
            Some(0) | None => {
                // The last line may lack its newline.
                if buffer.iter().any(|b| !b.is_ascii_whitespace()) {
                    let outcome = ingest(&intake, buffer, Format::Ndjson).await;
                    let errors = error_lines(&outcome, line_number);
                    let _ = stream.write_all(&errors).await;
                }
                return;
            }
            Some(_) => {}
        }
    }
}

async fn units(mut stream: TcpStream, mut buffer: Vec<u8>, intake: Intake, config: Arc<TcpConfig>) {
    let mut unit_number = 0usize;
    loop {
        while buffer.len() >= 5 {
            let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
            if length > config.max_line {
                let message = json!({"unit": unit_number, "error": format!("a unit of {length} bytes exceeds tcp.max_line ({}); closing", config.max_line)});
                let _ = stream.write_all(format!("{message}\n").as_bytes()).await;
                intake.reject(RejectReason::UnitTooLong, 1);
                return;
            }
            if buffer.len() < 5 + length {
                break;
            }
            let kind = buffer[4];
            let rest = buffer.split_off(5 + length);
            let unit = std::mem::replace(&mut buffer, rest);
            let payload = unit[5..].to_vec();
            let reply = if kind == UNIT_SAMPLES {
                let format = match first_significant(&payload) {
                    Some((_, b'{')) if payload.contains(&b'\n') => Format::Ndjson,
                    _ => Format::Json,
                };
                let outcome = ingest(&intake, payload, format).await;
                error_lines(&outcome, 0)
            } else {
                intake.reject(RejectReason::UnknownUnitKind, 1);
                format!("{}\n", json!({"unit": unit_number, "error": format!("unit kind {kind} is not supported; kind 1 carries samples")})).into_bytes()
            };
            unit_number += 1;
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
