//! The ingest routes (`POST /upload`, `POST /ingest/{stream}`): media type
//! and encoding, body limits and timeouts, refusing a body that cannot be
//! JSON from its first bytes, parse-while-arriving for large arrays, and the
//! answer (how many samples were accepted, why others were rejected).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use dav2d_component::{Admission, BodyPermit, Intake};
use dav2d_core::RejectReason;
use dav2d_wire::{ArrayCutter, BodyError, Format, ParsedPiece, PieceJob, check_json_start};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::oneshot::Receiver;

use crate::answer::{Ack, Lane, budget_spent, finish, on_pool, pool_dropped, run_on};
use crate::inflating::{Inflating, STREAMED_COMPRESSED, ingest_inflating};
use crate::state::{AppState, drain, error_response, json_response};

/// What a body of unknown length takes from the body budget at first; it
/// takes more as it arrives.
const BUDGET_STEP: usize = 64 << 10;

/// Bodies smaller than this are parsed on the I/O thread: handing them to
/// the pool would cost more than parsing them.
const INLINE_BODY: usize = 16 << 10;

// The handlers take the whole request rather than a `HeaderMap`, which
// axum would clone out of it.
pub(crate) async fn upload(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ack = Ack::of(&parts.uri);
    ingest(state, "/upload", None, &parts.headers, body, ack).await
}

pub(crate) async fn ingest_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let ack = Ack::of(&parts.uri);
    ingest(state, "/ingest", Some(stream), &parts.headers, body, ack).await
}

/// The request's format from `Content-Type` (JSON when absent).
fn format_of(headers: &HeaderMap) -> Result<Format, String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let text = value.to_str().unwrap_or("").to_ascii_lowercase();
    let media = text.split(';').next().unwrap_or("").trim();
    match media {
        "application/json" | "text/json" | "" => Ok(Format::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(Format::Ndjson),
        other => Err(format!(
            "unsupported Content-Type '{other}'; send application/json or application/x-ndjson"
        )),
    }
}

fn encoding_of(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(
            "more than one Content-Encoding header; send one (identity, gzip or zstd)".to_string(),
        );
    }
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(None),
        "gzip" | "x-gzip" | "zstd" => Ok(Some(text)),
        other => Err(format!(
            "unsupported Content-Encoding '{other}'; send identity, gzip or zstd"
        )),
    }
}

enum ReadError {
    TooLarge,
    /// The body budget could not cover what arrived; the unread rest and
    /// how much was read (drained, so the client can read the 503).
    Budget(Body, usize),
    TimedOut,
    /// Refused from its first bytes; the unread rest and how much was read.
    NotJson(BodyError, Body, usize),
    Broken(String),
}

/// Reads the body up to `limit` bytes within `timeout`. When `check_start`
/// is set, the first bytes are checked to be JSON before the rest is read.
async fn read_body(
    body: Body,
    expected: Option<usize>,
    limit: usize,
    timeout: Duration,
    check_start: bool,
    budget: &mut BodyPermit,
) -> Result<Vec<u8>, ReadError> {
    let mut body = body;
    let mut check = ChunkCheck::new(limit, check_start, budget);
    // Sized from Content-Length (already checked against the limit) up to
    // what the budget holds for it: an announced size that never arrives
    // takes no memory; what does arrive grows the buffer.
    let mut bytes: Vec<u8> = Vec::with_capacity(expected.unwrap_or(0).min(limit).min(check.held()));
    // A small body usually arrived with its headers: take what is already
    // there without arming a timer.
    loop {
        match body.frame().now_or_never() {
            Some(Some(chunk)) => bytes.extend_from_slice(&check.take(chunk, &mut body)?),
            Some(None) => return Ok(bytes),
            None => break,
        }
    }
    let read = async {
        while let Some(chunk) = body.frame().await {
            bytes.extend_from_slice(&check.take(chunk, &mut body)?);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(bytes),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ReadError::TimedOut),
    }
}

