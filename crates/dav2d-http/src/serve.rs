//! The serve loop: accepts connections and serves each with hyper directly
//! (so a client that sends its headers too slowly is cut off by
//! `header_timeout`), and the router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dav2d_component::{HealthBoard, Intake};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value as Json, json};
use tokio::sync::watch;

use crate::config::HttpConfig;

/// What every request handler sees.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) intake: Intake,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) health: HealthBoard,
    pub(crate) events: Arc<crate::events::EventHub>,
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    let header_timeout = state.config.header_timeout;
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
        .route("/upload", post(crate::ingest::upload))
        .route("/ingest/{stream}", post(crate::ingest::ingest_stream))
        .route("/state/{name}", get(crate::read::state_of))
        .route("/graph", get(crate::read::graph))
        .route("/events", get(crate::events::events))
        .route("/metrics", get(crate::read::metrics))
        .route("/healthz", get(crate::read::healthz));
    // Without a token there is nothing to check: no layer, no per-request cost.
    let routes = if state.config.token.is_some() {
        routes.layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authorize,
        ))
    } else {
        routes
    };
    routes.with_state(state)
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
