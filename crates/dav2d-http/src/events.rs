//! `GET /events`: node outputs and constraint transitions as server-sent
//! events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dav2d_core::{SubscriptionMode, Update};
use dav2d_wire::update_json;

use crate::serve::{AppState, error_response};

#[derive(serde::Deserialize)]
pub(crate) struct NamesQuery {
    names: Option<String>,
}

fn update_event(update: &Update) -> Event {
    let (kind, data) = update_json(update);
    Event::default().event(kind.as_str()).data(data.to_string())
}

pub(crate) async fn events(
    State(state): State<AppState>,
    Query(query): Query<NamesQuery>,
) -> Response {
    let subscription = {
        let mut graph = state.intake.graph().lock();
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
            state.intake.metrics().request("/events", 404);
            return error_response(StatusCode::NOT_FOUND, error.to_string());
        }
    };
    state.intake.metrics().request("/events", 200);
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