/// Checks a body's chunks as they arrive: the size limit, the body budget
/// (taking more of it as a body of unknown length grows), and (when asked)
/// that its first significant byte can start JSON.
struct ChunkCheck<'a> {
    received: usize,
    limit: usize,
    checked: bool,
    budget: &'a mut BodyPermit,
}

impl<'a> ChunkCheck<'a> {
    fn new(limit: usize, check_start: bool, budget: &'a mut BodyPermit) -> Self {
        Self {
            received: 0,
            limit,
            checked: !check_start,
            budget,
        }
    }

    /// Bytes of the budget the body holds now.
    fn held(&self) -> usize {
        self.budget.bytes()
    }

    /// The data of one chunk (empty for a trailers chunk), or why the body
    /// is refused; on `NotJson` the unread rest of `body` goes with the error.
    fn take(
        &mut self,
        chunk: Result<hyper::body::Frame<Bytes>, axum::Error>,
        body: &mut Body,
    ) -> Result<Bytes, ReadError> {
        let chunk = chunk.map_err(|e| ReadError::Broken(e.to_string()))?;
        let Ok(data) = chunk.into_data() else {
            return Ok(Bytes::new());
        };
        if self.received + data.len() > self.limit {
            return Err(ReadError::TooLarge);
        }
        let held = self.budget.bytes();
        let needed = (self.received + data.len()).saturating_sub(held);
        // A step at a time when there is room, else just what arrived.
        if needed > 0 && !self.budget.grow(needed.max(BUDGET_STEP)) && !self.budget.grow(needed) {
            let rest = std::mem::replace(body, Body::empty());
            return Err(ReadError::Budget(rest, self.received + data.len()));
        }
        let before = self.received;
        self.received += data.len();
        if !self.checked && data.iter().any(|b| !b.is_ascii_whitespace()) {
            // Chunks before this one were whitespace only.
            if let Err(mut error) = check_json_start(&data) {
                error.offset += before;
                let rest = std::mem::replace(body, Body::empty());
                return Err(ReadError::NotJson(error, rest, self.received));
            }
            self.checked = true;
        }
        Ok(data)
    }
}

async fn ingest(
    state: AppState,
    endpoint: &'static str,
    stream: Option<String>,
    headers: &HeaderMap,
    body: Body,
    ack: Ack,
) -> Response {
    let response = match ack {
        Ack::Unknown => {
            drain(body, state.config.max_body, state.config.body_timeout).await;
            error_response(
                StatusCode::BAD_REQUEST,
                "ack must be 'applied' (answer once applied) or 'durable' (answer once on disk)",
            )
        }
        Ack::Durable if !state.durability.has_sink() => {
            drain(body, state.config.max_body, state.config.body_timeout).await;
            error_response(
                StatusCode::BAD_REQUEST,
                "ack=durable needs persistence, and this server keeps everything in memory; enable persistence or leave ack out",
            )
        }
        _ => ingest_inner(&state, stream, headers, body, ack).await,
    };
    state
        .intake
        .metrics()
        .request(endpoint, response.status().as_u16());
    response
}

