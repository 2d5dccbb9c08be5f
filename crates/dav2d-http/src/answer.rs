//! Answers to ingest requests and where their work runs: the `ack` a
//! request asks for, the answer to an outcome (waiting for the fsync with
//! `ack=durable`), the budget and pool refusals, and the lanes (the parser
//! pool, or a thread of a small body's own).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav2d_component::{Intake, Outcome};
use serde_json::{Value as Json, json};
use tokio::sync::oneshot::Receiver;

use crate::state::{AppState, error_response, json_response};

/// When a request is answered: once applied (the default), or once the
/// fsync covering it is done (`?ack=durable`), or never, when the query
/// asks for something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    Applied,
    Durable,
    Unknown,
}

impl Ack {
    pub(crate) fn of(uri: &axum::http::Uri) -> Ack {
        let mut ack = Ack::Applied;
        for pair in uri.query().unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("ack", "durable")) => ack = Ack::Durable,
                Some(("ack", "applied")) => ack = Ack::Applied,
                Some(("ack", _)) => return Ack::Unknown,
                _ => {}
            }
        }
        ack
    }
}

/// 503 with `Retry-After`: the bytes of bodies in flight are at the budget.
pub(crate) fn budget_spent() -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the bodies in flight hold the whole body budget (ingest.body_budget); retry after a second",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The answer to an outcome; with `ack=durable`, given only once the
/// samples it applied are on disk (503 when they are not in time).
pub(crate) async fn finish(state: &AppState, outcome: Outcome, ack: Ack) -> Response {
    let Outcome::Applied(report) = &outcome else {
        return respond(outcome);
    };
    if ack != Ack::Durable || report.accepted == 0 {
        return respond(outcome);
    }
    let durable = state
        .durability
        .wait_for(report.settled, state.config.body_timeout)
        .await;
    let errors: Vec<Json> = report
        .errors
        .iter()
        .map(|(index, error)| json!({"index": index, "error": error}))
        .collect();
    let body = json!({"accepted": report.accepted, "rejected": report.rejected, "errors": errors, "durable": durable});
    if durable {
        json_response(StatusCode::OK, &body)
    } else {
        let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}

/// Where a body's work runs.
#[derive(Clone, Copy)]
pub(crate) enum Lane {
    /// The parser pool.
    Pool,
    /// A blocking thread of its own: a small body that found the engine
    /// busy never queues behind the parsing of large bodies on the pool,
    /// nor behind another small body waiting for the engine.
    Own,
}

/// Runs `work` on `lane`; the receiver gets its result.
pub(crate) fn run_on<T: Send + 'static>(
    intake: &Intake,
    lane: Lane,
    work: impl FnOnce(&Intake) -> T + Send + 'static,
) -> Receiver<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let worker = intake.clone();
    let job = move || {
        let _ = sender.send(work(&worker));
    };
    match lane {
        Lane::Pool => intake.spawn(job),
        Lane::Own => {
            tokio::task::spawn_blocking(job);
        }
    }
    receiver
}

/// Runs `work` on the parser pool; the receiver gets its result.
pub(crate) fn on_pool<T: Send + 'static>(
    intake: &Intake,
    work: impl FnOnce(&Intake) -> T + Send + 'static,
) -> Receiver<T> {
    run_on(intake, Lane::Pool, work)
}

pub(crate) fn pool_dropped() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the parser pool dropped the request",
    )
}

pub(crate) fn respond(outcome: Outcome) -> Response {
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
        Outcome::BodyBudget(_) => budget_spent(),
        Outcome::Overloaded | Outcome::SinkBehind => {
            let message = if matches!(outcome, Outcome::SinkBehind) {
                "persistence is behind and keeps every update; retry after a second"
            } else {
                "the queue of samples for all-edge streams is full; retry after a second"
            };
            let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, message);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}
