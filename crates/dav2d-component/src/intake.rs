//! The intake: how every source's samples reach the engine.
//!
//! Decoding runs on a rayon pool sized to the machine's cores (a 10 MB body
//! is split and parsed on every core); decoded records are admitted and then
//! applied under the engine lock in one batch per body, followed by the
//! wave. `all`-edge streams are admitted through a bounded queue of samples:
//! a full queue answers "retry later" ([`Admission::Refuse`]: HTTP 429) or
//! waits for room ([`Admission::Wait`]: TCP stops reading the socket), so
//! memory stays bounded. `latest` streams conflate in the engine and are
//! never pushed back. Every count lands in the shared metrics under the
//! calling component's labels. (Limits on sizes, keys and memory belong
//! here too, so every connector inherits them.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dav2d_core::{BatchReport, Graph, Keys, RejectReason, SharedGraph, Stage};
use dav2d_wire::{
    ArrayCutter, BodyError, DecompressError, Format, ParseOptions, Parsed, ParsedPiece, assemble,
    decompress, parse_then,
};
use tokio::sync::Semaphore;

use crate::metrics::{ComponentCounters, Metrics};

/// Records applied per hold of the engine lock.
const APPLY_CHUNK: usize = 16_384;

/// How many times a caller retries the engine lock for a small body before
/// handing it to the parser pool.
const INLINE_SPINS: usize = 256;

/// The intake's settings.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    /// Parser pool size; 0 means one per core.
    pub workers: usize,
    /// Parser limits.
    pub parse: ParseOptions,
    /// Samples for `all`-edge streams that may wait to be applied.
    pub all_queue_capacity: usize,
    /// Bytes of bodies in flight across every connection of every source
    /// (received and not yet applied); a body that does not fit is refused
    /// with "retry later" (HTTP 503 with `Retry-After`).
    pub body_budget: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            parse: ParseOptions::default(),
            all_queue_capacity: 1_000_000,
            body_budget: 64 << 20,
        }
    }
}

/// The unit the body budget counts in, so a permit count fits a `u32`.
const BUDGET_UNIT: usize = 1024;

/// A share of the body budget, held while a body is in flight and given
/// back when dropped.
#[derive(Debug)]
pub struct BodyPermit {
    budget: Arc<Semaphore>,
    units: u32,
}

impl BodyPermit {
    /// Takes `more` bytes on top of what this permit holds, if the budget
    /// has them (never waits).
    pub fn grow(&mut self, more: usize) -> bool {
        let units = units_of(more);
        match self.budget.try_acquire_many(units) {
            Ok(permit) => {
                permit.forget();
                self.units = self.units.saturating_add(units);
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes this permit holds.
    pub fn bytes(&self) -> usize {
        self.units as usize * BUDGET_UNIT
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        self.budget.add_permits(self.units as usize);
    }
}

fn units_of(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX)
}

/// What a full `all`-edge queue does to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Wait for room (the caller stops reading its peer meanwhile).
    Wait,
    /// Refuse the batch at once with [`Outcome::Overloaded`].
    Refuse,
}

/// What happened to one ingested batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestReport {
    /// Samples applied.
    pub accepted: usize,
    /// Samples rejected, at decoding or by the engine.
    pub rejected: usize,
    /// The first rejections in batch order: (index, reason in words).
    pub errors: Vec<(usize, String)>,
    /// Rejections by reason and stage, all of them.
    pub by_reason: Vec<(RejectReason, Stage, u64)>,
    /// The graph's settled-wave mark after this batch's wave: the batch is
    /// durable once the lossless sinks made this mark durable.
    pub settled: u64,
}

/// A body's outcome, for the transports to answer.
#[derive(Debug)]
pub enum Outcome {
    /// Decoded and applied (good records applied, bad ones reported).
    Applied(IngestReport),
    /// Refused whole: it cannot be JSON, is broken or too deep.
    BadBody(BodyError),
    /// It inflates past the limit.
    TooLarge(String),
    /// Its compression is broken.
    BadEncoding(String),
    /// The `all`-edge queue is full: retry later.
    Overloaded,
    /// A lossless sink (persistence) is behind: retry later.
    SinkBehind,
}

