//! The `/events` hub: one per server, holding the only subscriptions to the
//! engine and handing each update, once, to a broadcast channel as its
//! event text, written once. The handler in `events.rs` is one client of it.
//!
//! Two feeds: every change of the names plain clients asked for (a queue
//! per subscription, in order), and, for conflating clients (`?conflate=1`,
//! the dashboard), the newest value per (name, key) of the names they asked
//! for, taken every [`CONFLATE_EVERY`] from a subscription that keeps only
//! the newest per key, so a flood costs the engine a slot per key, not a
//! queued update, and the hub formats each key four times a second at most.
//! A constraint's transitions are never conflated: they come through the
//! every-change feed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use dav2d_core::{SharedGraph, Subscription, SubscriptionMode, Update};
use dav2d_wire::update_json;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::broadcast;

/// Updates a client may fall behind before it skips some.
const CLIENT_BACKLOG: usize = 4096;

/// How often conflating clients (`?conflate=1`, the dashboard) get a batch.
pub(crate) const CONFLATE_EVERY: Duration = Duration::from_millis(250);

/// The most (name, key) pairs one conflated batch holds; further pairs of
/// the same interval are skipped (counted as dropped).
const CONFLATE_KEYS: usize = 100_000;

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

/// What conflating clients get every [`CONFLATE_EVERY`]: the transitions of
/// the interval, in order, then the newest update of each (name, key) that
/// changed.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) events: Vec<Arc<Formatted>>,
}

/// Which feed a request grows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feed {
    EveryChange,
    Newest,
}

