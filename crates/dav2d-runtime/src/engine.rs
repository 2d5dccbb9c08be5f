//! The [`Engine`]: one graph with the services that run it, owned once
//! whoever drives it (the binary, `dav2d.serve`, `Graph.persist` or plain
//! Python): the metrics registry every component counts into, the health
//! board, the intake through which in-process producers (Python's pushes,
//! its frame streams) enter, the constraint timer and the offload workers.
//! A [`crate::Runtime`] starts components *on* an engine; two runtimes over
//! one engine share its timer, workers and metrics. The [`Timer`] and the
//! [`Workers`] are here too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use dav2d_component::{HealthBoard, Intake, IntakeConfig, Metrics, StartError};
use dav2d_core::SharedGraph;

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

/// The thread that checks constraint timers (`for`, `stale_after`) every
/// `tick`, so they fire without new data. Dropping it stops it.
pub struct Timer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    /// Starts ticking `graph` every `tick`.
    pub fn start(graph: SharedGraph, tick: Duration) -> Result<Timer, StartError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("dav2d-timers".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Acquire) {
                    std::thread::sleep(tick);
                    if thread_stop.load(Ordering::Acquire) {
                        break;
                    }
                    graph.lock().tick();
                }
            })
            .map_err(|e| StartError::Other(format!("cannot start the timer thread: {e}")))?;
        Ok(Timer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt(true);
    }

    fn halt(&mut self, wait: bool) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && wait
            && thread.join().is_err()
        {
            tracing::error!("The timer thread panicked while stopping.");
        }
    }

    /// Asks the thread to stop without waiting for it (for a caller that
    /// may hold a lock the thread needs, such as Python's GIL).
    pub fn stop_soon(mut self) {
        self.halt(false);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.halt(true);
    }
}

/// The threads that run offloaded nodes' jobs: each takes the most urgent
/// job, runs it without the engine lock, and gives it back to the graph
/// (which writes the outputs and evaluates their children). Dropping it
/// stops them after their current job.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// One per core, at most 4: Python logic takes the GIL, and models use
    /// threads of their own.
    pub fn default_count() -> usize {
        std::thread::available_parallelism()
            .map_or(2, usize::from)
            .min(4)
    }

    /// The most workers a graph runs.
    pub const MAX: usize = 64;

    /// Starts `count` workers (at least one) over `graph`'s job queue.
    pub fn start(graph: SharedGraph, count: usize) -> Result<Workers, StartError> {
        let stop = Arc::new(AtomicBool::new(false));
        let jobs = graph.lock().jobs();
        let mut threads = Vec::new();
        for index in 0..count.max(1) {
            let (graph, jobs, stop) = (graph.clone(), Arc::clone(&jobs), Arc::clone(&stop));
            let thread = std::thread::Builder::new()
                .name(format!("dav2d-worker-{index}"))
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let Some(mut job) = jobs.take(Duration::from_millis(100)) else {
                            continue;
                        };
                        job.run();
                        graph.lock().complete(job);
                    }
                })
                .map_err(|e| StartError::Other(format!("cannot start an offload worker: {e}")))?;
            threads.push(thread);
        }
        Ok(Workers { stop, threads })
    }

    /// Stops the workers after their current job and waits for them.
    pub fn stop(mut self) {
        self.halt(true);
    }

    /// Asks the workers to stop without waiting (for a caller holding a
    /// lock their jobs may need, such as Python's GIL).
    pub fn stop_soon(mut self) {
        self.halt(false);
    }

    fn halt(&mut self, wait: bool) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            if wait && thread.join().is_err() {
                tracing::error!("An offload worker panicked.");
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.halt(true);
    }
}
