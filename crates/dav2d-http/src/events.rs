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

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
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

fn update_event(update: &Update) -> Event {
    let (kind, data) = update_json(update);
    Event::default().event(kind.as_str()).data(data.to_string())
}

/// The one subscription of a server's event streams, fanned out.
pub(crate) struct EventHub {
    graph: SharedGraph,
    sender: broadcast::Sender<Arc<Update>>,
    /// Names the hub's subscription covers; grows as clients ask.
    names: Mutex<HashSet<String>>,
    /// The subscription the hub's thread drains; replaced when names grow.
    subscription: Mutex<Option<Arc<Subscription>>>,
}

impl EventHub {
    pub(crate) fn new(graph: SharedGraph) -> Arc<EventHub> {
        let (sender, _) = broadcast::channel(CLIENT_BACKLOG);
        Arc::new(EventHub {
            graph,
            sender,
            names: Mutex::new(HashSet::new()),
            subscription: Mutex::new(None),
        })
    }

    /// A receiver of every update from now on, if the hub already covers
    /// `names` (no engine lock, no blocking: the common case).
    fn listen_now(&self, names: &[String]) -> Option<broadcast::Receiver<Arc<Update>>> {
        let covered = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let started = self
            .subscription
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        (started && names.iter().all(|n| covered.contains(n))).then(|| self.sender.subscribe())
    }

    /// Makes sure the hub's subscription covers `names` (taking the engine
    /// lock only when it must grow), starting the hub's thread the first
    /// time, and returns a receiver of every update from now on.
    fn listen(
        self: &Arc<Self>,
        names: &[String],
    ) -> Result<broadcast::Receiver<Arc<Update>>, String> {
        let receiver = self.sender.subscribe();
        let mut covered = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.iter().all(|n| covered.contains(n)) {
            return Ok(receiver);
        }
        let wanted: Vec<&str> = covered
            .iter()
            .map(String::as_str)
            .chain(names.iter().map(String::as_str))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let subscription = self
            .graph
            .lock()
            .subscribe_many(&wanted, SubscriptionMode::EveryChange, CLIENT_BACKLOG)
            .map_err(|e| e.to_string())?;
        covered.extend(names.iter().cloned());
        let mut slot = self.subscription.lock().unwrap_or_else(|p| p.into_inner());
        let first = slot.is_none();
        if let Some(old) = slot.replace(Arc::new(subscription)) {
            old.close();
        }
        drop(slot);
        if first {
            let hub = Arc::downgrade(self);
            std::thread::Builder::new()
                .name("dav2d-events".into())
                .spawn(move || run_hub(hub))
                .map_err(|e| format!("cannot start the event hub: {e}"))?;
        }
        Ok(receiver)
    }
}

/// Drains the hub's subscription into the broadcast until the server (and
/// so the hub) is gone.
fn run_hub(hub: Weak<EventHub>) {
    loop {
        let Some(hub) = hub.upgrade() else { return };
        let subscription = hub
            .subscription
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(subscription) = subscription else {
            return;
        };
        // Short waits, so a replaced subscription or a stopped server is
        // noticed promptly.
        for _ in 0..64 {
            match subscription.next_timeout(Duration::from_millis(50)) {
                // No receiver is not an error: updates nobody reads are dropped.
                Some(update) => {
                    let _ = hub.sender.send(Arc::new(update));
                }
                None => break,
            }
        }
    }
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
    let hub = Arc::clone(&state.events);
    let listened = match hub.listen_now(&names) {
        Some(receiver) => Ok(Ok(receiver)),
        None => {
            let names = names.clone();
            tokio::task::spawn_blocking(move || hub.listen(&names)).await
        }
    };
    let receiver = match listened {
        Ok(Ok(receiver)) => receiver,
        Ok(Err(message)) => {
            state.intake.metrics().request("/events", 404);
            return error_response(StatusCode::NOT_FOUND, message);
        }
        Err(_) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot start the event stream",
            );
        }
    };
    state.intake.metrics().request("/events", 200);
    let wanted: HashSet<String> = names.into_iter().collect();
    let dropped = state.intake.metrics().events_dropped.clone();
    let stream = futures_util::stream::unfold(
        (receiver, wanted, dropped),
        |(mut receiver, wanted, dropped)| async move {
            loop {
                match receiver.recv().await {
                    Ok(update) if wanted.contains(&*update.name) => {
                        let event = update_event(&update);
                        return Some((Ok::<Event, Infallible>(event), (receiver, wanted, dropped)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        dropped.inc_by(skipped);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