async fn ingest_inner(
    state: &AppState,
    stream: Option<String>,
    headers: &HeaderMap,
    body: Body,
    ack: Ack,
) -> Response {
    let intake = &state.intake;
    let max_body = state.config.max_body;
    let format = match format_of(headers) {
        Ok(format) => format,
        Err(message) => {
            intake.reject(RejectReason::UnsupportedMediaType, 1);
            drain(body, max_body, state.config.body_timeout).await;
            return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
        }
    };
    let encoding = match encoding_of(headers) {
        Ok(encoding) => encoding,
        Err(message) => {
            intake.reject(RejectReason::UnsupportedEncoding, 1);
            drain(body, max_body, state.config.body_timeout).await;
            return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max_body) {
        intake.reject(RejectReason::TooLarge, 1);
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {} bytes; this server accepts at most {max_body} (http.max_body)",
                declared.unwrap_or(0)
            ),
        );
    }
    // The body's share of the budget is held until it was applied; it is
    // charged as bytes arrive (a first step, then more), not as announced.
    let first = declared.unwrap_or(BUDGET_STEP).min(BUDGET_STEP);
    let Some(mut budget) = intake.reserve_body(first) else {
        // Discarded, never buffered: the client can read the answer.
        drain(body, max_body, state.config.body_timeout).await;
        return budget_spent();
    };
    if format == Format::Json
        && encoding.is_none()
        && let Some(expected) = declared
        && expected >= state.intake.parse_options().parallel_threshold
    {
        return ingest_streamed(state, stream, body, expected, &mut budget, ack).await;
    }
    let check_start = format == Format::Json && encoding.is_none();
    let bytes = match read_body(
        body,
        declared,
        max_body,
        state.config.body_timeout,
        check_start,
        &mut budget,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(error) => {
            // Nothing of it is kept: what is still drained is discarded.
            budget.release();
            return refuse(state, error).await;
        }
    };
    if format == Format::Json
        && bytes.len() >= STREAMED_COMPRESSED
        && let Some(encoding) = encoding
    {
        // Inflated as a stream into pieces; this permit holds the
        // compressed bytes until the answer.
        let response = match ingest_inflating(state, stream, bytes, encoding, ack).await {
            Inflating::Answered(response) => response,
            // Not an array: parsed whole, its permit held until applied.
            Inflating::Whole {
                body,
                stream,
                permit,
            } => ingest_bytes(state, body, None, Format::Json, stream, ack, Some(permit)).await,
        };
        drop(budget);
        return response;
    }
    // The permit goes with the body: what it inflates to is charged to it.
    ingest_bytes(state, bytes, encoding, format, stream, ack, Some(budget)).await
}

/// Ingests a body read whole: small ones on this I/O thread when the engine
/// is free, others on the pool.
async fn ingest_bytes(
    state: &AppState,
    bytes: Vec<u8>,
    encoding: Option<String>,
    format: Format,
    stream: Option<String>,
    ack: Ack,
    permit: Option<BodyPermit>,
) -> Response {
    if encoding.is_none()
        && bytes.len() < INLINE_BODY
        && let Some(outcome) = state.intake.ingest_now(&bytes, format, stream.as_deref())
    {
        return finish(state, outcome, ack).await;
    }
    let small = encoding.is_none() && bytes.len() < INLINE_BODY;
    let ingest = move |intake: &Intake| match permit {
        // Held until the body is applied (dropped with this closure).
        Some(mut permit) => intake.ingest_charged(
            &bytes,
            encoding.as_deref(),
            format,
            stream.as_deref(),
            Admission::Refuse,
            &mut permit,
        ),
        None => intake.ingest(
            &bytes,
            encoding.as_deref(),
            format,
            stream.as_deref(),
            Admission::Refuse,
        ),
    };
    let lane = if small { Lane::Own } else { Lane::Pool };
    let outcome = run_on(&state.intake, lane, ingest);
    match outcome.await {
        Ok(outcome) => finish(state, outcome, ack).await,
        Err(_) => pool_dropped(),
    }
}

/// The answer to a body that could not be read, draining what a client
/// still sends of a refused body so it can read the answer.
async fn refuse(state: &AppState, error: ReadError) -> Response {
    let intake = &state.intake;
    let max_body = state.config.max_body;
    match error {
        ReadError::Budget(rest, read) => {
            intake.reject(RejectReason::BodyBudget, 1);
            // Discarded as it comes (nothing is kept), as nginx's lingering
            // close does, so the client reads the 503 instead of a reset.
            drain(
                rest,
                max_body.saturating_sub(read),
                state.config.body_timeout,
            )
            .await;
            budget_spent()
        }
        ReadError::TooLarge => {
            intake.reject(RejectReason::TooLarge, 1);
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body exceeds {max_body} bytes (http.max_body)"),
            )
        }
        ReadError::TimedOut => {
            intake.reject(RejectReason::Timeout, 1);
            error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    state.config.body_timeout.as_secs_f64()
                ),
            )
        }
        ReadError::NotJson(error, rest, read) => {
            intake.reject(error.reason, 1);
            drain(
                rest,
                max_body.saturating_sub(read),
                state.config.body_timeout,
            )
            .await;
            json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": error.to_string(), "offset": error.offset}),
            )
        }
        ReadError::Broken(message) => {
            intake.reject(RejectReason::BrokenBody, 1);
            error_response(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {message}"),
            )
        }
    }
}

