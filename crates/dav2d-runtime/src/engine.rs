//! The [`Engine`]: one graph with the services that run it, owned once
//! whoever drives it (the binary, `dav2d.serve`, `Graph.persist` or plain
//! Python): the metrics registry every component counts into, the health
//! board, the intake through which in-process producers (Python's pushes,
//! its frame streams) enter, the constraint timer and the offload workers.
//! A [`crate::Runtime`] starts components *on* an engine; two runtimes over
//! one engine share its timer, workers and metrics.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dav2d_component::{HealthBoard, Intake, IntakeConfig, Metrics, StartError};
use dav2d_core::SharedGraph;

use crate::runtime::{Timer, Workers};

/// A graph and the services that run it. Cloning is cheap (shared).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    graph: SharedGraph,
    health: HealthBoard,
    metrics: Arc<Metrics>,
    /// The door for in-process producers, made at first use.
    intake: OnceLock<Intake>,
    /// The constraint timer and its tick.
    timer: Mutex<Option<(Timer, Duration)>>,
    workers: Mutex<Option<Workers>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// The engine of `graph`, with a fresh health board and metrics.
    pub fn new(graph: SharedGraph) -> Engine {
        Self::with_health(graph, HealthBoard::default())
    }

    /// The engine of `graph`, pinning component health to `health`.
    pub fn with_health(graph: SharedGraph, health: HealthBoard) -> Engine {
        let metrics = Arc::new(Metrics::new(graph.clone(), health.clone()));
        Engine {
            inner: Arc::new(Inner {
                graph,
                health,
                metrics,
                intake: OnceLock::new(),
                timer: Mutex::new(None),
                workers: Mutex::new(None),
            }),
        }
    }

    /// The graph.
    pub fn graph(&self) -> &SharedGraph {
        &self.inner.graph
    }

    /// Every component's health.
    pub fn health(&self) -> &HealthBoard {
        &self.inner.health
    }

    /// The metrics every component of every runtime on this engine counts
    /// into (what `/metrics` serves).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The door for in-process producers (Python's `push`, `push_many` and
    /// frame streams), counted as component `python`. Its parser pool has
    /// one thread: these producers hand in values, not bodies.
    pub fn intake(&self) -> Result<&Intake, StartError> {
        if let Some(intake) = self.inner.intake.get() {
            return Ok(intake);
        }
        let config = IntakeConfig {
            workers: 1,
            ..IntakeConfig::default()
        };
        let intake = Intake::new(
            &config,
            self.inner.graph.clone(),
            Arc::clone(&self.inner.metrics),
        )
        .map_err(StartError::Other)?
        .for_component("python", "python");
        Ok(self.inner.intake.get_or_init(|| intake))
    }

    /// Checks constraint timers at least every `tick`: starts the timer, or
    /// restarts it when it ticks more slowly.
    pub fn ensure_timer(&self, tick: Duration) -> Result<(), StartError> {
        let mut timer = locked(&self.inner.timer);
        if let Some((_, running)) = &*timer
            && *running <= tick
        {
            return Ok(());
        }
        if let Some((old, _)) = timer.take() {
            old.stop();
        }
        *timer = Some((Timer::start(self.inner.graph.clone(), tick)?, tick));
        Ok(())
    }

    /// Runs offloaded nodes on `count` workers, unless workers run already.
    pub fn ensure_workers(&self, count: usize) -> Result<(), StartError> {
        let mut workers = locked(&self.inner.workers);
        if workers.is_none() {
            *workers = Some(Workers::start(self.inner.graph.clone(), count)?);
        }
        Ok(())
    }

    /// Whether the timer runs.
    pub fn has_timer(&self) -> bool {
        locked(&self.inner.timer).is_some()
    }

    /// Stops the timer and waits for it.
    pub fn stop_timer(&self) {
        if let Some((timer, _)) = locked(&self.inner.timer).take() {
            timer.stop();
        }
    }

    /// Stops the workers after their current job and waits for them (their
    /// results are written before this returns).
    pub fn stop_workers(&self) {
        let workers = locked(&self.inner.workers).take();
        if let Some(workers) = workers {
            workers.stop();
        }
    }

    /// Asks the timer and the workers to stop without waiting (for a caller
    /// holding a lock they may need, such as Python's GIL).
    pub fn stop_soon(&self) {
        if let Some((timer, _)) = locked(&self.inner.timer).take() {
            timer.stop_soon();
        }
        if let Some(workers) = locked(&self.inner.workers).take() {
            workers.stop_soon();
        }
    }
}
