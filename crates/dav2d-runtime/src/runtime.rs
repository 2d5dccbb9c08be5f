//! The runtime: starts everything a [`Plan`] names over a shared graph and
//! stops it in order.
//!
//! Start order: the graph is built, sinks start (persistence restores the
//! graph from the store before any new sample arrives), then sources, then
//! the timer thread that ticks constraints so `for` and `stale_after` fire
//! without new data. Stop order is the reverse and orderly: sources stop
//! accepting, the graph drains (a last wave), the timer stops, sinks flush
//! (the store checkpoints and rolls history), the I/O threads end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dav2d_component::{HealthBoard, Intake, Metrics, StartError};
use dav2d_core::SharedGraph;
use dav2d_store::PersistStats;

use crate::components::{Components, Shared, Starter};
use crate::config::ConfigError;
use crate::engine::{Engine, Workers};
use crate::plan::Plan;

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A component could not start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Everything a plan started, over one graph.
pub struct Runtime {
    engine: Engine,
    /// Whether this runtime made the engine (and so stops its timer and
    /// workers when it stops).
    owns_engine: bool,
    graph: SharedGraph,
    health: HealthBoard,
    metrics: Arc<Metrics>,
    components: Option<Shared>,
    io: Option<tokio::runtime::Runtime>,
    persistence: Option<Arc<PersistStats>>,
    started: Instant,
}

impl Runtime {
    /// Builds the plan's graph into `graph` and starts its sinks, sources and
    /// timer. Errors (a bad graph, a busy port, a broken store) come back
    /// before anything keeps running.
    pub fn start(plan: Plan, graph: SharedGraph) -> Result<Runtime, RuntimeError> {
        Self::start_with(plan, graph, HealthBoard::default())
    }

    /// [`Runtime::start`], pinning every component's health to `health`.
    pub fn start_with(
        plan: Plan,
        graph: SharedGraph,
        health: HealthBoard,
    ) -> Result<Runtime, RuntimeError> {
        let mut runtime = Self::start_on(plan, &Engine::with_health(graph, health))?;
        runtime.owns_engine = true;
        Ok(runtime)
    }

    /// Starts the plan's components on `engine` (shared with its other
    /// runtimes, as Python's `serve()` and `persist()` are): they count into
    /// its metrics, and its one timer and one set of workers run the graph.
    pub fn start_on(plan: Plan, engine: &Engine) -> Result<Runtime, RuntimeError> {
        let (graph, health) = (engine.graph().clone(), engine.health().clone());
        {
            let mut built = graph.lock();
            plan.build(&mut built)?;
            health.describe_components(crate::Spec::of_plan(&built, &plan).components_json());
            health.set_spec_version(health.spec_version().max(1));
        }
        // Readers (HTTP, Python) use what the graph publishes after each wave.
        graph.reads();
        let metrics = Arc::clone(engine.metrics());
        metrics.export_values(plan.values.clone());
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.clamp(1, 4))
            .thread_name("dav2d-io")
            .enable_all()
            .build()
            .map_err(|e| StartError::Other(format!("cannot start the I/O threads: {e}")))?;
        // The decompression limit of every body is the HTTP API's body limit.
        let mut intake_config = plan.intake.clone();
        if let Some(http) = &plan.http {
            intake_config.parse.max_body = http.max_body;
        }
        let intake = Intake::new(&intake_config, graph.clone(), Arc::clone(&metrics))
            .map_err(StartError::Other)?;
        let (listed_sources, listed_sinks) = crate::components::listed(&plan);
        let fixed = crate::components::fixed_of(&graph.lock(), &plan);
        let components = Components {
            sources: Vec::new(),
            sinks: Vec::new(),
            starter: Starter {
                io: io.handle().clone(),
                intake,
                health: health.clone(),
            },
            fixed,
            store_stats: None,
        };
        let shared = Arc::new(Mutex::new(components));
        let mut runtime = Runtime {
            engine: engine.clone(),
            owns_engine: false,
            graph,
            health: health.clone(),
            metrics,
            components: Some(Arc::clone(&shared)),
            persistence: None,
            io: None,
            started: Instant::now(),
        };
        let settings = |listed: &[(String, String)], name: &str| {
            (listed.iter().find(|(n, _)| n == name)).map(|(_, s)| s.clone())
        };
        // Each started component joins the runtime at once, so a later one
        // that fails to start leaves nothing running: dropping the runtime
        // stops them in order.
        let (sinks, persistence) = plan.build_sinks();
        runtime.persistence = persistence.clone();
        {
            let mut started = shared.lock().unwrap_or_else(|p| p.into_inner());
            started.store_stats = persistence;
            for sink in sinks {
                let listed = settings(&listed_sinks, sink.name());
                let sink = started.starter.start_sink(sink, listed, false)?;
                started.sinks.push(sink);
            }
            for source in plan.build_sources() {
                let listed = settings(&listed_sources, source.name());
                let source = started.starter.start_source(source, listed, false)?;
                started.sources.push(source);
            }
        }
        runtime.io = Some(io);
        if runtime.graph.lock().has_offloaded_nodes() {
            engine.ensure_workers(plan.workers.unwrap_or_else(Workers::default_count))?;
        }
        if let Some(tick) = plan.tick {
            engine.ensure_timer(tick)?;
        }
        let (sources, sinks) = {
            let started = shared.lock().unwrap_or_else(|p| p.into_inner());
            (started.sources.len(), started.sinks.len())
        };
        tracing::info!(sources, sinks, "Runtime started.");
        Ok(runtime)
    }

    /// The components, for a reloader.
    pub(crate) fn components(&self) -> Option<Shared> {
        self.components.clone()
    }

    /// What the default store reports, when the plan persists.
    pub fn persistence(&self) -> Option<&PersistStats> {
        self.persistence.as_deref()
    }

    /// [`Runtime::persistence`], shared.
    pub fn persistence_stats(&self) -> Option<Arc<PersistStats>> {
        self.persistence.clone()
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The graph being driven.
    pub fn graph(&self) -> &SharedGraph {
        &self.graph
    }

    /// Every component's health.
    pub fn health(&self) -> &HealthBoard {
        &self.health
    }

    /// The shared metrics (what `/metrics` serves); a clone outlives the
    /// runtime, so totals can be read after it stopped.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The address the source `name` listens on, if it is a server.
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        let components = self.components.as_ref()?;
        let components = components.lock().unwrap_or_else(|p| p.into_inner());
        (components.sources.iter())
            .find(|s| s.name == name)
            .and_then(|s| s.running.address())
    }

    /// How long it has been running.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops everything in order and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(shared) = self.components.take() else {
            return;
        };
        let mut components = shared.lock().unwrap_or_else(|p| p.into_inner());
        for source in std::mem::take(&mut components.sources).into_iter().rev() {
            components.starter.stop(source);
        }
        // Drain: whatever the sources applied last is evaluated before the
        // sinks take their last updates.
        self.graph.lock().run_wave();
        if self.owns_engine {
            self.engine.stop_timer();
            // Jobs in flight finish and are written before the sinks flush.
            self.engine.stop_workers();
        }
        for sink in std::mem::take(&mut components.sinks).into_iter().rev() {
            components.starter.stop(sink);
        }
        drop(components);
        if let Some(io) = self.io.take() {
            io.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
