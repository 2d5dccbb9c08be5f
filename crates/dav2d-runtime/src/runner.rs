//! The runner: drives sources and constraint timers on threads against a
//! shared graph until stopped.
//!
//! Each source thread pushes a batch and runs the wave itself (the producer
//! pays for its evaluations, which is the backpressure). A timer thread ticks
//! constraints so `for` and `stale_after` fire without new data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dav2d_core::{Keys, SharedGraph};

use dav2d_ingest::{IngestConfig, IngestServer, StartError};
use dav2d_store::{PersistStats, Persister};

use crate::config::{Config, ConfigError, PersistenceConfig};

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// What to persist does not match the graph.
    #[error("{0}")]
    Persistence(String),
    /// The store could not be opened or restored.
    #[error(
        "cannot open the store in {dir}: {error}; fix it or move it aside (or run with persistence off)"
    )]
    Store {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// What failed.
        error: dav2d_store::StoreError,
    },
}

/// Overrides of what the config asks for (`None` keeps the config's).
#[derive(Debug, Default)]
pub struct Overrides {
    /// The ingest servers (`Some(None)` runs none).
    pub ingest: Option<Option<IngestConfig>>,
    /// Persistence (`Some(None)` keeps everything in memory).
    pub persistence: Option<Option<PersistenceConfig>>,
}

/// Persistence's status as the ingest servers see it (`/healthz`,
/// `/metrics`).
#[derive(Debug, Clone)]
pub struct PersistenceStatus(pub Arc<PersistStats>);

impl dav2d_ingest::StatusSource for PersistenceStatus {
    fn health(&self) -> Result<(), String> {
        match self.0.problem() {
            Some(problem) => Err(format!("persistence: {problem}")),
            None => Ok(()),
        }
    }

    fn gauges(&self) -> Vec<(&'static str, &'static str, i64)> {
        let stats = &self.0;
        let used = stats.file_actions_today.load(Ordering::Relaxed);
        let budget = stats.budget.load(Ordering::Relaxed);
        vec![
            (
                "file_actions_used_today",
                "File actions (create, write, fsync, rename, delete) used today",
                used as i64,
            ),
            (
                "file_actions_remaining_today",
                "File actions left in today's budget",
                budget.saturating_sub(used) as i64,
            ),
            (
                "file_actions_budget",
                "File actions allowed per UTC day (persistence.max_file_actions_per_day)",
                budget as i64,
            ),
            (
                "persisted_records",
                "Records made durable since start",
                stats.flushed.load(Ordering::Relaxed) as i64,
            ),
            (
                "checkpoints",
                "Checkpoints written since start",
                stats.checkpoints.load(Ordering::Relaxed) as i64,
            ),
            (
                "persistence_flush_interval_seconds",
                "The flush interval in force, stretched to fit the file-action budget",
                (stats.flush_interval_ns.load(Ordering::Relaxed) / 1_000_000_000) as i64,
            ),
            (
                "persistence_segment_bytes",
                "The log segment size in force, grown to fit the file-action budget",
                stats.segment_bytes.load(Ordering::Relaxed) as i64,
            ),
            (
                "persistence_degraded",
                "1 while persistence is failing and retrying, or cannot keep its budget",
                i64::from(stats.problem().is_some()),
            ),
        ]
    }
}

use crate::fleet::SyntheticFleet;

/// Counters the runner keeps besides the graph's.
#[derive(Debug, Default)]
pub struct RunnerStats {
    /// Source steps that started late because the graph was busy.
    pub late_steps: AtomicU64,
}

/// Running sources, timers, ingest servers and persistence over a graph.
pub struct Runtime {
    graph: SharedGraph,
    ingest: Option<IngestServer>,
    persistence: Arc<PersistStats>,
    persister: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<RunnerStats>,
    started: Instant,
}

