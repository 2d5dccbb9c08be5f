//! The engine's side of offloaded nodes: handing a node's queued keys to a
//! job instead of evaluating them in the wave, keeping newer inputs while
//! the job is out, and taking the job's results back (see
//! [`crate::offload`]).

use std::sync::Arc;

use super::{Graph, NodeLogic};
use crate::ids::NodeId;
use crate::offload::{Job, JobQueue};

/// An offloaded node's state.
#[derive(Debug, Default)]
pub(super) struct Offload {
    /// A job of this node is queued or running (its logic is in it).
    in_flight: bool,
    /// Keys whose inputs changed while the job was out.
    waiting: Vec<u32>,
    /// Since when (clock time) the node's output has been behind its inputs.
    behind_since: Option<i64>,
    /// Since when the first of `waiting` has waited.
    waiting_since: Option<i64>,
}

impl Graph {
    /// The queue of offloaded jobs; workers take from it and give each job
    /// back with [`Graph::complete`].
    pub fn jobs(&self) -> Arc<JobQueue> {
        Arc::clone(&self.jobs)
    }

    /// Whether any node is offloaded (so the runtime knows to start workers).
    pub fn has_offloaded_nodes(&self) -> bool {
        self.nodes.iter().any(|n| n.offload.is_some())
    }

    /// How far behind an offloaded node's output is, in ns of clock time
    /// (0 for a node that is caught up or not offloaded).
    pub(super) fn lag_ns(&self, id: NodeId, now: i64) -> u64 {
        self.nodes[id.index()]
            .offload
            .as_ref()
            .and_then(|o| o.behind_since)
            .map_or(0, |since| now.saturating_sub(since).max(0) as u64)
    }

    /// Keys of an offloaded node waiting for its next job.
    pub(super) fn offload_waiting(&self, id: NodeId) -> usize {
        self.nodes[id.index()]
            .offload
            .as_ref()
            .map_or(0, |o| o.waiting.len())
    }

    /// In a wave: hands `pending` keys of an offloaded node to a job, or,
    /// while its job is out, keeps them for the next one (a key already
    /// waiting is conflated: the next job reads its newest inputs).
    pub(super) fn offload_keys(&mut self, id: NodeId, pending: &[u32]) {
        let now = self.clock.now_ns();
        let node = &mut self.nodes[id.index()];
        let Some(offload) = &mut node.offload else {
            return;
        };
        offload.behind_since.get_or_insert(now);
        if offload.in_flight {
            offload.waiting_since.get_or_insert(now);
            for &out in pending {
                let key = &mut node.keys[out as usize];
                if key.offload_waiting {
                    node.stats.conflated += 1;
                    self.stats.conflated += 1;
                } else {
                    key.offload_waiting = true;
                    offload.waiting.push(out);
                }
            }
            return;
        }
        let (batch, targets) = self.custom_batch(id, pending);
        let node = &mut self.nodes[id.index()];
        if batch.is_empty() {
            if let Some(offload) = &mut node.offload {
                offload.behind_since = None;
            }
            return;
        }
        let logic = match std::mem::replace(&mut node.logic, NodeLogic::Running) {
            NodeLogic::Custom(logic) => logic,
            // Only custom logic is offloaded; anything else stays in place.
            other => {
                node.logic = other;
                return;
            }
        };
        if let Some(offload) = &mut node.offload {
            offload.in_flight = true;
        }
        self.jobs_queued += 1;
        self.jobs.push(Job {
            node: id,
            name: Arc::clone(&node.name),
            priority: node.priority,
            order: self.jobs_queued,
            logic,
            batch,
            targets,
            ran: false,
        });
    }

    /// Takes a job back from a worker: writes its outputs (their children
    /// are evaluated in a wave, published as usual) and queues the node's
    /// next job if newer inputs arrived while it ran. Returns false (and
    /// drops the job) if it is not one of this graph's jobs.
    pub fn complete(&mut self, mut job: Job) -> bool {
        let id = job.node;
        let Some(node) = self.nodes.get_mut(id.index()) else {
            return false;
        };
        if node.name != job.name || !matches!(node.logic, NodeLogic::Running) {
            return false;
        }
        node.logic = NodeLogic::Custom(job.logic);
        let Some(offload) = &mut node.offload else {
            return false;
        };
        offload.in_flight = false;
        let mut waiting = std::mem::take(&mut offload.waiting);
        let ran = job.ran;
        if !ran {
            // Never run: its keys go to the next job.
            waiting.extend(job.targets.iter().map(|(out, _)| *out));
        }
        for &out in &waiting {
            node.keys[out as usize].offload_waiting = false;
        }
        waiting.sort_unstable();
        waiting.dedup();
        let waiting_since = offload.waiting_since.take();
        if waiting.is_empty() {
            offload.behind_since = None;
        } else {
            // Still behind, by the inputs that arrived since the job left.
            offload.behind_since = waiting_since.or(offload.behind_since);
            node.pending.extend(&waiting);
            self.pending.insert(id.index());
        }
        if ran {
            self.apply_outcomes(id, &mut job.batch, &job.targets);
        }
        self.run_wave();
        true
    }
}
