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
//!
//! Split by what it does: `mod.rs` (decoding and applying bodies and
//! batches), `admission.rs` (the body budget, the `all`-edge queue and
//! holding back for a lossless sink, all waiting on notifications),
//! `values.rs` (native values: frames and Python's pushes), `deliver.rs`
//! (broker messages), `forward.rs` (clustering) and `report.rs` (the
//! report that merges decode and engine rejections).

mod admission;
mod deliver;
mod forward;
mod report;
mod values;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dav2d_core::{BatchReport, Graph, Keys, SharedGraph};
use dav2d_wire::{
    ArrayCutter, DecompressError, Format, ParseOptions, Parsed, ParsedPiece, assemble,
    decompress_charged, parse_then,
};
use tokio::sync::Semaphore;

use admission::{BUDGET_UNIT, Permits};
pub use admission::{BodyPermit, body_ceiling};
pub use forward::{ClusterReading, ClusterReads, Forward, Forwarded};
pub use values::NativeSample;

use crate::metrics::{ComponentCounters, Metrics};
use dav2d_core::RejectReason;
use dav2d_core::Stage;
use dav2d_wire::BodyError;

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
    /// (received and not yet applied), charged as they arrive; a body that
    /// does not fit is refused with "retry later" (HTTP 503 with
    /// `Retry-After`). A sixteenth of it is kept for small bodies: no body
    /// grows into it, so one connection never locks the others out.
    pub body_budget: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            parse: ParseOptions::default(),
            all_queue_capacity: 1_000_000,
            // `http.max_body` (64 MiB) and the sixteenth kept for small bodies.
            body_budget: 72 << 20,
        }
    }
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
    /// A problem with the whole batch (nothing applied), e.g. as many keys
    /// as values were not given.
    pub error: Option<String>,
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
    /// What the body inflated to did not fit the body budget: retry later.
    BodyBudget(String),
}

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
    admission: Permits,
    admission_capacity: usize,
    all_edge: Mutex<AllEdgeStreams>,
    body_budget: Arc<Semaphore>,
    /// Units of the budget no growing body takes (kept for small bodies).
    body_floor: u32,
    backpressure: Arc<dav2d_core::Backpressure>,
    /// Set when clustering: where decoded samples go instead of the engine.
    forward: std::sync::OnceLock<Arc<dyn Forward>>,
    /// Where readers look up keys other instances apply (clustering).
    cluster_reads: std::sync::OnceLock<Arc<dyn ClusterReads>>,
    /// The graph's clock, for the timestamps of forwarded samples that
    /// gave none (read without the engine lock).
    clock: Arc<dyn dav2d_core::Clock>,
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
            admission: Permits::new(capacity),
            admission_capacity: capacity,
            all_edge: Mutex::new(AllEdgeStreams {
                names: HashSet::new(),
                checked: Instant::now(),
                node_count: usize::MAX,
            }),
            body_budget: Arc::new(Semaphore::new(
                (config.body_budget / BUDGET_UNIT).clamp(1, u32::MAX as usize),
            )),
            body_floor: admission::floor_units(config.body_budget),
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
            None,
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
        self.ingest_with(
            body,
            encoding,
            format,
            default_stream,
            admission,
            None,
            None,
        )
    }

    /// [`Intake::ingest`] of a body whose share of the body budget is
    /// `permit`: what a compressed body inflates to is charged to it as it
    /// is made (refused with [`Outcome::BodyBudget`] when it does not fit).
    pub fn ingest_charged(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        format: Format,
        default_stream: Option<&str>,
        admission: Admission,
        permit: &mut BodyPermit,
    ) -> Outcome {
        self.ingest_with(
            body,
            encoding,
            format,
            default_stream,
            admission,
            None,
            Some(permit),
        )
    }

    #[allow(clippy::too_many_arguments)] // The two public forms above name them.
    fn ingest_with(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        format: Format,
        default_stream: Option<&str>,
        admission: Admission,
        locked: Option<&mut Graph>,
        permit: Option<&mut BodyPermit>,
    ) -> Outcome {
        self.counters.bytes.inc_by(body.len() as u64);
        let inflated;
        let mut permit = permit;
        let mut charge = |bytes: usize| permit.as_mut().is_none_or(|p| p.grow(bytes));
        let body = match encoding {
            None => body,
            Some(encoding) => {
                match decompress_charged(body, encoding, self.shared.parse.max_body, &mut charge) {
                    Ok(bytes) => {
                        inflated = bytes;
                        &inflated[..]
                    }
                    Err(error) => return self.refuse_encoding(error),
                }
            }
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

    /// Counts and answers a compressed body that could not be inflated.
    pub fn refuse_encoding(&self, error: DecompressError) -> Outcome {
        match error {
            DecompressError::Budget(bytes) => {
                self.reject(RejectReason::BodyBudget, 1);
                Outcome::BodyBudget(format!(
                    "the body inflated to {bytes} bytes and the bodies in flight hold the rest of ingest.body_budget; retry after a second"
                ))
            }
            DecompressError::TooLarge(limit) => {
                self.reject(RejectReason::TooLarge, 1);
                Outcome::TooLarge(format!(
                    "the body inflates past the {limit}-byte limit (max_body)"
                ))
            }
            error => {
                self.reject(RejectReason::BadEncoding, 1);
                Outcome::BadEncoding(error.to_string())
            }
        }
    }

    /// Finishes a JSON array body that was cut into pieces and parsed on
    /// the pool (`while_arriving`: cut as it arrived; run it on the pool):
    /// applies the pieces' records when every piece parsed, else parses the
    /// whole body the careful way, which reports each bad record (or
    /// refuses a broken body whole).
    pub fn ingest_pieces(
        &self,
        pieces: &[ParsedPiece],
        cutter: &ArrayCutter,
        default_stream: Option<&str>,
        while_arriving: bool,
    ) -> Outcome {
        let started = Instant::now();
        if while_arriving {
            self.shared.metrics.parsed_while_arriving.inc();
        }
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

    /// Pushes a batch of numbers for one stream (a native source, Python's
    /// `push_many`), admitted like any other batch, and runs the wave;
    /// `ts` gives one timestamp per value (the graph's clock when `None`).
    /// When clustering, forwards them to the partitioned stream instead.
    pub fn push_numbers(
        &self,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        ts: Option<&[i64]>,
        admission: Admission,
    ) -> Outcome {
        match self.shared.forward.get() {
            Some(forward) => self.forward_numbers(forward.as_ref(), stream, keys, values, ts),
            None => self.apply_numbers(stream, keys, values, ts, admission),
        }
    }

    /// [`Intake::push_numbers`] only if nothing has to be waited for (see
    /// [`Intake::try_push_values`]); `None`: nothing was counted or applied.
    pub fn try_push_numbers(
        &self,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        ts: Option<&[i64]>,
    ) -> Option<Outcome> {
        self.try_apply_native(stream, values.len(), |graph| {
            graph.push_numbers(stream, keys, values, ts)
        })
    }

    fn apply_numbers(
        &self,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        ts: Option<&[i64]>,
        admission: Admission,
    ) -> Outcome {
        self.apply_native(stream, values.len(), admission, |graph| {
            graph.push_numbers(stream, keys, values, ts)
        })
    }

    /// What every batch a producer hands in natively (numbers, values: no
    /// decoding) goes through: counted as received, held back while a
    /// lossless sink is behind, admitted through the `all`-edge queue when
    /// `stream` feeds one, applied by `push` in one lock hold with its
    /// wave, and reported.
    pub(super) fn apply_native(
        &self,
        stream: &str,
        offered: usize,
        admission: Admission,
        push: impl FnOnce(&mut Graph) -> BatchReport,
    ) -> Outcome {
        self.counters.received.inc_by(offered as u64);
        if !self.hold_back(offered, admission) {
            return Outcome::SinkBehind;
        }
        let feeds_all = self.feeds_all_edge(std::iter::once(stream));
        let Some(permit) = self.admit(feeds_all, offered, offered, admission) else {
            return Outcome::Overloaded;
        };
        let graph = self.shared.graph.lock();
        self.apply_locked(graph, permit, push)
    }

    /// [`Intake::apply_native`] for a caller that holds something the
    /// engine's other threads may need while they run node logic (Python's
    /// GIL): it applies only when nothing has to be waited for (not
    /// clustering, no sink behind, room in the `all`-edge queue, the graph
    /// free), and otherwise returns `None` having counted and applied
    /// nothing; the caller then lets go and takes the door that waits.
    pub(super) fn try_apply_native(
        &self,
        stream: &str,
        offered: usize,
        push: impl FnOnce(&mut Graph) -> BatchReport,
    ) -> Option<Outcome> {
        if self.forwards() || self.shared.backpressure.is_raised() {
            return None;
        }
        let permit = match self.feeds_all_edge(std::iter::once(stream)) {
            true => Some(self.shared.admission.try_acquire(self.permits(offered))?),
            false => None,
        };
        let graph = self.shared.graph.try_lock()?;
        self.counters.received.inc_by(offered as u64);
        Some(self.apply_locked(graph, permit, push))
    }

    /// Applies `push` and its wave on the locked graph, then reports.
    fn apply_locked(
        &self,
        mut graph: std::sync::MutexGuard<'_, Graph>,
        permit: Option<admission::QueuePermit<'_>>,
        push: impl FnOnce(&mut Graph) -> BatchReport,
    ) -> Outcome {
        let report = push(&mut graph);
        graph.run_wave();
        let settled = graph.settled();
        drop(graph);
        drop(permit);
        self.set_queue_depth();
        let mut report = self.report(report, &[]);
        report.settled = settled;
        Outcome::Applied(report)
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
        let needed = self.feeds_all_edge(parsed.streams());
        let Some(permit) = self.admit(needed, parsed.len(), offered, admission) else {
            return Outcome::Overloaded;
        };
        let mut batch = BatchReport::default();
        let mut chunks = parsed.chunks(APPLY_CHUNK).peekable();
        let settled = match locked {
            Some(graph) => {
                chunks.for_each(|chunk| chunk.push_into(graph, &mut batch));
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
                loop {
                    let mut graph = self.shared.graph.lock();
                    if let Some(chunk) = chunks.next() {
                        chunk.push_into(&mut graph, &mut batch);
                    }
                    if chunks.peek().is_none() {
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
