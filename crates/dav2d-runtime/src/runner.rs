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

/// What the persistence thread reports.
#[derive(Debug, Default)]
pub struct PersistenceStats {
    /// Records made durable.
    pub flushed: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// File actions used today.
    pub file_actions_today: AtomicU64,
    /// Records replayed at start.
    pub replayed: AtomicU64,
    /// Whether a checkpoint was loaded at start.
    pub restored: AtomicBool,
    /// Failed flushes or checkpoints (the engine keeps running in memory).
    pub failures: AtomicU64,
    /// The last failure, while persistence is degraded (cleared by a success).
    pub degraded: std::sync::Mutex<Option<String>>,
    /// The daily file-action budget.
    pub budget: AtomicU64,
}

impl PersistenceStats {
    fn set_degraded(&self, problem: Option<String>) {
        if let Ok(mut degraded) = self.degraded.lock() {
            *degraded = problem;
        }
    }
}

impl dav2d_ingest::StatusSource for PersistenceStats {
    fn health(&self) -> Result<(), String> {
        match self.degraded.lock().ok().and_then(|d| d.clone()) {
            Some(problem) => Err(format!("persistence: {problem}")),
            None => Ok(()),
        }
    }

    fn gauges(&self) -> Vec<(&'static str, &'static str, i64)> {
        let used = self.file_actions_today.load(Ordering::Relaxed);
        let budget = self.budget.load(Ordering::Relaxed);
        let degraded = self.degraded.lock().map(|d| d.is_some()).unwrap_or(true);
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
                "persisted_records",
                "Records made durable since start",
                self.flushed.load(Ordering::Relaxed) as i64,
            ),
            (
                "checkpoints",
                "Checkpoints written since start",
                self.checkpoints.load(Ordering::Relaxed) as i64,
            ),
            (
                "persistence_degraded",
                "1 while persistence is failing and retrying",
                i64::from(degraded),
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
    persistence: Arc<PersistenceStats>,
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
        let persistence_stats = Arc::new(PersistenceStats::default());
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
                    ingest.status.push(Arc::clone(&persistence_stats) as Arc<dyn dav2d_ingest::StatusSource>);
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
    pub fn persistence(&self) -> &PersistenceStats {
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
/// drains node outputs (and the persisted raw streams) into the log,
/// flushing on an interval stretched to fit the file-action budget and
/// checkpointing now and then (and once more when stopping).
fn start_persistence(
    config: PersistenceConfig,
    graph: SharedGraph,
    stop: Arc<AtomicBool>,
    stats: Arc<PersistenceStats>,
) -> Result<JoinHandle<()>, RuntimeError> {
    let (mut store, updates) = {
        let mut locked = graph.lock();
        let clock = Arc::clone(locked.clock());
        let (store, restored) =
            dav2d_store::Store::open(&config.dir, config.store.clone(), clock, &mut locked)
                .map_err(|error| RuntimeError::Store {
                    dir: config.dir.clone(),
                    error,
                })?;
        stats
            .replayed
            .store(restored.replayed as u64, Ordering::Relaxed);
        stats
            .budget
            .store(config.store.max_file_actions_per_day, Ordering::Relaxed);
        stats.restored.store(restored.checkpoint, Ordering::Relaxed);
        if restored.checkpoint || restored.replayed > 0 {
            tracing::info!(
                dir = %config.dir.display(),
                replayed = restored.replayed,
                skipped = restored.skipped_records,
                "Restored the graph from the store."
            );
        }
        let mut names: Vec<String> = locked.nodes().into_iter().map(|n| n.name).collect();
        names.extend(
            config
                .streams
                .iter()
                .filter(|s| locked.stream_id(s).is_some())
                .cloned(),
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let updates = locked
            .subscribe_many(&names, dav2d_core::SubscriptionMode::EveryChange, 1 << 20)
            .map_err(|error| {
                RuntimeError::Config(ConfigError {
                    file: config.dir.clone(),
                    line: 0,
                    column: 0,
                    field: "persistence.streams".to_string(),
                    message: error.to_string(),
                })
            })?;
        (store, updates)
    };
    Ok(spawn("dav2d-persist", move || {
        let mut last_checkpoint = Instant::now();
        let drain = |store: &mut dav2d_store::Store| -> Result<(), dav2d_store::StoreError> {
            while let Some(update) = updates.try_next() {
                store.log(&update)?;
            }
            Ok(())
        };
        loop {
            let stopping = stop.load(Ordering::Acquire);
            // Two actions per flush (write, fsync): never flush more often than the budget allows.
            let budget_interval = store
                .ledger()
                .min_flush_interval_ns(2)
                .map(|ns| Duration::from_nanos(ns.max(0) as u64));
            let result = drain(&mut store)
                .and_then(|()| store.flush())
                .map(|flushed| {
                    stats.flushed.fetch_add(flushed as u64, Ordering::Relaxed);
                });
            match result {
                Ok(()) => stats.set_degraded(None),
                Err(error) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    stats.set_degraded(Some(error.to_string()));
                    tracing::error!(%error, "Persisting failed; the engine keeps running in memory and retries.");
                }
            }
            if stopping || last_checkpoint.elapsed() >= config.checkpoint_interval {
                let locked = graph.lock();
                let result = drain(&mut store)
                    .and_then(|()| store.flush())
                    .map(|flushed| stats.flushed.fetch_add(flushed as u64, Ordering::Relaxed))
                    .and_then(|_| store.checkpoint(&locked));
                drop(locked);
                match result {
                    Ok(()) => {
                        stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        stats.set_degraded(Some(error.to_string()));
                        tracing::error!(%error, "A checkpoint failed; the engine keeps running and retries.");
                    }
                }
                last_checkpoint = Instant::now();
            }
            stats
                .file_actions_today
                .store(store.ledger().used_today(), Ordering::Relaxed);
            if stopping {
                break;
            }
            let interval = match budget_interval {
                Some(minimum) => config.flush_interval.max(minimum),
                None => {
                    tracing::error!(
                        budget = store.ledger().budget(),
                        used = store.ledger().used_today(),
                        "The daily file-action budget is spent (persistence.max_file_actions_per_day); holding updates until midnight UTC."
                    );
                    Duration::from_nanos(store.ledger().day_left_ns().max(0) as u64)
                        .min(Duration::from_secs(60))
                }
            };
            let deadline = Instant::now() + interval;
            while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20).min(interval));
            }
        }
    }))
}
