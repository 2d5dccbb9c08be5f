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

use crate::config::{Config, ConfigError};

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
}
use crate::fleet::SyntheticFleet;

/// Counters the runner keeps besides the graph's.
#[derive(Debug, Default)]
pub struct RunnerStats {
    /// Source steps that started late because the graph was busy.
    pub late_steps: AtomicU64,
}

/// Running sources, timers and ingest servers over a graph.
pub struct Runtime {
    graph: SharedGraph,
    ingest: Option<IngestServer>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<RunnerStats>,
    started: Instant,
}

impl Runtime {
    /// Builds the config's graph into `graph` and starts its ingest
    /// servers, sources and timers. `ingest` overrides the config's servers
    /// (`Some(None)` runs none).
    pub fn start(
        config: &Config,
        graph: SharedGraph,
        ingest: Option<Option<IngestConfig>>,
    ) -> Result<Runtime, RuntimeError> {
        config.build(&mut graph.lock())?;
        let ingest = match ingest {
            Some(ingest) => ingest,
            None => config.ingest()?,
        };
        let ingest = match ingest {
            Some(ingest) => Some(IngestServer::start(ingest, graph.clone())?),
            None => None,
        };
        let tick = config.tick()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(RunnerStats::default());
        let mut threads = Vec::new();
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
