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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav2d_core::{SharedGraph, Subscription, SubscriptionMode, Update};
use dav2d_wire::update_json;
use tokio::sync::broadcast;

use crate::serve::{AppState, error_response};

/// Updates a client may fall behind before it skips some.
const CLIENT_BACKLOG: usize = 4096;

#[derive(serde::Deserialize)]
pub(crate) struct NamesQuery {
    names: Option<String>,
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

/// One update as the hub broadcasts it: the name clients filter by and the
/// event's text, written once.
pub(crate) struct Formatted {
    name: Arc<str>,
    text: Bytes,
}

fn format_event(update: &Update) -> Formatted {
    let (kind, data) = update_json(update);
    let text = format!("event: {}\ndata: {data}\n\n", kind.as_str());
    Formatted {
        name: Arc::clone(&update.name),
        text: Bytes::from(text),
    }
}

/// A client's request that the hub's subscription cover more names.
struct Grow {
    names: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The one subscription of a server's event streams, fanned out. Its thread
/// owns the subscription: it drains it into the broadcast and, when a
/// client asks for names not yet covered, subscribes anew (the only time it
/// takes the engine lock), so no client ever blocks a thread of its own.
pub(crate) struct EventHub {
    sender: broadcast::Sender<Arc<Formatted>>,
    grow: Mutex<std::sync::mpsc::Sender<Grow>>,
    /// Names the hub's subscription covers.
    covered: Arc<Mutex<HashSet<String>>>,
}

impl EventHub {
    pub(crate) fn new(graph: SharedGraph) -> Result<Arc<EventHub>, String> {
        let (sender, _) = broadcast::channel(CLIENT_BACKLOG);
        let (grow, requests) = std::sync::mpsc::channel();
        let covered = Arc::new(Mutex::new(HashSet::new()));
        let (hub_sender, hub_covered) = (sender.clone(), Arc::clone(&covered));
        std::thread::Builder::new()
            .name("dav2d-events".into())
            .spawn(move || run_hub(&graph, &requests, &hub_sender, &hub_covered))
            .map_err(|e| format!("cannot start the event hub: {e}"))?;
        Ok(Arc::new(EventHub {
            sender,
            grow: Mutex::new(grow),
            covered,
        }))
    }

    /// A receiver of every update from now on, once the hub covers `names`.
    async fn listen(
        &self,
        names: &[String],
    ) -> Result<broadcast::Receiver<Arc<Formatted>>, String> {
        // Subscribed before growing, so nothing between the two is missed.
        let receiver = self.sender.subscribe();
        let covered = {
            let covered = self.covered.lock().unwrap_or_else(|p| p.into_inner());
            names.iter().all(|n| covered.contains(n))
        };
        if covered {
            return Ok(receiver);
        }
        let (reply, replied) = tokio::sync::oneshot::channel();
        let request = Grow {
            names: names.to_vec(),
            reply,
        };
        let sent = self
            .grow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(request);
        if sent.is_err() {
            return Err("the event hub has stopped".to_string());
        }
        match replied.await {
            Ok(Ok(())) => Ok(receiver),
            Ok(Err(message)) => Err(message),
            Err(_) => Err("the event hub has stopped".to_string()),
        }
    }
}

/// The hub's thread: grows the subscription on request and drains it into
/// the broadcast, until the server (and so the hub's request channel) is gone.
fn run_hub(
    graph: &SharedGraph,
    requests: &std::sync::mpsc::Receiver<Grow>,
    sender: &broadcast::Sender<Arc<Formatted>>,
    covered: &Mutex<HashSet<String>>,
) {
    use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
    let mut subscription: Option<Subscription> = None;
    let mut next: Option<Grow> = None;
    loop {
        loop {
            let request = match next.take() {
                Some(request) => request,
                None => match requests.try_recv() {
                    Ok(request) => request,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                },
            };
            let answer = grow(graph, &mut subscription, covered, &request.names);
            let _ = request.reply.send(answer);
        }
        let Some(current) = &subscription else {
            match requests.recv_timeout(Duration::from_millis(100)) {
                Ok(request) => next = Some(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            continue;
        };
        // Short waits, so a request is served promptly.
        for _ in 0..64 {
            match current.next_timeout(Duration::from_millis(20)) {
                // No receiver is not an error: updates nobody reads are dropped.
                Some(update) => {
                    let _ = sender.send(Arc::new(format_event(&update)));
                }
                None => break,
            }
        }
    }
}

/// Subscribes to what `covered` and `names` name together, replacing the
/// hub's subscription (the only time the hub takes the engine lock).
fn grow(
    graph: &SharedGraph,
    subscription: &mut Option<Subscription>,
    covered: &Mutex<HashSet<String>>,
    names: &[String],
) -> Result<(), String> {
    let mut wanted = covered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    wanted.extend(names.iter().cloned());
    let list: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let grown = graph
        .lock()
        .subscribe_many(&list, SubscriptionMode::EveryChange, CLIENT_BACKLOG)
        .map_err(|error| error.to_string())?;
    // The new subscription exists before the old one closes: an update in
    // between may come twice, never not at all.
    if let Some(old) = subscription.replace(grown) {
        old.close();
    }
    *covered.lock().unwrap_or_else(|p| p.into_inner()) = wanted;
    Ok(())
}

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
    let receiver = match state.events.listen(&names).await {
        Ok(receiver) => receiver,
        Err(message) => {
            state.intake.metrics().request("/events", 404);
            return error_response(StatusCode::NOT_FOUND, message);
        }
    };
    state.intake.metrics().request("/events", 200);
    let wanted: HashSet<String> = names.into_iter().collect();
    let dropped = state.intake.metrics().events_dropped.clone();
    let stream = futures_util::stream::unfold(
        (receiver, wanted, dropped, false),
        |(mut receiver, wanted, dropped, behind)| async move {
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
                            let ping = Bytes::from_static(b": keep-alive\n\n");
                            let state = (receiver, wanted, dropped, false);
                            return Some((Ok::<Bytes, Infallible>(ping), state));
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
            Some((Ok(Bytes::from(chunk)), (receiver, wanted, dropped, behind)))
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
