//! `GET /history/{name}?since=1h&key=K&limit=N`: what the store recorded of
//! a name, oldest first (the newest `limit` rows when there are more), for
//! the dashboard's alert timeline and any client; 404 when persistence is
//! off. Reads run on a blocking thread, two at a time at most (503 with
//! `Retry-After` past that), and never touch the engine.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::state::{AppState, error_response, json_response};

/// The most rows an answer holds.
pub(crate) const HISTORY_ROWS_MAX: usize = 10_000;

/// History reads at once, over every connection.
static READING: Semaphore = Semaphore::const_new(2);

#[derive(serde::Deserialize)]
pub(crate) struct HistoryQuery {
    /// ns since the epoch, or how long ago (`30m`, `1h`, `7d`); default 1h.
    since: Option<String>,
    key: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let Some(reader) = state.health.history() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "persistence is off, so there is no history; /history reads the store (persistence.dir)",
        );
    };
    if let Err(error) = state.intake.graph().reads().check_name(&name) {
        return error_response(StatusCode::NOT_FOUND, error.to_string());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let since = match query.since.as_deref().map(str::trim) {
        None => now - 3_600_000_000_000,
        Some(text) => match text.parse::<i64>() {
            Ok(ns) => ns,
            Err(_) => match humantime::parse_duration(text) {
                Ok(ago) => now.saturating_sub(i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX)),
                Err(_) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "since={text}: give ns since the epoch, or how long ago, e.g. 30m or 1h"
                        ),
                    );
                }
            },
        },
    };
    let limit = query.limit.unwrap_or(500).clamp(1, HISTORY_ROWS_MAX);
    let Ok(permit) = READING.try_acquire() else {
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "two history reads are running; retry shortly",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let key = query.key;
    let read_name = name.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        reader.rows(&read_name, key.as_deref(), since, limit)
    })
    .await;
    match rows {
        Ok(Ok(rows)) => {
            state.intake.metrics().request("/history", 200);
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| match &r.state {
                    Some(text) => json!({"key": &*r.key, "ts": r.ts_ns, "value": &**text}),
                    None => json!({"key": &*r.key, "ts": r.ts_ns, "value": r.value}),
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"name": name, "since": since, "rows": rows}),
            )
        }
        Ok(Err(message)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, message),
        Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "the read was dropped"),
    }
}