/// Smallest and largest piece a large array body is cut into while it
/// arrives.
const PIECE_BYTES: (usize, usize) = (256 << 10, 8 << 20);

/// A body still arriving after this long is parsed while it arrives. One
/// that comes in faster (a local sender) is cut into pieces once in: on a
/// busy machine, parsing beside the receiving only slows both.
const PARSE_WHILE_ARRIVING_AFTER: Duration = Duration::from_millis(20);

/// Reads a large JSON body and, if it is slow to arrive, parses it at the
/// same time: each piece of the array is parsed on the pool as soon as it is
/// in, so little is left to parse when the last byte arrives. Records are
/// applied only once the whole body parsed, so a broken body is still
/// refused whole.
pub(crate) async fn ingest_streamed(
    state: &AppState,
    stream: Option<String>,
    body: Body,
    expected: usize,
    budget: &mut BodyPermit,
    ack: Ack,
) -> Response {
    let intake = &state.intake;
    let workers = intake.workers().max(1);
    let mut cutter =
        ArrayCutter::new((expected / (4 * workers)).clamp(PIECE_BYTES.0, PIECE_BYTES.1));
    let stream: Option<Arc<str>> = stream.map(Arc::from);
    let mut parsing = Vec::new();
    // Set when the body is refused: its pieces still queued skip the parse.
    let refused = Arc::new(AtomicBool::new(false));
    let spawn = |job: PieceJob, parsing: &mut Vec<Receiver<Option<ParsedPiece>>>| {
        let stream = stream.clone();
        let refused = Arc::clone(&refused);
        parsing.push(on_pool(intake, move |_| {
            (!refused.load(Ordering::Relaxed)).then(|| job.parse(stream.as_deref()))
        }));
    };
    let arriving = std::time::Instant::now();
    let read = async {
        let mut body = body;
        let mut check = ChunkCheck::new(state.config.max_body, true, budget);
        while let Some(chunk) = body.frame().await {
            cutter.push(check.take(chunk, &mut body)?);
            if arriving.elapsed() >= PARSE_WHILE_ARRIVING_AFTER {
                for job in cutter.cut() {
                    spawn(job, &mut parsing);
                }
            }
        }
        Ok(())
    };
    let error = match tokio::time::timeout(state.config.body_timeout, read).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(_) => Some(ReadError::TimedOut),
    };
    if let Some(error) = error {
        // The pieces already on the pool hold bytes of this body: its share
        // of the budget is given back only once they are done (they skip
        // the parse now), so refused bodies cannot pile up behind a long one.
        refused.store(true, Ordering::Relaxed);
        for receiver in parsing {
            let _ = receiver.await;
        }
        budget.release();
        return refuse(state, error).await;
    }
    // A body that came in quickly is cut now, into pieces parsed on every
    // worker where its chunks lie (no copy of the whole body).
    let while_arriving = cutter.has_pieces();
    let rest: Vec<PieceJob> = cutter.cut().into_iter().chain(cutter.finish()).collect();
    if !cutter.has_pieces() {
        // Not an array (or empty): parsed whole.
        let stream = stream.as_deref().map(str::to_string);
        return ingest_bytes(state, cutter.body(), None, Format::Json, stream, ack, None).await;
    }
    for job in rest {
        spawn(job, &mut parsing);
    }
    let mut pieces = Vec::with_capacity(parsing.len());
    for receiver in parsing {
        match receiver.await {
            Ok(Some(piece)) => pieces.push(piece),
            Ok(None) | Err(_) => return pool_dropped(),
        }
    }
    let outcome = on_pool(intake, move |intake| {
        intake.ingest_pieces(&pieces, &cutter, stream.as_deref(), while_arriving)
    });
    match outcome.await {
        Ok(outcome) => finish(state, outcome, ack).await,
        Err(_) => pool_dropped(),
    }
}
