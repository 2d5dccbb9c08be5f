//! Offloaded evaluation: jobs of slow logic (a model, heavy Python) that run
//! outside the wave, and the queue workers take them from.
//!
//! A wave never runs an offloaded node's logic: it hands the node's logic
//! and the inputs of its queued keys (zero-copy window snapshots) to a
//! [`Job`] and moves on. A worker (a thread of the runtime; this crate has
//! none) takes the job with the highest node priority, runs it without the
//! engine lock, and gives it back with [`crate::Graph::complete`], which
//! writes the outputs, evaluates their children in a wave and, if newer
//! inputs arrived meanwhile, queues the next job. While a job is out,
//! newer inputs of its node replace older pending ones (counted as
//! conflated), so there is at most one job per node in flight and it always
//! works on the newest inputs.

use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::ids::NodeId;
use crate::logic::{CustomLogic, Evaluation};

/// One batch of an offloaded node's keys, with the node's logic.
pub struct Job {
    pub(crate) node: NodeId,
    pub(crate) name: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) order: u64,
    pub(crate) logic: Box<dyn CustomLogic>,
    pub(crate) batch: Vec<Evaluation>,
    /// Each evaluation's output slot and the newest input time it reflects.
    pub(crate) targets: Vec<(u32, i64)>,
    pub(crate) ran: bool,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("node", &self.name)
            .field("priority", &self.priority)
            .field("keys", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl Job {
    /// Runs the node's logic over the batch. Call it without the engine lock.
    pub fn run(&mut self) {
        self.logic.evaluate_batch(&self.name, &mut self.batch);
        self.ran = true;
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.name
    }

    /// The node's priority.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// How many keys the job evaluates.
    pub fn keys(&self) -> usize {
        self.batch.len()
    }
}

/// Highest priority first, then first queued first.
struct Queued(Job);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .priority
            .cmp(&other.0.priority)
            .then_with(|| other.0.order.cmp(&self.0.order))
    }
}

#[derive(Default)]
struct QueueState {
    jobs: BinaryHeap<Queued>,
}

/// The jobs waiting for a worker, by node priority.
#[derive(Default)]
pub struct JobQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("waiting", &self.len())
            .finish()
    }
}

impl JobQueue {
    pub(crate) fn push(&self, job: Job) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.jobs.push(Queued(job));
        drop(state);
        self.ready.notify_one();
    }

    /// The most urgent job, waiting up to `timeout` for one.
    pub fn take(&self, timeout: Duration) -> Option<Job> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |s| s.jobs.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        state.jobs.pop().map(|Queued(job)| job)
    }

    /// The most urgent job, if one waits.
    pub fn try_take(&self) -> Option<Job> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.jobs.pop().map(|Queued(job)| job)
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