/// The longest a waiting producer holds back for a lossless sink that is
/// behind; past it the batch is applied and the sink, if it overflows,
/// counts what it merged.
const MAX_HOLD_BACK: Duration = Duration::from_secs(30);

/// Which streams feed `all` edges, refreshed from the graph now and then so
/// admission needs no engine lock per batch.
struct AllEdgeStreams {
    names: HashSet<String>,
    checked: Instant,
    node_count: usize,
}

struct Shared {
    graph: SharedGraph,
    pool: rayon::ThreadPool,
    metrics: Arc<Metrics>,
    parse: ParseOptions,
    admission: Semaphore,
    admission_capacity: usize,
    all_edge: Mutex<AllEdgeStreams>,
    body_budget: Arc<Semaphore>,
    backpressure: Arc<dav2d_core::Backpressure>,
    /// Set when clustering: where decoded samples go instead of the engine.
    forward: std::sync::OnceLock<Arc<dyn Forward>>,
    /// Where readers look up keys other instances apply (clustering).
    cluster_reads: std::sync::OnceLock<Arc<dyn ClusterReads>>,
    /// The graph's clock, for the timestamps of forwarded samples that
    /// gave none (read without the engine lock).
    clock: Arc<dyn dav2d_core::Clock>,
}

/// One decoded sample handed on instead of applied (clustering).
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: &'a dav2d_core::Value,
    /// The timestamp (the forwarding instance's clock when the sample gave none).
    pub ts: i64,
}

/// Where decoded samples go instead of the local engine (the cluster's
/// partitioned stream); it returns once they are stored, or says why not.
pub trait Forward: Send + Sync {
    /// Hands `samples` on; `Err` refuses the batch ("retry later").
    fn forward(&self, samples: &[Forwarded<'_>]) -> Result<(), String>;
}

/// A reading another instance published, as `/state` answers it (JSON).
pub type ClusterReading =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<Vec<u8>>, String>> + Send>>;

/// Where readers find the keys this instance does not apply (clustering):
/// each partition's owner publishes its keys' latest values and alert
/// states to a replicated bucket, and `/state` on any instance reads a key
/// it does not own from there.
pub trait ClusterReads: Send + Sync {
    /// Whether this instance applies `key` (owns its partition).
    fn owns(&self, key: &str) -> bool;
    /// The latest reading of (`name`, `key`) as its owner published it, as
    /// the JSON `/state` answers with; `None` when there is none yet.
    fn latest(&self, name: &str, key: &str) -> ClusterReading;
}

/// The shared way into the engine, labelled with the component using it.
/// Cloning is cheap; [`Intake::for_component`] relabels.
#[derive(Clone)]
pub struct Intake {
    shared: Arc<Shared>,
    counters: ComponentCounters,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("component", &self.counters.component)
            .finish_non_exhaustive()
    }
}

impl Intake {
    /// Creates the intake (and its parser pool) over `graph`.
    pub fn new(
        config: &IntakeConfig,
        graph: SharedGraph,
        metrics: Arc<Metrics>,
    ) -> Result<Intake, String> {
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            config.workers
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("dav2d-parse-{i}"))
            .build()
            .map_err(|e| format!("cannot start the parser pool: {e}"))?;

        let capacity = config.all_queue_capacity.max(1);
        // Unregistered: only relabelled intakes (one per component) count
        // into `/metrics`, so no series stands for the unlabelled one.
        let counters = crate::metrics::ComponentCounters::unregistered();
        let (backpressure, clock) = {
            let locked = graph.lock();
            (locked.backpressure(), Arc::clone(locked.clock()))
        };
        let shared = Arc::new(Shared {
            graph,
            pool,
            metrics,
            parse: config.parse.clone(),
            admission: Semaphore::new(capacity),
            admission_capacity: capacity,
            all_edge: Mutex::new(AllEdgeStreams {
                names: HashSet::new(),
                checked: Instant::now(),
                node_count: usize::MAX,
            }),
            body_budget: Arc::new(Semaphore::new(
                (config.body_budget / BUDGET_UNIT).clamp(1, u32::MAX as usize),
            )),
            backpressure,
            forward: std::sync::OnceLock::new(),
            cluster_reads: std::sync::OnceLock::new(),
            clock,
        });
        if let Ok(mut cache) = shared.all_edge.lock() {
            refresh(&mut cache, &shared.graph.lock());
        }
        Ok(Intake { shared, counters })
    }

