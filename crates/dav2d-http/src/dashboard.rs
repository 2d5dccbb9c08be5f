//! `GET /`: the dashboard for a browser (one page and its script and style,
//! embedded in the binary and served with a strict Content-Security-Policy,
//! so it works with no network and runs no inline script), and a JSON index
//! of the endpoints for any other client. `GET /window/{name}?key=&points=`:
//! a key's recent window, downsampled on the server for the page's
//! sparklines.
//!
//! The page reads only the read API (`/graph`, `/state`, `/window`, `/frame`,
//! `/healthz`, `/metrics`) and one `/events` stream. The assets carry no
//! data, so they are served without the token; the page asks for the token
//! once and sends it with every read.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::{AppState, error_response, json_response};

/// The page, its script and its style.
const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// What the page may load and reach: itself only; no inline script or
/// style, no frames, no forms sent elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The most points `/window` answers with (each the min, max and last of
/// its stretch of the window).
pub(crate) const WINDOW_POINTS_MAX: usize = 512;

/// Whether `path` is one of the page's assets (served without the token:
/// they hold no data).
pub(crate) fn is_asset(path: &str) -> bool {
    matches!(path, "/" | "/ui/app.js" | "/ui/app.css")
}

pub(crate) async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    state.intake.metrics().request("/", 200);
    if browser {
        return asset(INDEX_HTML, "text/html; charset=utf-8");
    }
    json_response(
        StatusCode::OK,
        &json!({
            "name": "dav2d",
            "dashboard": "/ (ask with Accept: text/html, as a browser does)",
            "endpoints": {
                "POST /upload": "samples as JSON, NDJSON or CSV",
                "POST /ingest/{stream}": "samples of one stream",
                "GET /state/{name}": "the latest value per key, a page at a time (?key=, ?limit=, ?after=)",
                "GET /window/{name}?key=K": "a key's recent window, downsampled (?points=, at most 512)",
                "GET /frame/{name}?key=K": "the latest frame as a JPEG preview (?width=, at most 1280)",
                "GET /graph": "streams, nodes, constraints, sources and sinks with live counters",
                "GET /events": "server-sent events of updates and transitions (?names=)",
                "GET /metrics": "Prometheus text",
                "GET /healthz": "ok, or degraded with the problems",
            },
        }),
    )
}

pub(crate) async fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn style() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(serde::Deserialize)]
pub(crate) struct WindowQuery {
    key: Option<String>,
    points: Option<usize>,
}

/// A key's window as at most `points` points, each the min, max and last
/// value (and last time) of its stretch: a sparkline that keeps spikes
/// however long the window. The engine is locked only to take the window's
/// zero-copy snapshot; the downsampling runs after.
pub(crate) async fn window(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<WindowQuery>,
) -> Response {
    let Some(key) = query.key else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "give the key: /window/{name}?key=K",
        );
    };
    let points = query.points.unwrap_or(120).clamp(1, WINDOW_POINTS_MAX);
    let graph = state.intake.graph().clone();
    let snapshot = tokio::task::spawn_blocking(move || {
        let window = graph.lock().window(&name, &key, usize::MAX);
        window.map(|w| (name, key, w))
    })
    .await;
    let (name, key, snapshot) = match snapshot {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return error_response(StatusCode::NOT_FOUND, error.to_string()),
        Err(_) => {
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "the read was dropped");
        }
    };
    state.intake.metrics().request("/window", 200);
    let (ts, values) = (snapshot.timestamps(), snapshot.numbers());
    let numeric = snapshot.is_all_float();
    let stretch = values.len().div_ceil(points).max(1);
    let downsampled: Vec<serde_json::Value> = if numeric {
        (0..values.len())
            .step_by(stretch)
            .map(|start| {
                let end = (start + stretch).min(values.len());
                let part = &values[start..end];
                let (lo, hi) = part
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                        (lo.min(*v), hi.max(*v))
                    });
                json!({"ts": ts[end - 1], "min": lo, "max": hi, "last": part[part.len() - 1]})
            })
            .collect()
    } else {
        Vec::new()
    };
    json_response(
        StatusCode::OK,
        &json!({"name": name, "key": key, "samples": values.len(), "numeric": numeric, "points": downsampled}),
    )
}
