//! The serve loop: accepts connections and serves each with hyper directly
//! (so a client that sends its headers too slowly is cut off by
//! `header_timeout`), and the router.

use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use dav2d_component::{Accepted, Listener};
use dav2d_core::RejectReason;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::state::AppState;

/// The answer to a connection past `max_connections`, written before it is closed.
fn too_many_connections() -> Vec<u8> {
    let body = r#"{"error":"too many connections (http.max_connections); retry after a second"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    mut listener: Listener,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    let header_timeout = state.config.header_timeout;
    let intake = state.intake.clone();
    let state = AppState {
        stopping: stop.clone(),
        ..state
    };
    let app = router(state);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let incoming = match accepted {
            Accepted::Open(incoming) => incoming,
            Accepted::OverLimit(mut stream) => {
                intake.reject(RejectReason::TooManyConnections, 1);
                tokio::spawn(async move {
                    let answer = too_many_connections();
                    let write = stream.write_all(&answer);
                    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
                });
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let stream = match incoming.establish(header_timeout).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "An HTTPS handshake failed.");
                    return;
                }
            };
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
                _ = stop.changed() => {
                    // Finish the request in hand (the `POST /config` that
                    // restarts this server among them), then close.
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.as_mut().await {
                        tracing::debug!(%error, "HTTP connection ended with an error.");
                    }
                }
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
        .route("/healthz", get(crate::read::healthz))
        .route("/", get(crate::dashboard::index))
        .route("/ui/app.js", get(crate::dashboard::script))
        .route("/ui/app.css", get(crate::dashboard::style))
        .route("/window/{name}", get(crate::dashboard::window))
        .route("/frame/{name}", get(crate::preview::frame))
        .route("/history/{name}", get(crate::history::history))
        .route("/config", post(crate::config_route::post_config));
    // One guard per request: Host, cross-site pages, then the token (or,
    // without one, a `Host` a DNS-rebinding page could not have sent).
    let routes = routes.layer(middleware::from_fn_with_state(
        state.clone(),
        crate::auth::guard,
    ));
    routes.with_state(state)
}