    /// The same intake, counting under `name` and `kind`.
    pub fn for_component(&self, name: &str, kind: &'static str) -> Intake {
        Intake {
            shared: Arc::clone(&self.shared),
            counters: self.shared.metrics.component(name, kind),
        }
    }

    /// The component this intake counts for.
    pub fn component(&self) -> &str {
        &self.counters.component
    }

    /// The graph samples are applied to.
    pub fn graph(&self) -> &SharedGraph {
        &self.shared.graph
    }

    /// The shared metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The parser limits.
    pub fn parse_options(&self) -> &ParseOptions {
        &self.shared.parse
    }

    /// How many parser workers there are.
    pub fn workers(&self) -> usize {
        self.shared.pool.current_num_threads()
    }

    /// A share of the body budget for `bytes` about to be received, or
    /// `None` (counted as `body_budget`) when bodies in flight already hold it.
    pub fn reserve_body(&self, bytes: usize) -> Option<BodyPermit> {
        let units = units_of(bytes.max(1));
        match self.shared.body_budget.try_acquire_many(units) {
            Ok(permit) => {
                permit.forget();
                Some(BodyPermit {
                    budget: Arc::clone(&self.shared.body_budget),
                    units,
                })
            }
            Err(_) => {
                self.reject(RejectReason::BodyBudget, 1);
                None
            }
        }
    }

