//! The `/events` hub: one per server, holding the only subscription to the
//! engine (for every name any client asked for) and handing each update,
//! once, to a broadcast channel as its event text, written once. The
//! handler in `events.rs` is one client of it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use dav2d_core::{SharedGraph, Subscription, SubscriptionMode, Update};
use dav2d_wire::update_json;
use tokio::sync::broadcast;

/// Updates a client may fall behind before it skips some.
const CLIENT_BACKLOG: usize = 4096;

/// One update as the hub broadcasts it: the name clients filter by and the
/// event's text, written once.
pub(crate) struct Formatted {
    pub(crate) name: Arc<str>,
    pub(crate) text: Bytes,
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
    pub(crate) async fn listen(
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
