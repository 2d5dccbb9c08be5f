//! The ingest servers' shared state, lifecycle and the work they hand to the
//! parser pool.
//!
//! One small tokio runtime runs the HTTP and TCP sockets; parsing and
//! applying run on a rayon pool sized to the machine's cores. `all`-edge
//! streams are admitted through a bounded queue of samples: HTTP answers 429
//! with `Retry-After` when it is full, TCP stops reading the socket until
//! there is room, so memory stays bounded. `latest` streams conflate in the
//! engine and are never pushed back.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dav2d_core::SharedGraph;
use tokio::sync::{Semaphore, watch};

use crate::metrics::Metrics;
use crate::pipeline::{
    ArrayCutter, Format, IngestReport, ParseOptions, Parsed, ParsedPiece, apply, apply_to,
    assemble, decompress, parse_then,
};
use crate::scan::BodyError;

/// How many times the I/O thread retries the engine lock for a small body
/// before handing it to the parser pool.
const INLINE_SPINS: usize = 256;

/// The HTTP server's settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Address to bind; loopback by default.
    pub bind: SocketAddr,
    /// Largest body accepted (after decompression), in bytes.
    pub max_body: usize,
    /// When set, every endpoint but `/healthz` requires `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// A client must send its request headers within this time.
    pub header_timeout: Duration,
    /// A client must send its whole body within this time.
    pub body_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 64 << 20,
            token: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The TCP server's settings.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Address to bind; loopback by default.
    pub bind: SocketAddr,
    /// Longest NDJSON line (or binary frame) accepted, in bytes.
    pub max_line: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7070)),
            max_line: 1 << 20,
        }
    }
}

/// Everything the ingest edge needs.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The HTTP server, if any.
    pub http: Option<HttpConfig>,
    /// The TCP server, if any.
    pub tcp: Option<TcpConfig>,
    /// Parser pool size; 0 means one per core.
    pub workers: usize,
    /// Parser limits.
    pub parse: ParseOptions,
    /// Samples for `all`-edge streams that may wait to be applied.
    pub all_queue_capacity: usize,
    /// Parts of the process outside the engine (persistence) that report
    /// their health to `/healthz` and their gauges to `/metrics`.
    pub status: Vec<Arc<dyn StatusSource>>,
}

/// Something that reports its health and gauges through the HTTP API, such
/// as the persistence thread; the ingest edge knows nothing else about it.
pub trait StatusSource: Send + Sync + std::fmt::Debug {
    /// `Err(reason)` while degraded (the process keeps serving).
    fn health(&self) -> Result<(), String>;
    /// Gauges for `/metrics`: (name without the `dav2d_` prefix, help, value).
    fn gauges(&self) -> Vec<(&'static str, &'static str, i64)>;
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            http: Some(HttpConfig::default()),
            tcp: Some(TcpConfig::default()),
            workers: 0,
            parse: ParseOptions::default(),
            all_queue_capacity: 1_000_000,
            status: Vec::new(),
        }
    }
}

/// Why the servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot bind the {what} server to {address}: {error}; set {setting} to a free address")]
    Bind {
        /// `HTTP` or `TCP`.
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// The setting to change.
        setting: &'static str,
        /// The OS error.
        error: std::io::Error,
    },
    /// The runtime or pool could not start.
    #[error("cannot start the ingest threads: {0}")]
    Threads(String),
}

/// Which streams feed `all` edges, refreshed from the graph now and then so
/// admission needs no engine lock per request.
struct AllEdgeStreams {
    names: HashSet<String>,
    checked: Instant,
    node_count: usize,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) status: Vec<Arc<dyn StatusSource>>,
    pub(crate) graph: SharedGraph,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) parse: ParseOptions,
    pub(crate) admission: Arc<Semaphore>,
    pub(crate) admission_capacity: usize,
    all_edge: Mutex<AllEdgeStreams>,
}

/// A body's outcome, for the transports to report.
pub(crate) enum Outcome {
    Applied(IngestReport),
    BadBody(BodyError),
    TooLarge(String),
    BadEncoding(String),
    Overloaded,
}