    /// Runs `work` on the parser pool.
    pub fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        self.shared.pool.spawn(work);
    }

    /// Counts a refusal of a whole request or message.
    pub fn reject(&self, reason: RejectReason, count: u64) {
        self.shared
            .metrics
            .reject(&self.counters, reason, Stage::Transport, count);
    }

    /// Whether any of `streams` feeds an `all` edge.
    fn feeds_all_edge<'a>(&self, mut streams: impl Iterator<Item = &'a str>) -> bool {
        let mut cache = match self.shared.all_edge.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Refresh now and then, never waiting for a busy engine: the cache
        // was filled at start, and a stale answer is better than a stall.
        if cache.checked.elapsed() > Duration::from_millis(200)
            && let Some(graph) = self.shared.graph.try_lock()
        {
            refresh(&mut cache, &graph);
        }
        !cache.names.is_empty() && streams.any(|s| cache.names.contains(s))
    }

    /// [`Intake::ingest`] on the calling thread, for small bodies, only if
    /// the engine is free right now; `None` means "busy, use the pool". It
    /// never waits, so an I/O thread is never stalled by a long wave.
    pub fn ingest_now(
        &self,
        body: &[u8],
        format: Format,
        default_stream: Option<&str>,
    ) -> Option<Outcome> {
        if self.forwards() {
            // Forwarding waits on the network: never on an I/O thread.
            return None;
        }
        // Another small request usually holds the engine for microseconds:
        // spin briefly rather than hop to the pool, but never block.
        let mut graph = (0..INLINE_SPINS).find_map(|_| {
            let graph = self.shared.graph.try_lock();
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
            Admission::Refuse,
            Some(&mut graph),
        ))
    }

    /// Decompresses, decodes, admits and applies one body; call it on the
    /// parser pool ([`Intake::spawn`]) or another thread that may block.
    pub fn ingest(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        format: Format,
        default_stream: Option<&str>,
        admission: Admission,
    ) -> Outcome {
        self.ingest_with(body, encoding, format, default_stream, admission, None)
    }

    fn ingest_with(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        format: Format,
        default_stream: Option<&str>,
        admission: Admission,
        locked: Option<&mut Graph>,
    ) -> Outcome {
        self.counters.bytes.inc_by(body.len() as u64);
        let inflated;
        let body = match encoding {
            None => body,
            Some(encoding) => match decompress(body, encoding, self.shared.parse.max_body) {
                Ok(bytes) => {
                    inflated = bytes;
                    &inflated[..]
                }
                Err(DecompressError::TooLarge(limit)) => {
                    self.reject(RejectReason::TooLarge, 1);
                    return Outcome::TooLarge(format!(
                        "the body inflates past the {limit}-byte limit (max_body)"
                    ));
                }
                Err(error) => {
                    self.reject(RejectReason::BadEncoding, 1);
                    return Outcome::BadEncoding(error.to_string());
                }
            },
        };
        let started = Instant::now();
        let result = parse_then(
            body,
            format,
            default_stream,
            &self.shared.parse,
            &self.shared.pool,
            |parsed| self.admit_and_apply(parsed, started, admission, locked),
        );
        match result {
            Ok(outcome) => outcome,
            Err(error) => {
                self.reject(error.reason, 1);
                Outcome::BadBody(error)
            }
        }
    }

    /// From now on, decoded samples go to `forward` instead of the engine
    /// (clustering: the partitioned stream; the owner of each partition
    /// applies them). Set once, before the sources start.
    pub fn set_forward(&self, forward: Arc<dyn Forward>) -> Result<(), String> {
        self.shared
            .forward
            .set(forward)
            .map_err(|_| "this intake already forwards".to_string())
    }

    /// From now on, readers look up the keys this instance does not own
    /// in `reads` (clustering).
    pub fn set_cluster_reads(&self, reads: Arc<dyn ClusterReads>) -> Result<(), String> {
        self.shared
            .cluster_reads
            .set(reads)
            .map_err(|_| "this intake already reads from a cluster".to_string())
    }

    /// Where the keys this instance does not own are read, when clustering.
    pub fn cluster_reads(&self) -> Option<&Arc<dyn ClusterReads>> {
        self.shared.cluster_reads.get()
    }

    /// Whether decoded samples are forwarded rather than applied.
    pub fn forwards(&self) -> bool {
        self.shared.forward.get().is_some()
    }

    /// Applies one broker message for `stream` whose topic names `key`: a
    /// bare number, a JSON sample or a JSON array of samples (decoded and
    /// rejected like HTTP bodies; samples that give no key get `key`, no
    /// stream: `stream`). Call it where blocking is allowed.
    pub fn ingest_message(
        &self,
        payload: &[u8],
        stream: &str,
        key: &str,
        admission: Admission,
    ) -> Outcome {
        self.message(payload, stream, key, admission, true)
    }

    /// What a broker connector does with one message on `topic`: routes it
    /// to its (stream, key), applies it ([`Intake::ingest_message`]), trying
    /// again for up to 30 s while the engine or the cluster is busy, logs and
    /// counts its rejections in `health`. The settled mark of the wave that
    /// applied it (`0` for a message refused for good: unrouted or bad, which
    /// is acknowledged all the same, since it would only come back), or
    /// `None` when it could not be applied (leave it unacknowledged for the
    /// broker to send again).
    pub fn deliver(
        &self,
        routes: &[crate::Route],
        topic: &str,
        payload: &[u8],
        health: &crate::BrokerHealth,
    ) -> Option<u64> {
        let Some((stream, key)) = crate::Route::resolve(routes, topic) else {
            tracing::warn!(
                topic,
                "A broker message matches no route's template; skipped."
            );
            health.message(1);
            return Some(0);
        };
        let busy = |outcome: &Outcome| matches!(outcome, Outcome::Overloaded | Outcome::SinkBehind);
        let mut outcome = self.ingest_message(payload, &stream, key, Admission::Wait);
        for _ in 0..600 {
            if !busy(&outcome) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            outcome = self.ingest_message(payload, &stream, key, Admission::Wait);
        }
        match outcome {
            Outcome::Applied(report) => {
                for (index, reason) in &report.errors {
                    tracing::warn!(topic, index, %reason, "A broker sample was rejected.");
                }
                health.message(report.rejected as u64);
                Some(report.settled)
            }
            Outcome::Overloaded | Outcome::SinkBehind => {
                tracing::warn!(
                    topic,
                    "A broker message could not be applied for 30 s; it is left unacknowledged for the broker to send again."
                );
                health.message(1);
                None
            }
            other => {
                tracing::warn!(topic, outcome = ?other, "A broker message was rejected.");
                health.message(1);
                Some(0)
            }
        }
    }

    /// [`Intake::ingest_message`] applied here even when this intake
    /// forwards: what a partition's owner does with the partitioned stream.
    pub fn apply_message_locally(&self, payload: &[u8], stream: &str, key: &str) -> Outcome {
        self.message(payload, stream, key, Admission::Wait, false)
    }

    fn message(
        &self,
        payload: &[u8],
        stream: &str,
        key: &str,
        admission: Admission,
        may_forward: bool,
    ) -> Outcome {
        let text = std::str::from_utf8(payload).map(str::trim).unwrap_or("");
        if let Ok(value) = text.parse::<f64>() {
            let keys = Keys::One(key);
            return match self.shared.forward.get() {
                Some(forward) if may_forward => {
                    self.forward_numbers(forward.as_ref(), stream, keys, &[value])
                }
                _ => self.apply_numbers(stream, keys, &[value], admission),
            };
        }
        self.counters.bytes.inc_by(payload.len() as u64);
        let started = Instant::now();
        let result = parse_then(
            payload,
            Format::Json,
            Some(stream),
            &self.shared.parse,
            &self.shared.pool,
            |mut parsed| {
                let fill = |record: &mut dav2d_wire::WireRecord<'_>| {
                    if record.key.is_empty() {
                        record.key = std::borrow::Cow::Owned(key.to_string());
                    }
                };
                parsed.records.iter_mut().for_each(fill);
                for (_, part) in &mut parsed.more {
                    part.to_mut().iter_mut().for_each(fill);
                }
                if !may_forward {
                    return self.apply(parsed, started, admission, None);
                }
                self.admit_and_apply(parsed, started, admission, None)
            },
        );
        match result {
            Ok(outcome) => outcome,
            Err(error) => {
                self.reject(error.reason, 1);
                Outcome::BadBody(error)
            }
        }
    }

    /// Finishes a JSON array body that was cut and parsed while it arrived
    /// (run it on the pool): applies the pieces' records when every piece
    /// parsed, else parses the whole body the careful way, which reports each
    /// bad record (or refuses a broken body whole).
    pub fn ingest_pieces(
        &self,
        pieces: &[ParsedPiece],
        cutter: &ArrayCutter,
        default_stream: Option<&str>,
    ) -> Outcome {
        let started = Instant::now();
        self.shared.metrics.parsed_while_arriving.inc();
        match assemble(pieces).filter(|_| !pieces.is_empty()) {
            Some(parsed) => {
                self.counters.bytes.inc_by(cutter.received() as u64);
                self.admit_and_apply(parsed, started, Admission::Refuse, None)
            }
            None => self.ingest(
                &cutter.body(),
                None,
                Format::Json,
                default_stream,
                Admission::Refuse,
            ),
        }
    }

    /// Pushes a batch of numbers for one stream (a native source), admitted
    /// like any other batch, and runs the wave; when clustering, forwards
    /// them to the partitioned stream instead.
    pub fn push_numbers(
        &self,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        admission: Admission,
    ) -> Outcome {
        match self.shared.forward.get() {
            Some(forward) => self.forward_numbers(forward.as_ref(), stream, keys, values),
            None => self.apply_numbers(stream, keys, values, admission),
        }
    }

    fn apply_numbers(
        &self,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        admission: Admission,
    ) -> Outcome {
        self.counters.received.inc_by(values.len() as u64);
        if !self.hold_back(values.len(), admission) {
            return Outcome::SinkBehind;
        }
        let feeds_all = self.feeds_all_edge(std::iter::once(stream));
        let Some(_permit) = self.admit(feeds_all, values.len(), values.len(), admission) else {
            return Outcome::Overloaded;
        };
        let (report, settled) = {
            let mut graph = self.shared.graph.lock();
            let report = graph.push_numbers(stream, keys, values, None);
            graph.run_wave();
            (report, graph.settled())
        };
        let mut report = self.report(report, &[]);
        report.settled = settled;
        Outcome::Applied(report)
    }

    /// Honours a lossless sink that is behind: `Wait` holds the caller (up
    /// to [`MAX_HOLD_BACK`]); `Refuse` refuses the `offered` samples, counted
    /// as `sink_behind`. True when the batch may go on.
    fn hold_back(&self, offered: usize, admission: Admission) -> bool {
        let pressure = &self.shared.backpressure;
        if !pressure.is_raised() {
            return true;
        }
        match admission {
            Admission::Refuse => {
                self.reject(RejectReason::SinkBehind, offered as u64);
                false
            }
            Admission::Wait => {
                let started = Instant::now();
                while pressure.is_raised() && started.elapsed() < MAX_HOLD_BACK {
                    std::thread::sleep(Duration::from_millis(1));
                }
                true
            }
        }
    }

    /// Takes room in the `all`-edge queue for `samples` good samples,
    /// waiting or refusing as `admission` says; `None` is refused, and the
    /// `offered` samples (good and bad) are counted as overloaded.
    fn admit(
        &self,
        needed: bool,
        samples: usize,
        offered: usize,
        admission: Admission,
    ) -> Option<Option<tokio::sync::SemaphorePermit<'_>>> {
        if !needed {
            return Some(None);
        }
        let shared = &self.shared;
        let permits = samples.min(shared.admission_capacity).max(1) as u32;
        let acquired = match admission {
            // Wait for room; the caller's peer is not read meanwhile.
            Admission::Wait => loop {
                match shared.admission.try_acquire_many(permits) {
                    Ok(permit) => break Some(permit),
                    Err(tokio::sync::TryAcquireError::Closed) => break None,
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            },
            Admission::Refuse => shared.admission.try_acquire_many(permits).ok(),
        };
        match acquired {
            Some(permit) => {
                self.set_queue_depth();
                Some(Some(permit))
            }
            None => {
                self.reject(RejectReason::Overloaded, offered as u64);
                None
            }
        }
    }

    fn set_queue_depth(&self) {
        let shared = &self.shared;
        shared
            .metrics
            .queue_depth
            .set((shared.admission_capacity - shared.admission.available_permits()) as i64);
    }

    /// Admits decoded records and applies them, counting everything.
    fn admit_and_apply(
        &self,
        parsed: Parsed<'_>,
        started: Instant,
        admission: Admission,
        locked: Option<&mut Graph>,
    ) -> Outcome {
        if let Some(forward) = self.shared.forward.get() {
            return self.forward(forward.as_ref(), parsed, started);
        }
        self.apply(parsed, started, admission, locked)
    }

    /// Hands `parsed` to `forward` (clustering) and reports it as accepted
    /// once stored; its decode rejections are reported as usual.
    fn forward(&self, forward: &dyn Forward, parsed: Parsed<'_>, started: Instant) -> Outcome {
        self.shared
            .metrics
            .parse_seconds
            .observe(started.elapsed().as_secs_f64());
        let now = self.shared.clock.now_ns();
        let samples: Vec<Forwarded<'_>> = parsed
            .iter()
            .map(|(_, r)| Forwarded {
                stream: &r.stream,
                key: &r.key,
                value: &r.value,
                ts: r.ts.unwrap_or(now),
            })
            .collect();
        self.counters
            .received
            .inc_by((samples.len() + parsed.errors.len()) as u64);
        self.forward_samples(forward, &samples, &parsed.errors)
    }

    /// Forwards `samples`; accepted once stored, refused ("retry later")
    /// when the cluster did not take them.
    fn forward_samples(
        &self,
        forward: &dyn Forward,
        samples: &[Forwarded<'_>],
        decode_errors: &[dav2d_wire::RecordError],
    ) -> Outcome {
        if let Err(error) = forward.forward(samples) {
            tracing::warn!(%error, "Forwarding to the cluster failed; the batch is refused.");
            return Outcome::Overloaded;
        }
        let mut report = self.report(BatchReport::default(), decode_errors);
        report.accepted = samples.len();
        Outcome::Applied(report)
    }

    /// [`Intake::push_numbers`] when clustering: the numbers go to the
    /// partitioned stream, stamped with the graph's clock.
    fn forward_numbers(
        &self,
        forward: &dyn Forward,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
    ) -> Outcome {
        self.counters.received.inc_by(values.len() as u64);
        let now = self.shared.clock.now_ns();
        let values: Vec<dav2d_core::Value> = values
            .iter()
            .map(|v| dav2d_core::Value::Float(*v))
            .collect();
        let samples: Vec<Forwarded<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, value)| Forwarded {
                stream,
                key: match keys {
                    Keys::One(key) => key,
                    Keys::Many(keys) => keys.get(i).copied().unwrap_or(""),
                },
                value,
                ts: now,
            })
            .collect();
        self.forward_samples(forward, &samples, &[])
    }

    fn apply(
        &self,
        parsed: Parsed<'_>,
        started: Instant,
        admission: Admission,
        locked: Option<&mut Graph>,
    ) -> Outcome {
        self.shared
            .metrics
            .parse_seconds
            .observe(started.elapsed().as_secs_f64());
        let offered = parsed.len() + parsed.errors.len();
        self.counters.received.inc_by(offered as u64);
        if !self.hold_back(offered, admission) {
            return Outcome::SinkBehind;
        }
        let needed = self.feeds_all_edge(parsed.iter().map(|(_, r)| &*r.stream));
        let Some(permit) = self.admit(needed, parsed.len(), offered, admission) else {
            return Outcome::Overloaded;
        };
        let mut batch = BatchReport::default();
        let settled = match locked {
            Some(graph) => {
                graph.push_records(parsed.samples(), &mut batch);
                graph.run_wave();
                graph.settled()
            }
            None => {
                // A large body is applied a chunk per lock hold, so other
                // producers and readers get the engine between chunks
                // instead of waiting for millions of records. The wave runs
                // once, after the last chunk (a producer that takes the lock
                // in between runs what is pending in its own wave), so a key
                // the body updates many times is still evaluated once.
                let mut samples = parsed.samples().peekable();
                loop {
                    let mut graph = self.shared.graph.lock();
                    graph.push_records(samples.by_ref().take(APPLY_CHUNK), &mut batch);
                    if samples.peek().is_none() {
                        graph.run_wave();
                        break graph.settled();
                    }
                    drop(graph);
                    // Let a waiting producer take the lock before the next chunk.
                    std::thread::yield_now();
                }
            }
        };
        drop(permit);
        self.set_queue_depth();
        let mut report = self.report(batch, &parsed.errors);
        report.settled = settled;
        Outcome::Applied(report)
    }

    /// Merges the engine's report and the decoding errors in batch order,
    /// counting both.
    fn report(&self, batch: BatchReport, decode: &[dav2d_wire::RecordError]) -> IngestReport {
        let metrics = &self.shared.metrics;
        self.counters.accepted.inc_by(batch.accepted as u64);
        let mut by_reason: Vec<(RejectReason, Stage, u64)> = batch
            .by_reason
            .iter()
            .map(|(reason, count)| (*reason, Stage::Engine, *count))
            .collect();
        for error in decode {
            match by_reason
                .iter_mut()
                .find(|(r, s, _)| *r == error.reason && *s == Stage::Decode)
            {
                Some((_, _, n)) => *n += 1,
                None => by_reason.push((error.reason, Stage::Decode, 1)),
            }
        }
        for (reason, stage, count) in &by_reason {
            metrics.reject(&self.counters, *reason, *stage, *count);
        }
        let mut errors: Vec<(usize, String)> = decode
            .iter()
            .take(BatchReport::MAX_ERRORS)
            .map(|e| (e.index, e.message.clone()))
            .chain(batch.errors.iter().map(|(i, r)| (*i, r.to_string())))
            .collect();
        errors.sort_by_key(|(i, _)| *i);
        errors.truncate(BatchReport::MAX_ERRORS);
        IngestReport {
            accepted: batch.accepted,
            rejected: batch.rejected + decode.len(),
            errors,
            by_reason,
            settled: 0,
        }
    }
}

fn refresh(cache: &mut AllEdgeStreams, graph: &Graph) {
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
