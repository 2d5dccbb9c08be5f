//! The two traits every connector implements, and what a running component
//! is handed.
//!
//! A component is built from its config (unstarted, cheap, no I/O), then
//! started with a [`Context`]; starting binds, connects or spawns and fails
//! before anything runs. Stopping is orderly and in a fixed order chosen by
//! the runtime: sources stop accepting first, the graph drains, then sinks
//! flush.

use std::net::SocketAddr;

use std::sync::Arc;

use dav2d_core::SharedGraph;

use crate::health::{Health, HealthBoard};

/// The health of a component that is up while it runs.
#[derive(Debug)]
struct Up;

impl Health for Up {
    fn status(&self) -> Result<(), String> {
        Ok(())
    }
}
use crate::intake::Intake;
use crate::metrics::Metrics;

/// What a component gets when it starts.
#[derive(Clone)]
pub struct Context {
    /// The shared intake, already labelled with this component's name and kind.
    pub intake: Intake,
    /// The runtime's I/O threads (tokio), for sockets and timers.
    pub io: tokio::runtime::Handle,
    /// Every running component's health (the HTTP API serves it).
    pub health: HealthBoard,
    /// Durable acknowledgements: lossless sinks report, sources wait.
    pub durability: std::sync::Arc<crate::Durability>,
    /// For a sink, what its [`Sink::delivery`] said: the mode of the
    /// subscriptions [`Context::subscribe_outputs`] makes (sources get
    /// `Conflating`).
    pub delivery: Delivery,
    /// Whether the graph already runs (a hot reload started this
    /// component): a store then records the live state instead of
    /// restoring its own over it.
    pub joining: bool,
}

impl Context {
    /// A subscription to every update of `names` (every node and
    /// constraint when empty) for a sink named `sink`, holding at most
    /// `capacity` updates: lossless (the graph's producers are held back at
    /// half of it) or conflating per key past it, as the sink's
    /// [`Delivery`] says.
    pub fn subscribe_outputs(
        &self,
        sink: &str,
        names: &[String],
        capacity: usize,
    ) -> Result<dav2d_core::Subscription, StartError> {
        let mut graph = self.graph().lock();
        let all: Vec<String>;
        let names = if names.is_empty() {
            all = graph.nodes().into_iter().map(|n| n.name).collect();
            &all[..]
        } else {
            names
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mode = match self.delivery {
            Delivery::Lossless => dav2d_core::SubscriptionMode::Lossless,
            Delivery::Conflating => dav2d_core::SubscriptionMode::EveryChange,
        };
        graph
            .subscribe_many(&refs, mode, capacity.max(1))
            .map_err(|e| StartError::Other(format!("{sink}: {e}")))
    }

    /// The graph the intake applies to.
    pub fn graph(&self) -> &SharedGraph {
        self.intake.graph()
    }

    /// The shared metrics registry.
    pub fn metrics(&self) -> &Metrics {
        self.intake.metrics()
    }
}

/// What a sink's [`drain`] does with the updates still waiting when it
/// stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtStop {
    /// Hands them on too (each `each` call should then be quick).
    Drain,
    /// Leaves them: the sink stops at once.
    Drop,
}

/// The loop of every sink that drains a subscription on a thread of its
/// own: `each` gets every update in order until `stop` turns true, then,
/// with [`AtStop::Drain`], those still waiting. It waits for the next
/// update at most 50 ms at a time, so it sees `stop` promptly.
pub fn drain(
    updates: &dav2d_core::Subscription,
    stop: &std::sync::atomic::AtomicBool,
    at_stop: AtStop,
    mut each: impl FnMut(dav2d_core::Update),
) {
    loop {
        let stopping = stop.load(std::sync::atomic::Ordering::Acquire);
        let next = match (stopping, at_stop) {
            (false, _) => updates.next_timeout(std::time::Duration::from_millis(50)),
            (true, AtStop::Drain) => updates.try_next(),
            (true, AtStop::Drop) => None,
        };
        match next {
            Some(update) => each(update),
            None if stopping => return,
            None => {}
        }
    }
}

/// Why a component could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address could not be bound.
    #[error("cannot bind the {what} server to {address}: {error}; set {setting} to a free address")]
    Bind {
        /// `HTTP`, `TCP`, ...
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// The setting to change, e.g. `http.bind`.
        setting: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// Anything else, said in full.
    #[error("{0}")]
    Other(String),
}

/// The error for a part this build of dav2d left out: `part` in words
/// (`MQTT`), `feature` the Cargo feature that brings it. `make run` with no
/// config builds only what the demo needs; everything else builds it all.
pub fn built_without(part: &str, feature: &str) -> String {
    format!(
        "this dav2d was built without {part} (Cargo feature `{feature}`): `make run` with no \
         CONFIG builds only what the demo needs; `make run CONFIG=...` or \
         `cargo build --release -p dav2d-cli` builds every part"
    )
}