impl Shared {
    /// Whether any of `streams` feeds an `all` edge.
    fn feeds_all_edge<'a>(&self, mut streams: impl Iterator<Item = &'a str>) -> bool {
        let mut cache = match self.all_edge.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Refresh now and then, never waiting for a busy engine: the cache
        // was filled at start, and a stale answer is better than a stall.
        if cache.checked.elapsed() > Duration::from_millis(200)
            && let Some(graph) = self.graph.try_lock()
        {
            refresh(&mut cache, &graph);
        }
        !cache.names.is_empty() && streams.any(|s| cache.names.contains(s))
    }

    /// [`Shared::ingest`] on the calling (I/O) thread, for small bodies,
    /// only if the engine is free right now; `None` means "busy, use the pool".
    /// It never waits, so an I/O thread is never stalled by a long wave.
    pub(crate) fn ingest_now(
        &self,
        body: &[u8],
        format: Format,
        default_stream: Option<&str>,
        transport: &str,
    ) -> Option<Outcome> {
        // Another small request usually holds the engine for microseconds:
        // spin briefly rather than hop to the pool, but never block.
        let mut graph = (0..INLINE_SPINS).find_map(|_| {
            let graph = self.graph.try_lock();
            if graph.is_none() {
                std::hint::spin_loop();
            }
            graph
        })?;
        Some(self.ingest_with(
            body,
            None,
            format,
            default_stream,
            transport,
            false,
            Some(&mut graph),
        ))
    }

    /// Decompresses, parses, admits and applies one body on the parser
    /// pool. `wait` decides what a full `all` queue does: wait for room
    /// (TCP) or refuse (HTTP).
    pub(crate) fn ingest(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        format: Format,
        default_stream: Option<&str>,
        transport: &str,
        wait: bool,
    ) -> Outcome {
        self.ingest_with(
            body,
            encoding,
            format,
            default_stream,
            transport,
            wait,
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_with(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        format: Format,
        default_stream: Option<&str>,
        transport: &str,
        wait: bool,
        locked: Option<&mut dav2d_core::Graph>,
    ) -> Outcome {
        let counters = self.metrics.transport(transport);
        counters.bytes.inc_by(body.len() as u64);
        let inflated;
        let body = match encoding {
            None => body,
            Some(encoding) => match decompress(body, encoding, self.parse.max_body) {
                Ok(bytes) => {
                    inflated = bytes;
                    &inflated[..]
                }
                Err(crate::pipeline::DecompressError::TooLarge(limit)) => {
                    self.metrics.reject("too_large", "transport", 1);
                    return Outcome::TooLarge(format!(
                        "the body inflates past the {limit}-byte limit (max_body)"
                    ));
                }
                Err(error) => {
                    self.metrics.reject("bad_encoding", "transport", 1);
                    return Outcome::BadEncoding(error.to_string());
                }
            },
        };
        let started = Instant::now();
        let result = parse_then(
            body,
            format,
            default_stream,
            &self.parse,
            &self.pool,
            |parsed| self.admit_and_apply(parsed, started, transport, wait, locked),
        );
        match result {
            Ok(outcome) => outcome,
            Err(error) => {
                self.metrics.reject(error.reason, "transport", 1);
                Outcome::BadBody(error)
            }
        }
    }

    /// Finishes a JSON array body that was cut and parsed while it arrived
    /// (run it on the pool): applies the pieces' records when every piece
    /// parsed, else parses the whole body the careful way, which reports each
    /// bad record (or refuses a broken body whole).
    pub(crate) fn ingest_pieces(
        &self,
        pieces: &[ParsedPiece],
        cutter: &ArrayCutter,
        default_stream: Option<&str>,
    ) -> Outcome {
        let started = Instant::now();
        match assemble(pieces).filter(|_| !pieces.is_empty()) {
            Some(parsed) => {
                self.metrics
                    .transport("http")
                    .bytes
                    .inc_by(cutter.received() as u64);
                self.admit_and_apply(parsed, started, "http", false, None)
            }
            None => self.ingest(
                &cutter.body(),
                None,
                Format::Json,
                default_stream,
                "http",
                false,
            ),
        }
    }

    /// Admits decoded records (a full `all` queue waits or refuses, as
    /// `wait` says) and applies them, counting everything in the metrics.
    fn admit_and_apply(
        &self,
        parsed: Parsed<'_>,
        started: Instant,
        transport: &str,
        wait: bool,
        locked: Option<&mut dav2d_core::Graph>,
    ) -> Outcome {
        let counters = self.metrics.transport(transport);
        self.metrics
            .parse_seconds
            .observe(started.elapsed().as_secs_f64());
        let offered = parsed.len() + parsed.errors.len();
        counters.received.inc_by(offered as u64);
        let needs_admission = self.feeds_all_edge(parsed.iter().map(|(_, r)| &*r.stream));
        let permits = (parsed.len().min(self.admission_capacity)).max(1) as u32;
        let _permit = if needs_admission {
            let acquired = if wait {
                // TCP: wait for room; the socket is not read meanwhile.
                loop {
                    match self.admission.try_acquire_many(permits) {
                        Ok(permit) => break Some(permit),
                        Err(tokio::sync::TryAcquireError::Closed) => break None,
                        Err(tokio::sync::TryAcquireError::NoPermits) => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            } else {
                self.admission.try_acquire_many(permits).ok()
            };
            match acquired {
                Some(permit) => {
                    self.metrics
                        .queue_depth
                        .set((self.admission_capacity - self.admission.available_permits()) as i64);
                    Some(permit)
                }
                None => {
                    self.metrics
                        .reject("overloaded", "transport", offered as u64);
                    return Outcome::Overloaded;
                }
            }
        } else {
            None
        };
        let report = match locked {
            Some(graph) => apply_to(graph, parsed),
            None => apply(&self.graph, parsed),
        };
        counters.accepted.inc_by(report.accepted as u64);
        for (reason, count) in &report.by_reason {
            let stage = if engine_reason(reason) {
                "engine"
            } else {
                "decode"
            };
            self.metrics.reject(reason, stage, *count);
        }
        drop(_permit);
        self.metrics
            .queue_depth
            .set((self.admission_capacity - self.admission.available_permits()) as i64);
        Outcome::Applied(report)
    }
}

fn refresh(cache: &mut AllEdgeStreams, graph: &dav2d_core::Graph) {
    let node_count = graph.stats().nodes;
    if node_count != cache.node_count || cache.checked.elapsed() > Duration::from_secs(2) {
        cache.names = graph
            .streams()
            .into_iter()
            .filter(|s| graph.feeds_all_edge(&s.name))
            .map(|s| s.name)
            .collect();
        cache.node_count = node_count;
    }
    cache.checked = Instant::now();
}

fn engine_reason(reason: &str) -> bool {
    matches!(
        reason,
        "unknown_stream"
            | "node_output"
            | "not_a_number"
            | "not_finite"
            | "below_min"
            | "above_max"
    )
}

/// Running ingest servers. Dropping it stops them.
pub struct IngestServer {
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: watch::Sender<bool>,
    http_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
}

impl IngestServer {
    /// Binds the configured servers and starts serving `graph`. Binding
    /// errors are returned before anything runs.
    pub fn start(config: IngestConfig, graph: SharedGraph) -> Result<IngestServer, StartError> {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let workers = if config.workers == 0 {
            cores
        } else {
            config.workers
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("dav2d-parse-{i}"))
            .build()
            .map_err(|e| StartError::Threads(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.clamp(1, 4))
            .thread_name("dav2d-io")
            .enable_all()
            .build()
            .map_err(|e| StartError::Threads(e.to_string()))?;
        let metrics = Arc::new(Metrics::new(graph.clone(), config.status.clone()));
        let capacity = config.all_queue_capacity.max(1);
        let mut parse = config.parse.clone();
        if let Some(http) = &config.http {
            parse.max_body = http.max_body;
        }
        let shared = Arc::new(Shared {
            status: config.status.clone(),
            graph,
            pool,
            metrics: Arc::clone(&metrics),
            parse,
            admission: Arc::new(Semaphore::new(capacity)),
            admission_capacity: capacity,
            all_edge: Mutex::new(AllEdgeStreams {
                names: HashSet::new(),
                checked: Instant::now(),
                node_count: usize::MAX,
            }),
        });
        if let Ok(mut cache) = shared.all_edge.lock() {
            refresh(&mut cache, &shared.graph.lock());
        }
        let (shutdown, stop) = watch::channel(false);
        let bind = |what: &'static str, setting: &'static str, address: SocketAddr| {
            std::net::TcpListener::bind(address)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|error| StartError::Bind {
                    what,
                    address,
                    setting,
                    error,
                })
        };
        // Binds synchronously (errors before anything runs), serves on the runtime.
        let listen = |what: &'static str, setting: &'static str, address: SocketAddr| {
            let listener = bind(what, setting, address)?;
            let local = listener.local_addr().ok();
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map(|listener| (listener, local))
                .map_err(|e| StartError::Threads(e.to_string()))
        };
        let mut http_addr = None;
        if let Some(http) = config.http {
            let (listener, local) = listen("HTTP", "http.bind", http.bind)?;
            http_addr = local;
            runtime.spawn(crate::http::serve(
                listener,
                http,
                Arc::clone(&shared),
                stop.clone(),
            ));
        }
        let mut tcp_addr = None;
        if let Some(tcp) = config.tcp {
            let (listener, local) = listen("TCP", "tcp.bind", tcp.bind)?;
            tcp_addr = local;
            runtime.spawn(crate::tcp::serve(
                listener,
                tcp,
                Arc::clone(&shared),
                stop.clone(),
            ));
        }
        tracing::info!(http = ?http_addr, tcp = ?tcp_addr, workers, "Ingest servers started.");
        Ok(IngestServer {
            runtime: Some(runtime),
            shutdown,
            http_addr,
            tcp_addr,
            metrics,
        })
    }

    /// The HTTP server's bound address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The TCP server's bound address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The metrics, as `/metrics` serves them.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops accepting, closes connections and waits briefly for them.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
