//! The HTTP API: ingest endpoints, state, graph, server-sent events,
//! metrics and health, with bearer-token auth and slow-client timeouts.
//!
//! Connections are served by hyper directly so a client that sends its
//! headers too slowly is cut off (`header_timeout`); a body that trickles
//! in past `body_timeout` gets 408. Oversized bodies are refused from their
//! `Content-Length` before a byte is read, and a body that cannot be JSON is
//! refused from its first bytes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dav2d_core::{Reading, SubscriptionMode, Update, Value};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value as Json, json};
use tokio::sync::oneshot::Receiver;
use tokio::sync::watch;

use crate::pipeline::{ArrayCutter, Format, ParsedPiece, PieceJob};
use crate::scan::{BodyError, check_json_start};
use crate::server::{HttpConfig, Outcome, Shared};

/// Bodies smaller than this are parsed on the I/O thread: handing them to
/// the pool would cost more than parsing them.
const INLINE_BODY: usize = 16 << 10;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    config: Arc<HttpConfig>,
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: HttpConfig,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let header_timeout = config.header_timeout;
    let state = AppState {
        shared,
        config: Arc::new(config),
    };
    let app = router(state);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, _) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "Accepting an HTTP connection failed.");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "HTTP connection ended with an error.");
                    }
                }
                _ = stop.changed() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/upload", post(upload))
        .route("/ingest/{stream}", post(ingest_stream))
        .route("/state/{name}", get(state_of))
        .route("/graph", get(graph))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz));
    // Without a token there is nothing to check: no layer, no per-request cost.
    let routes = if state.config.token.is_some() {
        routes.layer(middleware::from_fn_with_state(state.clone(), authorize))
    } else {
        routes
    };
    routes.with_state(state)
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token
        && request.uri().path() != "/healthz"
    {
        let expected = format!("Bearer {token}");
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            state.shared.metrics.reject("unauthorized", "transport", 1);
            state.shared.metrics.request(request.uri().path(), 401);
            drain(
                request.into_body(),
                state.config.max_body,
                state.config.body_timeout,
            )
            .await;
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                "this server requires 'Authorization: Bearer <token>' (http.token)",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

// The handlers take the whole request rather than a `HeaderMap`, which
// axum would clone out of it.
async fn upload(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    ingest(state, "/upload", None, &parts.headers, body).await
}

async fn ingest_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    ingest(state, "/ingest", Some(stream), &parts.headers, body).await
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
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(None);
    };
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
) -> Result<Vec<u8>, ReadError> {
    let mut body = body;
    let mut check = FrameCheck::new(limit, check_start);
    // Sized from Content-Length (already checked against the limit), so a
    // large body is not copied again and again as the buffer grows.
    let mut bytes: Vec<u8> = Vec::with_capacity(expected.unwrap_or(0).min(limit));
    // A small body usually arrived with its headers: take what is already
    // there without arming a timer.
    loop {
        match body.frame().now_or_never() {
            Some(Some(frame)) => bytes.extend_from_slice(&check.take(frame, &mut body)?),
            Some(None) => return Ok(bytes),
            None => break,
        }
    }
    let read = async {
        while let Some(frame) = body.frame().await {
            bytes.extend_from_slice(&check.take(frame, &mut body)?);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(bytes),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ReadError::TimedOut),
    }
}

/// Checks a body's frames as they arrive: the size limit, and (when asked)
/// that its first significant byte can start JSON.
struct FrameCheck {
    received: usize,
    limit: usize,
    checked: bool,
}

impl FrameCheck {
    fn new(limit: usize, check_start: bool) -> Self {
        Self {
            received: 0,
            limit,
            checked: !check_start,
        }
    }

