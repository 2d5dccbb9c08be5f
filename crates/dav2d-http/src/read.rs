//! The read routes: `/state/{name}`, `/graph`, `/metrics`, `/healthz`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav2d_wire::reading_json;
use serde_json::{Value as Json, json};

use crate::state::{AppState, error_response, json_response};

#[derive(serde::Deserialize)]
pub(crate) struct KeyQuery {
    key: Option<String>,
    /// Keys per page (default [`PAGE_DEFAULT`], at most [`PAGE_MAX`]).
    limit: Option<usize>,
    /// Continue after this key (the `next` of the previous page).
    after: Option<String>,
}

/// Keys a `/state/{name}` page holds unless `?limit=` says otherwise.
pub(crate) const PAGE_DEFAULT: usize = 1000;
/// The most keys a page holds.
pub(crate) const PAGE_MAX: usize = 10_000;
/// About the most bytes of values a page holds; a page is cut before it
/// would hold more (one key is always served).
pub(crate) const PAGE_BYTES: usize = 8 << 20;

pub(crate) async fn state_of(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<KeyQuery>,
) -> Response {
    // When clustering, a key another instance applies is read from the
    // bucket its owner publishes to (the name must still be one this
    // graph has: every instance runs the same graph).
    if let (Some(key), Some(cluster)) = (&query.key, state.intake.cluster_reads())
        && !cluster.owns(key)
    {
        let response = match state.intake.graph().reads().check_name(&name) {
            Err(error) => error_response(StatusCode::NOT_FOUND, error.to_string()),
            Ok(()) => match cluster.latest(&name, key).await {
                Ok(Some(body)) => (
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response(),
                Ok(None) => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("'{name}' has no sample for key '{key}' yet")}),
                ),
                Err(error) => error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the cluster's latest values cannot be read: {error}; retry later"),
                ),
            },
        };
        state
            .intake
            .metrics()
            .request("/state", response.status().as_u16());
        return response;
    }
    // The published state: answered on this thread, never waiting for a wave.
    let reads = state.intake.graph().reads();
    let result = {
        match &query.key {
            Some(key) => reads.latest(&name, key).map(|reading| match reading {
                Some(reading) => (StatusCode::OK, reading_json(key, &reading)),
                None => (
                    StatusCode::NOT_FOUND,
                    json!({"error": format!("'{name}' has no sample for key '{key}' yet")}),
                ),
            }),
            None if query
                .limit
                .is_some_and(|limit| limit == 0 || limit > PAGE_MAX) =>
            {
                Ok((
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("limit must be from 1 to {PAGE_MAX}")}),
                ))
            }
            None => reads
                .latest_page(
                    &name,
                    query.after.as_deref(),
                    query.limit.unwrap_or(PAGE_DEFAULT),
                    PAGE_BYTES,
                )
                .map(|page| {
                    let keys: serde_json::Map<String, Json> = page
                        .keys
                        .iter()
                        .map(|(key, reading)| (key.to_string(), reading_json(key, reading)))
                        .collect();
                    let next = page.next.as_deref();
                    (
                        StatusCode::OK,
                        json!({"name": name, "keys": keys, "next": next}),
                    )
                }),
        }
    };
    let response = match result {
        Ok((status, body)) => json_response(status, &body),
        Err(error) => error_response(StatusCode::NOT_FOUND, error.to_string()),
    };
    state
        .intake
        .metrics()
        .request("/state", response.status().as_u16());
    response
}

pub(crate) async fn graph(State(state): State<AppState>) -> Response {
    let reads = state.intake.graph().reads();
    let (streams, nodes) = (reads.streams(), reads.nodes());
    let streams: Vec<Json> = streams
        .iter()
        .filter(|s| s.producer.is_none())
        .map(|s| {
            json!({"name": s.name, "keys": s.keys, "accepted": s.accepted, "rejected": s.rejected,
                   "type": s.value_type.as_str(), "min": s.bounds.min, "max": s.bounds.max, "finite_only": s.bounds.finite_only,
                   "keep": s.capacity})
        })
        .collect();
    let nodes: Vec<Json> = nodes
        .iter()
        .map(|n| {
            let inputs: Vec<Json> = n
                .inputs
                .iter()
                .map(|i| json!({"name": i.name, "window": i.window, "policy": i.policy.as_str(),
                                "span_seconds": i.span_ns.map(|ns| ns as f64 / 1e9)}))
                .collect();
            json!({"name": n.name, "kind": n.kind.as_str(), "logic": n.logic, "inputs": inputs, "priority": n.priority,
                   "deadband": n.deadband, "keys": n.keys, "failing_keys": n.failing_keys,
                   "evaluations": n.stats.evaluations, "conflated": n.stats.conflated, "errors": n.stats.errors,
                   "window_overflow": n.stats.window_overflow,
                   "offload": n.offload, "offload_waiting": n.offload_waiting, "lag_seconds": n.lag_ns as f64 / 1e9})
        })
        .collect();
    state.intake.metrics().request("/graph", 200);
    let mut body =
        json!({"version": state.health.spec_version(), "streams": streams, "nodes": nodes});
    // What the runtime started, as `dav2d check --format json` lists it.
    if let Some(components) = state.health.components()
        && let Ok(Json::Object(components)) = serde_json::from_str::<Json>(&components)
        && let Json::Object(fields) = &mut body
    {
        fields.extend(components);
    }
    json_response(StatusCode::OK, &body)
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    state.intake.metrics().request("/metrics", 200);
    let text = state.intake.metrics().encode();
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let problems = state.health.problems();
    if problems.is_empty() {
        state.intake.metrics().request("/healthz", 200);
        return json_response(
            StatusCode::OK,
            &json!({"status": "ok", "version": state.health.spec_version()}),
        );
    }
    // Degraded, still serving: 503 tells load balancers, the body says why.
    state.intake.metrics().request("/healthz", 503);
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"status": "degraded", "problems": problems, "version": state.health.spec_version()}),
    )
}