/// Where samples enter: produces samples into its [`Intake`].
pub trait Source: Send {
    /// The component's name (unique in a runtime; its metrics label).
    fn name(&self) -> &str;
    /// Its kind, e.g. `http`, `tcp`, `synthetic`.
    fn kind(&self) -> &'static str;
    /// Starts producing. Errors (a busy port) come back before anything runs.
    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError>;
}

/// Whether a sink may lose intermediate updates under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every update is delivered or the sink reports that it cannot keep up
    /// (persistence): never merged away silently.
    Lossless,
    /// A slow reader sees the newest value and the skipped ones are counted
    /// (server-sent events, dashboards).
    Conflating,
}

impl Delivery {
    /// The label, e.g. in `/graph`.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Lossless => "lossless",
            Delivery::Conflating => "conflating",
        }
    }
}

/// Where results leave: consumes updates from subscriptions to the graph.
pub trait Sink: Send {
    /// The component's name.
    fn name(&self) -> &str;
    /// Its kind, e.g. `persistence`.
    fn kind(&self) -> &'static str;
    /// Whether it is lossless or conflating.
    fn delivery(&self) -> Delivery;
    /// Starts consuming.
    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError>;
}

/// A started source or sink.
pub trait Running: Send {
    /// The address it listens on, for servers.
    fn address(&self) -> Option<SocketAddr> {
        None
    }
    /// Its health, which the runtime pins to the board (`/healthz`,
    /// `dav2d_component_up`, its gauges in `/metrics`); by default it is up
    /// while it runs.
    fn health(&self) -> Arc<dyn Health> {
        Arc::new(Up)
    }
    /// Stops it and waits for it: a source stops accepting, a sink flushes.
    fn stop(self: Box<Self>);
}

/// Binds a listener synchronously (so a busy port is an error before
/// anything runs) and hands it to the I/O runtime. `what` (`HTTP`) and
/// `setting` (`http.bind`) name it in the error.
pub fn bind(
    io: &tokio::runtime::Handle,
    what: &'static str,
    setting: &str,
    address: SocketAddr,
) -> Result<tokio::net::TcpListener, StartError> {
    let listener = std::net::TcpListener::bind(address)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|error| StartError::Bind {
            what,
            address,
            setting: setting.to_string(),
            error,
        })?;
    let _guard = io.enter();
    tokio::net::TcpListener::from_std(listener).map_err(|e| StartError::Other(e.to_string()))
}

/// A server's accept loop running on the I/O threads: the `Running` of
/// every listening source (HTTP, TCP, later brokers' listeners).
pub struct ServerTask {
    address: Option<SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    served: Option<tokio::task::JoinHandle<()>>,
    io: tokio::runtime::Handle,
    health: Option<Arc<dyn Health>>,
}

impl ServerTask {
    /// Spawns `serve(stop)` on `io`; `stop` turns true when the task must
    /// stop accepting.
    pub fn spawn<F>(
        io: tokio::runtime::Handle,
        address: Option<SocketAddr>,
        serve: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> F,
    ) -> ServerTask
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (shutdown, stop) = tokio::sync::watch::channel(false);
        let served = io.spawn(serve(stop));
        ServerTask {
            address,
            shutdown,
            served: Some(served),
            io,
            health: None,
        }
    }

    /// The server's health is `health` (a listener's open connections).
    pub fn with_health(mut self, health: Arc<dyn Health>) -> ServerTask {
        self.health = Some(health);
        self
    }
}

impl Running for ServerTask {
    fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    fn health(&self) -> Arc<dyn Health> {
        match &self.health {
            Some(health) => Arc::clone(health),
            None => Arc::new(Up),
        }
    }

    fn stop(mut self: Box<Self>) {
        let _ = self.shutdown.send(true);
        if let Some(served) = self.served.take() {
            // Stop accepting; open connections finish what they were doing.
            let _ = self.io.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(2), served).await
            });
        }
    }
}

/// A component's own thread (a fleet, a persister, a broker client's loop):
/// the `Running` of every component that runs on one. `stop` asks the loop
/// to end through the flag it was given, then joins it.
pub struct ThreadTask {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    health: Arc<dyn Health>,
    name: String,
}

impl ThreadTask {
    /// Starts `body` on a thread named `name`; `body` runs until the flag it
    /// gets turns true. `health` is what the runtime pins for it.
    pub fn spawn(
        name: &str,
        health: Arc<dyn Health>,
        body: impl FnOnce(Arc<std::sync::atomic::AtomicBool>) + Send + 'static,
    ) -> Result<ThreadTask, StartError> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(flag))
            .map_err(|e| StartError::Other(format!("cannot start the {name} thread: {e}")))?;
        Ok(ThreadTask {
            stop,
            thread: Some(thread),
            health,
            name: name.to_string(),
        })
    }
}

impl Running for ThreadTask {
    fn health(&self) -> Arc<dyn Health> {
        Arc::clone(&self.health)
    }

    fn stop(mut self: Box<Self>) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(thread = %self.name, "A component's thread panicked while stopping.");
        }
    }
}
