//! What every request handler shares: the state (`AppState`) and the JSON
//! answers, imported by the handlers and the router alike, so no handler
//! imports the serve loop.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav2d_component::{HealthBoard, Intake};
use http_body_util::BodyExt;
use serde_json::{Value as Json, json};

use crate::config::HttpConfig;

/// What every request handler sees.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) intake: Intake,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) health: HealthBoard,
    pub(crate) events: Arc<crate::hub::EventHub>,
    pub(crate) durability: Arc<dav2d_component::Durability>,
    /// Turns true when the server stops (at exit, or a reload restarting
    /// the HTTP API): long answers (`/events`) end then.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

pub(crate) fn json_response(status: StatusCode, body: &Json) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

/// Discards (never buffers) up to `limit` bytes of a refused body within
/// `timeout`, so a client that is still sending can read the answer instead
/// of failing with a broken pipe.
pub(crate) async fn drain(mut body: Body, limit: usize, timeout: Duration) {
    let discard = async {
        let mut discarded = 0usize;
        while let Some(Ok(chunk)) = body.frame().await {
            discarded += chunk.data_ref().map_or(0, |d| d.len());
            if discarded > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, discard).await;
}
