//! `GET /events`: node outputs and constraint transitions as server-sent
//! events.
//!
//! One hub per server holds the only subscription to the engine (for every
//! name any client asked for) and hands each update, once, to a broadcast
//! channel; each client is an async task that filters the broadcast by its
//! names. So a client costs no OS thread and the engine offers each update
//! to one subscriber, however many clients listen. A client that falls more
//! than the channel's capacity behind skips the oldest updates: they are
//! counted (`dav2d_events_dropped_total`), and the engine never waits.
//!
//! The hub writes each update's event text once; a client copies the
//! shared bytes of every event waiting for it into one chunk per write, so
//! 500 listeners cost 500 socket writes per round, not 500 JSON encodings
//! per update.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use crate::state::{AppState, error_response};

#[derive(serde::Deserialize)]
pub(crate) struct NamesQuery {
    names: Option<String>,
    /// `1`: a write every 250 ms at most, with the newest update of each
    /// (name, key) that changed and every transition (a page that redraws).
    conflate: Option<String>,
}

/// Events a client copies into one write at most.
const EVENTS_PER_WRITE: usize = 256;

/// The pause after a full write before the next one: a client that is
/// behind a flood gets at most a write's worth per pause (it skips the rest,
/// counted), so fanning a flood out to hundreds of readers cannot starve
/// ingestion. A client that keeps up is never paused.
const BEHIND_PAUSE: Duration = Duration::from_millis(20);

