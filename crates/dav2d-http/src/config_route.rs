//! `POST /config`: a new YAML config for the running graph (a hot reload,
//! validated whole first; see `dav2d_runtime::reload`). It changes what
//! runs, so it needs `http.token`: without one it is refused, whatever the
//! `Host`. The answer is the spec's version and the changes, or 422 with
//! the located error (and nothing changed).

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::state::{AppState, error_response, json_response};

/// The largest config accepted.
const CONFIG_MAX: usize = 1 << 20;

pub(crate) async fn post_config(State(state): State<AppState>, body: Body) -> Response {
    if state.config.listen.token.is_none() {
        return error_response(
            StatusCode::FORBIDDEN,
            "POST /config changes the running graph, so it needs http.token; set one (or send SIGHUP, or run with --watch)",
        );
    }
    let Some(reloader) = state.health.reloader() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "this server cannot reload its config (only `dav2d run` can)",
        );
    };
    let text = match axum::body::to_bytes(body, CONFIG_MAX).await {
        Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => text,
            Err(_) => {
                return error_response(StatusCode::BAD_REQUEST, "the config is not UTF-8 text");
            }
        },
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a config is at most {CONFIG_MAX} bytes"),
            );
        }
    };
    let result = tokio::task::spawn_blocking(move || reloader.reload_yaml(&text)).await;
    let response = match result {
        Ok(Ok((version, changes))) => json_response(
            StatusCode::OK,
            &json!({"version": version, "changes": changes}),
        ),
        Ok(Err(error)) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"error": error, "version": state.health.spec_version()}),
        ),
        Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "the reload was dropped"),
    };
    state
        .intake
        .metrics()
        .request("/config", response.status().as_u16());
    response
}