impl Runtime {
    /// Builds the config's graph into `graph`, restores it from the store,
    /// and starts the persistence thread, ingest servers, sources and timers.
    pub fn start(
        config: &Config,
        graph: SharedGraph,
        overrides: Overrides,
    ) -> Result<Runtime, RuntimeError> {
        config.build(&mut graph.lock())?;
        let persistence = match overrides.persistence {
            Some(persistence) => persistence,
            None => config.persistence()?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let persistence_stats = Arc::new(PersistStats::default());
        let mut threads = Vec::new();
        // Persistence stops last, after everything that produces updates.
        let persist_stop = Arc::new(AtomicBool::new(false));
        let persister = match persistence {
            Some(persistence) => Some(start_persistence(
                persistence,
                graph.clone(),
                Arc::clone(&persist_stop),
                Arc::clone(&persistence_stats),
            )?),
            None => None,
        };
        let ingest = match overrides.ingest {
            Some(ingest) => ingest,
            None => config.ingest()?,
        };
        let ingest = match ingest {
            Some(mut ingest) => {
                if persister.is_some() {
                    ingest
                        .status
                        .push(Arc::new(PersistenceStatus(Arc::clone(&persistence_stats))));
                }
                Some(IngestServer::start(ingest, graph.clone())?)
            }
            None => None,
        };
        let tick = config.tick()?;
        let stats = Arc::new(RunnerStats::default());
        for source in &config.sources {
            let fleet = SyntheticFleet::new(source);
            let (graph, stop, stats) = (graph.clone(), Arc::clone(&stop), Arc::clone(&stats));
            threads.push(spawn("dav2d-source", move || {
                run_fleet(fleet, graph, stop, stats)
            }));
        }
        let (timer_graph, timer_stop) = (graph.clone(), Arc::clone(&stop));
        threads.push(spawn("dav2d-timers", move || {
            while !timer_stop.load(Ordering::Acquire) {
                std::thread::sleep(tick);
                timer_graph.lock().tick();
            }
        }));
        tracing::info!(
            sources = config.sources.len(),
            tick_ms = tick.as_millis() as u64,
            "Runtime started."
        );
        Ok(Runtime {
            graph,
            ingest,
            persistence: persistence_stats,
            persister: persister.map(|thread| (persist_stop, thread)),
            stop,
            threads,
            stats,
            started: Instant::now(),
        })
    }

    /// The graph being driven.
    pub fn graph(&self) -> &SharedGraph {
        &self.graph
    }

    /// The running ingest servers, if any.
    pub fn ingest(&self) -> Option<&IngestServer> {
        self.ingest.as_ref()
    }

    /// What the persistence thread reports.
    pub fn persistence(&self) -> &PersistStats {
        &self.persistence
    }

    /// The runner's own counters.
    pub fn stats(&self) -> &RunnerStats {
        &self.stats
    }

    /// How long it has been running.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every thread and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.stop();
        }
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("A runtime thread panicked while stopping.");
            }
        }
        if let Some((stop, thread)) = self.persister.take() {
            stop.store(true, Ordering::Release);
            if thread.join().is_err() {
                tracing::error!("The persistence thread panicked while stopping.");
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    match std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
    {
        Ok(handle) => handle,
        Err(error) => panic!("cannot start the {name} thread: {error}"),
    }
}

fn run_fleet(
    mut fleet: SyntheticFleet,
    graph: SharedGraph,
    stop: Arc<AtomicBool>,
    stats: Arc<RunnerStats>,
) {
    let period = Duration::from_secs_f64(fleet.period_s());
    let stream = fleet.stream().to_string();
    let mut next = Instant::now();
    let (mut devices, mut values) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Acquire) {
        fleet.step(&mut devices, &mut values);
        {
            let keys: Vec<&str> = devices.iter().map(|&i| fleet.key(i)).collect();
            let mut graph = graph.lock();
            let report = graph.push_numbers(&stream, Keys::Many(&keys), &values, None);
            if report.rejected > 0 {
                tracing::debug!(rejected = report.rejected, "Synthetic samples rejected.");
            }
            graph.run_wave();
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            stats.late_steps.fetch_add(1, Ordering::Relaxed);
            next = now;
        }
    }
}

/// Opens the store, restores the graph from it, and starts the thread that
/// drains node outputs (and the persisted raw streams) into the log on the
/// budgeted schedule, checkpointing once more when stopped.
pub fn start_persistence(
    config: PersistenceConfig,
    graph: SharedGraph,
    stop: Arc<AtomicBool>,
    stats: Arc<PersistStats>,
) -> Result<JoinHandle<()>, RuntimeError> {
    let schedule = dav2d_store::Schedule {
        flush_interval_ns: config.flush_interval.as_nanos().min(i64::MAX as u128) as i64,
        checkpoint_interval_ns: config.checkpoint_interval.as_nanos().min(i64::MAX as u128) as i64,
        segment_bytes: config.store.wal.segment_bytes,
    };
    let (mut persister, restored) = Persister::open(
        &config.dir,
        config.store.clone(),
        schedule,
        &config.streams,
        &graph,
        stats,
    )
    .map_err(|error| match error {
        dav2d_store::StoreError::Names(message) => RuntimeError::Persistence(message),
        error => RuntimeError::Store {
            dir: config.dir.clone(),
            error,
        },
    })?;
    if restored.checkpoint || restored.replayed > 0 {
        tracing::info!(
            dir = %config.dir.display(),
            replayed = restored.replayed,
            skipped = restored.skipped_records,
            "Restored the graph from the store."
        );
    }
    Ok(spawn("dav2d-persist", move || {
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let due_ns = persister.step(&graph, stopping);
            if stopping {
                break;
            }
            // Wake at least every drain interval to move updates into the
            // log's buffer; flushes and checkpoints happen when due.
            let wait = due_ns.clamp(1_000_000, dav2d_store::persist::DRAIN_INTERVAL_NS);
            std::thread::sleep(Duration::from_nanos(wait as u64));
        }
    }))
}