/// How long a quiet stream waits before a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(crate) async fn events(
    State(state): State<AppState>,
    Query(query): Query<NamesQuery>,
) -> Response {
    let reads = state.intake.graph().reads();
    let names: Vec<String> = match &query.names {
        Some(names) => names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect(),
        None => reads.nodes().into_iter().map(|n| n.name).collect(),
    };
    if let Some(error) = names.iter().find_map(|n| reads.check_name(n).err()) {
        state.intake.metrics().request("/events", 404);
        return error_response(StatusCode::NOT_FOUND, error.to_string());
    }
    if query
        .conflate
        .as_deref()
        .is_some_and(|c| c != "0" && c != "false")
    {
        return conflated(&state, names).await;
    }
    let receiver = match opened(&state, state.events.listen(&names).await) {
        Ok(receiver) => receiver,
        Err(message) => return error_response(StatusCode::NOT_FOUND, message),
    };
    let wanted: HashSet<String> = names.into_iter().collect();
    let dropped = state.intake.metrics().events_dropped.clone();
    let watch = Version::of(&state.health);
    let stream = futures_util::stream::unfold(
        (receiver, wanted, dropped, false, watch),
        |(mut receiver, wanted, dropped, behind, mut watch)| async move {
            if behind {
                tokio::time::sleep(BEHIND_PAUSE).await;
            }
            let mut chunk: Vec<u8> = Vec::new();
            let mut events = 0;
            // Wait for the first event (or send a keep-alive comment), then
            // take every event already waiting, up to a write's worth.
            loop {
                let next = if events == 0 {
                    match tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let mut ping = watch.event();
                            ping.extend_from_slice(b": keep-alive\n\n");
                            let state = (receiver, wanted, dropped, false, watch);
                            return Some((Ok::<Bytes, Infallible>(Bytes::from(ping)), state));
                        }
                    }
                } else {
                    match receiver.try_recv() {
                        Ok(update) => Ok(update),
                        Err(broadcast::error::TryRecvError::Lagged(skipped)) => {
                            Err(broadcast::error::RecvError::Lagged(skipped))
                        }
                        Err(_) => break,
                    }
                };
                match next {
                    Ok(update) if wanted.contains(&*update.name) => {
                        chunk.extend_from_slice(&update.text);
                        events += 1;
                        if events >= EVENTS_PER_WRITE {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        dropped.inc_by(skipped);
                    }
                    Err(broadcast::error::RecvError::Closed) if events == 0 => return None,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            let behind = events >= EVENTS_PER_WRITE;
            // A reload since the last write goes before these events
            // (checked now, after they came: the version changes first).
            let mut out = watch.event();
            out.extend_from_slice(&chunk);
            Some((
                Ok(Bytes::from(out)),
                (receiver, wanted, dropped, behind, watch),
            ))
        },
    );
    event_stream(Body::from_stream(until_stopped(
        stream,
        state.stopping.clone(),
    )))
}

/// Counts a stream's answer: a 200 when it listens, a 404 when not.
fn opened<R>(state: &AppState, listened: Result<R, String>) -> Result<R, String> {
    let status = if listened.is_ok() { 200 } else { 404 };
    state.intake.metrics().request("/events", status);
    listened
}

fn event_stream(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `?conflate=1`: the hub's batches (every transition, the newest update of
/// each (name, key)), filtered by `names`, one write per batch.
async fn conflated(state: &AppState, names: Vec<String>) -> Response {
    // A constraint's transitions come every one; other names, the newest.
    let reads = state.intake.graph().reads();
    let constraints: HashSet<String> = (reads.nodes().into_iter())
        .filter(|n| n.kind == dav2d_core::NodeKind::Constraint)
        .map(|n| n.name)
        .collect();
    let (every, newest): (Vec<String>, Vec<String>) =
        names.iter().cloned().partition(|n| constraints.contains(n));
    let receiver = match opened(state, state.events.listen_conflated(&newest, &every).await) {
        Ok(receiver) => receiver,
        Err(message) => return error_response(StatusCode::NOT_FOUND, message),
    };
    let wanted: HashSet<String> = names.into_iter().collect();
    let dropped = state.intake.metrics().events_dropped.clone();
    let watch = Version::of(&state.health);
    let stream = futures_util::stream::unfold(
        (receiver, wanted, dropped, watch),
        |(mut receiver, wanted, dropped, mut watch)| async move {
            loop {
                let batch = match tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await {
                    Err(_) => {
                        let mut ping = watch.event();
                        ping.extend_from_slice(b": keep-alive\n\n");
                        let state = (receiver, wanted, dropped, watch);
                        return Some((Ok::<Bytes, Infallible>(Bytes::from(ping)), state));
                    }
                    Ok(Ok(batch)) => batch,
                    Ok(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                        dropped.inc_by(skipped);
                        continue;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                let mut chunk = watch.event();
                for event in batch.events.iter().filter(|e| wanted.contains(&*e.name)) {
                    chunk.extend_from_slice(&event.text);
                }
                if !chunk.is_empty() {
                    return Some((Ok(Bytes::from(chunk)), (receiver, wanted, dropped, watch)));
                }
            }
        },
    );
    event_stream(Body::from_stream(until_stopped(
        stream,
        state.stopping.clone(),
    )))
}

/// Ends `stream` when the server stops (at exit, or a reload restarting
/// the HTTP API), so no event stream outlives the server that opened it and
/// a graceful shutdown finishes; a client then reconnects to the new one.
fn until_stopped<S: futures_util::Stream>(
    stream: S,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> impl futures_util::Stream<Item = S::Item> {
    use futures_util::StreamExt;
    stream.take_until(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    })
}

/// The running spec's version as a stream last told it: a reload since
/// then is an `event: reload` (`{"version": N}`) before the next write.
struct Version {
    health: dav2d_component::HealthBoard,
    seen: u64,
}

impl Version {
    /// Watching `health`'s version from now.
    fn of(health: &dav2d_component::HealthBoard) -> Version {
        Version {
            health: health.clone(),
            seen: health.spec_version(),
        }
    }

    /// The `reload` event if the version changed since the last call
    /// (empty otherwise).
    fn event(&mut self) -> Vec<u8> {
        let now = self.health.spec_version();
        if now == self.seen {
            return Vec::new();
        }
        self.seen = now;
        format!("event: reload\ndata: {{\"version\":{now}}}\n\n").into_bytes()
    }
}