    /// The data of one frame (empty for a trailers frame), or why the body
    /// is refused; on `NotJson` the unread rest of `body` goes with the error.
    fn take(
        &mut self,
        frame: Result<hyper::body::Frame<Bytes>, axum::Error>,
        body: &mut Body,
    ) -> Result<Bytes, ReadError> {
        let frame = frame.map_err(|e| ReadError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            return Ok(Bytes::new());
        };
        if self.received + data.len() > self.limit {
            return Err(ReadError::TooLarge);
        }
        let before = self.received;
        self.received += data.len();
        if !self.checked && data.iter().any(|b| !b.is_ascii_whitespace()) {
            // Frames before this one were whitespace only.
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

/// Discards (never buffers) up to `limit` bytes of a refused body within
/// `timeout`, so a client that is still sending can read the answer instead
/// of failing with a broken pipe.
async fn drain(mut body: Body, limit: usize, timeout: Duration) {
    let discard = async {
        let mut discarded = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            discarded += frame.data_ref().map_or(0, |d| d.len());
            if discarded > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, discard).await;
}

async fn ingest(
    state: AppState,
    endpoint: &'static str,
    stream: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let response = ingest_inner(&state, stream, headers, body).await;
    state
        .shared
        .metrics
        .request(endpoint, response.status().as_u16());
    response
}

async fn ingest_inner(
    state: &AppState,
    stream: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let metrics = &state.shared.metrics;
    let max_body = state.config.max_body;
    let format = match format_of(headers) {
        Ok(format) => format,
        Err(message) => {
            metrics.reject("unsupported_media_type", "transport", 1);
            drain(body, max_body, state.config.body_timeout).await;
            return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
        }
    };
    let encoding = match encoding_of(headers) {
        Ok(encoding) => encoding,
        Err(message) => {
            metrics.reject("unsupported_encoding", "transport", 1);
            drain(body, max_body, state.config.body_timeout).await;
            return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max_body) {
        metrics.reject("too_large", "transport", 1);
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {} bytes; this server accepts at most {max_body} (http.max_body)",
                declared.unwrap_or(0)
            ),
        );
    }
    if format == Format::Json
        && encoding.is_none()
        && let Some(expected) = declared
        && expected >= state.shared.parse.parallel_threshold
    {
        return ingest_streamed(state, stream, body, expected).await;
    }
    let check_start = format == Format::Json && encoding.is_none();
    let bytes = match read_body(
        body,
        declared,
        max_body,
        state.config.body_timeout,
        check_start,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(error) => return refuse(state, error).await,
    };
    ingest_bytes(state, bytes, encoding, format, stream).await
}

/// Ingests a body read whole: small ones on this I/O thread when the engine
/// is free, others on the pool.
async fn ingest_bytes(
    state: &AppState,
    bytes: Vec<u8>,
    encoding: Option<String>,
    format: Format,
    stream: Option<String>,
) -> Response {
    if encoding.is_none()
        && bytes.len() < INLINE_BODY
        && let Some(outcome) = state
            .shared
            .ingest_now(&bytes, format, stream.as_deref(), "http")
    {
        return respond(outcome);
    }
    let outcome = on_pool(&state.shared, move |shared| {
        shared.ingest(
            &bytes,
            encoding.as_deref(),
            format,
            stream.as_deref(),
            "http",
            false,
        )
    });
    match outcome.await {
        Ok(outcome) => respond(outcome),
        Err(_) => pool_dropped(),
    }
}

/// The answer to a body that could not be read, draining what a client
/// still sends of a refused body so it can read the answer.
async fn refuse(state: &AppState, error: ReadError) -> Response {
    let metrics = &state.shared.metrics;
    let max_body = state.config.max_body;
    match error {
        ReadError::TooLarge => {
            metrics.reject("too_large", "transport", 1);
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body exceeds {max_body} bytes (http.max_body)"),
            )
        }
        ReadError::TimedOut => {
            metrics.reject("timeout", "transport", 1);
            error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    state.config.body_timeout.as_secs_f64()
                ),
            )
        }
        ReadError::NotJson(error, rest, read) => {
            metrics.reject(error.reason, "transport", 1);
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
            metrics.reject("broken_body", "transport", 1);
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
/// that comes in faster (a local sender) is parsed whole once in: on a busy
/// machine, parsing beside the receiving only slows both.
const PARSE_WHILE_ARRIVING_AFTER: Duration = Duration::from_millis(20);

/// Reads a large JSON body and, if it is slow to arrive, parses it at the
/// same time: each piece of the array is parsed on the pool as soon as it is
/// in, so little is left to parse when the last byte arrives. Records are
/// applied only once the whole body parsed, so a broken body is still
/// refused whole.
async fn ingest_streamed(
    state: &AppState,
    stream: Option<String>,
    body: Body,
    expected: usize,
) -> Response {
    let shared = &state.shared;
    let workers = shared.pool.current_num_threads().max(1);
    let mut cutter =
        ArrayCutter::new((expected / (4 * workers)).clamp(PIECE_BYTES.0, PIECE_BYTES.1));
    let stream: Option<Arc<str>> = stream.map(Arc::from);
    let mut parsing = Vec::new();
    let spawn = |job: PieceJob, parsing: &mut Vec<Receiver<ParsedPiece>>| {
        let stream = stream.clone();
        parsing.push(on_pool(shared, move |_| job.parse(stream.as_deref())));
    };
    let arriving = std::time::Instant::now();
    let read = async {
        let mut body = body;
        let mut check = FrameCheck::new(state.config.max_body, true);
        while let Some(frame) = body.frame().await {
            cutter.push(check.take(frame, &mut body)?);
            if arriving.elapsed() >= PARSE_WHILE_ARRIVING_AFTER {
                for job in cutter.cut() {
                    spawn(job, &mut parsing);
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(state.config.body_timeout, read).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return refuse(state, error).await,
        Err(_) => return refuse(state, ReadError::TimedOut).await,
    }
    if !cutter.has_pieces() {
        // It came in quickly: parse it whole, one piece per worker.
        let stream = stream.as_deref().map(str::to_string);
        return ingest_bytes(state, cutter.body(), None, Format::Json, stream).await;
    }
    for job in cutter.cut().into_iter().chain(cutter.finish()) {
        spawn(job, &mut parsing);
    }
    let mut pieces = Vec::with_capacity(parsing.len());
    for receiver in parsing {
        match receiver.await {
            Ok(piece) => pieces.push(piece),
            Err(_) => return pool_dropped(),
        }
    }
    let outcome = on_pool(shared, move |shared| {
        shared.ingest_pieces(&pieces, &cutter, stream.as_deref())
    });
    match outcome.await {
        Ok(outcome) => respond(outcome),
        Err(_) => pool_dropped(),
    }
}

/// Runs `work` on the parser pool; the receiver gets its result.
fn on_pool<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Receiver<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let worker = Arc::clone(shared);
    shared.pool.spawn(move || {
        let _ = sender.send(work(&worker));
    });
    receiver
}

fn pool_dropped() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the parser pool dropped the request",
    )
}

fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Applied(report) if report.errors.is_empty() && report.rejected == 0 => {
            // The common answer, written without building a JSON tree.
            let mut response = (
                StatusCode::OK,
                format!(
                    "{{\"accepted\":{},\"rejected\":0,\"errors\":[]}}",
                    report.accepted
                ),
            )
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Outcome::Applied(report) => {
            let errors: Vec<Json> = report
                .errors
                .iter()
                .map(|(index, error)| json!({"index": index, "error": error}))
                .collect();
            let status = if report.accepted == 0 && report.rejected > 0 {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            json_response(
                status,
                &json!({"accepted": report.accepted, "rejected": report.rejected, "errors": errors}),
            )
        }
        Outcome::BadBody(error) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": error.to_string(), "offset": error.offset}),
        ),
        Outcome::TooLarge(message) => error_response(StatusCode::PAYLOAD_TOO_LARGE, message),
        Outcome::BadEncoding(message) => error_response(StatusCode::BAD_REQUEST, message),
        Outcome::Overloaded => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "the queue of samples for all-edge streams is full; retry after a second",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// An engine value as JSON (non-finite floats become null).
pub(crate) fn value_json(value: &Value) -> Json {
    match value {
        Value::Float(v) => serde_json::Number::from_f64(*v).map_or(Json::Null, Json::Number),
        Value::Int(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::Str(v) => json!(&**v),
        Value::Record(fields) => {
            let mut object = serde_json::Map::new();
            for (name, scalar) in fields.iter() {
                let field = match scalar {
                    dav2d_core::Scalar::Float(v) => {
                        serde_json::Number::from_f64(*v).map_or(Json::Null, Json::Number)
                    }
                    dav2d_core::Scalar::Int(v) => json!(v),
                    dav2d_core::Scalar::Bool(v) => json!(v),
                    dav2d_core::Scalar::Str(v) => json!(&**v),
                };
                object.insert(name.to_string(), field);
            }
            Json::Object(object)
        }
        Value::Bytes(bytes) => json!({"bytes": bytes.len()}),
    }
}

fn reading_json(key: &str, reading: &Reading) -> Json {
    let mut object = json!({"key": key});
    if let Some(sample) = &reading.sample {
        object["value"] = value_json(&sample.value);
        object["ts"] = json!(sample.ts_ns);
        object["seq"] = json!(sample.seq);
    }
    if let Some(error) = &reading.error {
        object["error"] = json!(&**error);
    }
    object
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

async fn state_of(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<KeyQuery>,
) -> Response {
    let graph = state.shared.graph.clone();
    let result = tokio::task::spawn_blocking(move || {
        let graph = graph.lock();
        match &query.key {
            Some(key) => graph.latest(&name, key).map(|reading| match reading {
                Some(reading) => (StatusCode::OK, reading_json(key, &reading)),
                None => (
                    StatusCode::NOT_FOUND,
                    json!({"error": format!("'{name}' has no sample for key '{key}' yet")}),
                ),
            }),
            None => graph.latest_all(&name).map(|all| {
                let keys: serde_json::Map<String, Json> = all
                    .iter()
                    .map(|(key, reading)| (key.to_string(), reading_json(key, reading)))
                    .collect();
                (StatusCode::OK, json!({"name": name, "keys": keys}))
            }),
        }
    })
    .await;
    let response = match result {
        Ok(Ok((status, body))) => json_response(status, &body),
        Ok(Err(error)) => error_response(StatusCode::NOT_FOUND, error.to_string()),
        Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "the state lookup failed"),
    };
    state
        .shared
        .metrics
        .request("/state", response.status().as_u16());
    response
}

async fn graph(State(state): State<AppState>) -> Response {
    let (streams, nodes) = {
        let graph = state.shared.graph.lock();
        (graph.streams(), graph.nodes())
    };
    let streams: Vec<Json> = streams
        .iter()
        .filter(|s| s.producer.is_none())
        .map(|s| {
            json!({"name": s.name, "keys": s.keys, "accepted": s.accepted, "rejected": s.rejected,
                   "min": s.bounds.min, "max": s.bounds.max, "finite_only": s.bounds.finite_only,
                   "history": s.capacity})
        })
        .collect();
    let nodes: Vec<Json> = nodes
        .iter()
        .map(|n| {
            let inputs: Vec<Json> = n
                .inputs
                .iter()
                .map(|(name, window, policy)| json!({"name": name, "window": window, "policy": policy.as_str()}))
                .collect();
            json!({"name": n.name, "kind": n.kind, "logic": n.logic, "inputs": inputs, "priority": n.priority,
                   "deadband": n.deadband, "keys": n.keys, "failing_keys": n.failing_keys,
                   "evaluations": n.stats.evaluations, "conflated": n.stats.conflated, "errors": n.stats.errors})
        })
        .collect();
    state.shared.metrics.request("/graph", 200);
    json_response(StatusCode::OK, &json!({"streams": streams, "nodes": nodes}))
}

#[derive(serde::Deserialize)]
struct NamesQuery {
    names: Option<String>,
}

fn update_event(update: &Update) -> Event {
    let mut data =
        json!({"name": &*update.name, "key": &*update.key, "ts": update.ts_ns, "seq": update.seq});
    if let Some(value) = &update.value {
        data["value"] = value_json(value);
    }
    if let Some(error) = &update.error {
        data["error"] = json!(&**error);
    }
    let kind = match &update.transition {
        Some(transition) => {
            data["transition"] =
                json!({"from": transition.from.as_str(), "to": transition.to.as_str()});
            "transition"
        }
        None => "update",
    };
    Event::default().event(kind).data(data.to_string())
}

async fn events(State(state): State<AppState>, Query(query): Query<NamesQuery>) -> Response {
    let subscription = {
        let mut graph = state.shared.graph.lock();
        let names: Vec<String> = match &query.names {
            Some(names) => names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
            None => graph.nodes().into_iter().map(|n| n.name).collect(),
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        graph.subscribe_many(&names, SubscriptionMode::EveryChange, 4096)
    };
    let subscription = match subscription {
        Ok(subscription) => subscription,
        Err(error) => {
            state.shared.metrics.request("/events", 404);
            return error_response(StatusCode::NOT_FOUND, error.to_string());
        }
    };
    state.shared.metrics.request("/events", 200);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(1024);
    // The subscription blocks; a thread per event stream waits on it.
    let spawned = std::thread::Builder::new()
        .name("dav2d-sse".into())
        .spawn(move || {
            loop {
                match subscription.next_timeout(Duration::from_millis(500)) {
                    Some(update) if sender.blocking_send(update_event(&update)).is_err() => break,
                    Some(_) => {}
                    None if sender.is_closed() || subscription.is_closed() => break,
                    None => {}
                }
            }
        });
    if let Err(error) = spawned {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot start the event stream: {error}"),
        );
    }
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<Event, Infallible>(event), receiver))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.shared.metrics.request("/metrics", 200);
    let text = state.shared.metrics.encode();
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn healthz(State(state): State<AppState>) -> Response {
    let problems: Vec<String> = state
        .shared
        .status
        .iter()
        .filter_map(|s| s.health().err())
        .collect();
    if problems.is_empty() {
        state.shared.metrics.request("/healthz", 200);
        return json_response(StatusCode::OK, &json!({"status": "ok"}));
    }
    // Degraded, still serving: 503 tells load balancers, the body says why.
    state.shared.metrics.request("/healthz", 503);
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"status": "degraded", "problems": problems}),
    )
}