/// A client's request that a feed's subscription cover more names.
struct Grow {
    feed: Feed,
    names: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The one subscription of a server's event streams, fanned out. Its thread
/// owns the subscriptions: it drains them into the broadcasts and, when a
/// client asks for names not yet covered, subscribes anew (the only time it
/// takes the engine lock), so no client ever blocks a thread of its own.
pub(crate) struct EventHub {
    sender: broadcast::Sender<Arc<Formatted>>,
    conflated: broadcast::Sender<Arc<Batch>>,
    grow: Mutex<std::sync::mpsc::Sender<Grow>>,
    /// Names each feed's subscription covers.
    covered: Arc<Mutex<[HashSet<String>; 2]>>,
}

impl EventHub {
    /// The hub of `graph`'s updates; updates a conflated batch leaves out
    /// are counted in `dropped` (`dav2d_events_dropped_total`).
    pub(crate) fn new(graph: SharedGraph, dropped: Counter) -> Result<Arc<EventHub>, String> {
        let (sender, _) = broadcast::channel(CLIENT_BACKLOG);
        // A conflating client more than this many batches (4 s) behind
        // skips the oldest.
        let (conflated, _) = broadcast::channel(16);
        let (grow, requests) = std::sync::mpsc::channel();
        let covered = Arc::new(Mutex::new([HashSet::new(), HashSet::new()]));
        let mut hub = Hub {
            graph,
            requests,
            sender: sender.clone(),
            covered: Arc::clone(&covered),
            every: None,
            newest: None,
            batch: BatchBuilder {
                sender: conflated.clone(),
                latest: HashMap::new(),
                transitions: Vec::new(),
                since: Instant::now(),
                dropped,
            },
        };
        std::thread::Builder::new()
            .name("dav2d-events".into())
            .spawn(move || hub.run())
            .map_err(|e| format!("cannot start the event hub: {e}"))?;
        Ok(Arc::new(EventHub {
            sender,
            conflated,
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
        self.cover(Feed::EveryChange, names)
            .await
            .map(|()| receiver)
    }

    /// A receiver of the conflated batches from now on, once the hub covers
    /// `names` (newest values) and `constraints` (every transition).
    pub(crate) async fn listen_conflated(
        &self,
        names: &[String],
        constraints: &[String],
    ) -> Result<broadcast::Receiver<Arc<Batch>>, String> {
        let receiver = self.conflated.subscribe();
        self.cover(Feed::Newest, names).await?;
        self.cover(Feed::EveryChange, constraints).await?;
        Ok(receiver)
    }

    /// Returns once `feed`'s subscription covers `names`.
    async fn cover(&self, feed: Feed, names: &[String]) -> Result<(), String> {
        let covered = {
            let covered = self.covered.lock().unwrap_or_else(|p| p.into_inner());
            names.iter().all(|n| covered[feed as usize].contains(n))
        };
        if covered {
            return Ok(());
        }
        let (reply, replied) = tokio::sync::oneshot::channel();
        let request = Grow {
            feed,
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
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(message),
            Err(_) => Err("the event hub has stopped".to_string()),
        }
    }
}

/// The conflated batch being made.
struct BatchBuilder {
    sender: broadcast::Sender<Arc<Batch>>,
    /// The newest update per (name, key) of the interval.
    latest: HashMap<(Arc<str>, Arc<str>), Update>,
    transitions: Vec<Arc<Formatted>>,
    since: Instant,
    dropped: Counter,
}

impl BatchBuilder {
    fn newest(&mut self, update: Update) {
        let pair = (Arc::clone(&update.name), Arc::clone(&update.key));
        if self.latest.len() >= CONFLATE_KEYS && !self.latest.contains_key(&pair) {
            self.dropped.inc();
            return;
        }
        self.latest.insert(pair, update);
    }

    /// Sends the batch once the interval is over (formatting each key's
    /// newest update once).
    fn send_when_due(&mut self) {
        if self.since.elapsed() < CONFLATE_EVERY {
            return;
        }
        self.since = Instant::now();
        let mut events = std::mem::take(&mut self.transitions);
        events.extend(
            self.latest
                .drain()
                .map(|(_, update)| Arc::new(format_event(&update))),
        );
        if !events.is_empty() && self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Arc::new(Batch { events }));
        }
    }
}

/// The hub's thread and what it owns.
struct Hub {
    graph: SharedGraph,
    requests: std::sync::mpsc::Receiver<Grow>,
    sender: broadcast::Sender<Arc<Formatted>>,
    covered: Arc<Mutex<[HashSet<String>; 2]>>,
    every: Option<Subscription>,
    newest: Option<Subscription>,
    batch: BatchBuilder,
}

impl Hub {
    /// Grows the subscriptions on request and drains them into the
    /// broadcasts, until the server (and so the request channel) is gone.
    fn run(&mut self) {
        use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
        let mut next: Option<Grow> = None;
        loop {
            loop {
                let request = match next.take() {
                    Some(request) => request,
                    None => match self.requests.try_recv() {
                        Ok(request) => request,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    },
                };
                let answer = self.grow(request.feed, &request.names);
                let _ = request.reply.send(answer);
            }
            if self.every.is_none() && self.newest.is_none() {
                match self.requests.recv_timeout(Duration::from_millis(100)) {
                    Ok(request) => next = Some(request),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            // Short waits, so a request is served promptly.
            for _ in 0..64 {
                let update = match &self.every {
                    Some(every) => every.next_timeout(Duration::from_millis(20)),
                    None => {
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    }
                };
                if let Some(update) = &update {
                    let event = Arc::new(format_event(update));
                    if update.transition.is_some() && self.batch.sender.receiver_count() > 0 {
                        self.batch.transitions.push(Arc::clone(&event));
                    }
                    // No receiver is not an error: updates nobody reads are dropped.
                    let _ = self.sender.send(event);
                }
                self.take_newest();
                if update.is_none() {
                    break;
                }
            }
            self.take_newest();
        }
    }

    /// When a batch is due: the newest updates waiting, into it, and it out.
    fn take_newest(&mut self) {
        if self.batch.since.elapsed() < CONFLATE_EVERY {
            return;
        }
        if let Some(newest) = &self.newest {
            while let Some(update) = newest.try_next() {
                if update.transition.is_none() {
                    self.batch.newest(update);
                }
            }
        }
        self.batch.send_when_due();
    }

    /// Subscribes `feed` to what it covers and `names` together, replacing
    /// its subscription (the only time the hub takes the engine lock).
    fn grow(&mut self, feed: Feed, names: &[String]) -> Result<(), String> {
        let mut wanted =
            self.covered.lock().unwrap_or_else(|p| p.into_inner())[feed as usize].clone();
        wanted.extend(names.iter().cloned());
        let list: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let (mode, slot) = match feed {
            Feed::EveryChange => (SubscriptionMode::EveryChange, &mut self.every),
            Feed::Newest => (SubscriptionMode::Latest, &mut self.newest),
        };
        let grown = self
            .graph
            .lock()
            .subscribe_many(&list, mode, CLIENT_BACKLOG)
            .map_err(|error| error.to_string())?;
        // The new subscription exists before the old one closes: an update in
        // between may come twice, never not at all.
        if let Some(old) = slot.replace(grown) {
            old.close();
        }
        self.covered.lock().unwrap_or_else(|p| p.into_inner())[feed as usize] = wanted;
        Ok(())
    }
}
