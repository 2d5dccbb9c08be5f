//! Applying one owned partition: load its checkpoint (the state of its keys
//! and the input stream's sequence it covers) if there is one, replay the
//! partition's messages after that sequence in order, and checkpoint it
//! again every `checkpoint_every` while new messages were applied.
//!
//! A partition's state is a function of the partition's messages alone (its
//! keys are applied by no one else), so a checkpoint written by any owner at
//! sequence `s` is the state any owner has after `s`: a new owner that
//! imports it and replays from `s + 1` ends where the old one would have.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use dav2d_component::Intake;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncReadExt;

use crate::shared::Shared;

/// Messages already waiting that are applied in one hop off the I/O worker.
const MAX_RUN: usize = 64;

/// The last checkpoint: the sequence it covers and when it was written.
struct Mark {
    checkpointed: u64,
    at: Instant,
}

/// One owned partition's applier.
pub(crate) struct PartitionTask {
    pub partition: u32,
    pub input: async_nats::jetstream::stream::Stream,
    pub checkpoints: async_nats::jetstream::object_store::ObjectStore,
    pub intake: Intake,
    pub jetstream: async_nats::jetstream::Context,
    pub shared: Arc<Shared>,
    /// Zero: never checkpoint.
    pub every: Duration,
}

impl PartitionTask {
    fn object(&self) -> String {
        format!("p{}", self.partition)
    }

    pub async fn run(self) {
        let p = self.partition;
        let covered = self.restore().await;
        let deliver_policy = match covered {
            Some(sequence) => DeliverPolicy::ByStartSequence {
                start_sequence: sequence + 1,
            },
            None => DeliverPolicy::All,
        };
        let consumer = self
            .input
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: format!("dav2d.in.{p}.>"),
                deliver_policy,
                ..Default::default()
            })
            .await;
        let mut messages = match consumer {
            Ok(consumer) => match consumer.messages().await {
                Ok(messages) => messages,
                Err(error) => return self.shared.health.failed(format!("partition {p}: {error}")),
            },
            Err(error) => return self.shared.health.failed(format!("partition {p}: {error}")),
        };
        let mut applied = covered.unwrap_or(0);
        let mut mark = Mark {
            checkpointed: applied,
            at: Instant::now(),
        };
        loop {
            let next = if self.every.is_zero() {
                messages.next().await
            } else {
                let due = self.every.saturating_sub(mark.at.elapsed());
                match tokio::time::timeout(due, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        // Idle: checkpoint what was applied since the last one.
                        self.checkpoint_if_due(applied, &mut mark).await;
                        continue;
                    }
                }
            };
            // The consumer ends when the runtime stops.
            let Some(next) = next else { return };
            // This message and those already waiting behind it (up to
            // MAX_RUN) are applied in one hop off the I/O worker, in order.
            let mut run = Vec::new();
            let mut ended = false;
            self.take(p, next, &mut run);
            while run.len() < MAX_RUN {
                match messages.next().now_or_never() {
                    Some(Some(next)) => self.take(p, next, &mut run),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            let Some(&(.., last)) = run.last() else {
                continue;
            };
            let count = run.len() as u64;
            let intake = self.intake.clone();
            // The engine may block: off the I/O worker, in order.
            let partitions = self.shared.partitions;
            let done = tokio::task::spawn_blocking(move || {
                // Only keys of this partition: a publish that did not come
                // through a dav2d door is checked like one that did.
                let ours = |key: &str| crate::config::partition(key, partitions) == p;
                for (stream, payload, _) in run {
                    intake.apply_message_locally(&payload, &stream, "", &ours);
                }
            })
            .await;
            if done.is_err() {
                return;
            }
            applied = last;
            self.shared.applied.fetch_add(count, Ordering::Relaxed);
            self.checkpoint_if_due(applied, &mut mark).await;
            if ended {
                return;
            }
        }
    }

    /// Adds a received message to `run` as (stream, payload, sequence), or
    /// reports why it cannot be applied.
    fn take(
        &self,
        p: u32,
        next: Result<async_nats::jetstream::Message, impl std::fmt::Display>,
        run: &mut Vec<(String, Vec<u8>, u64)>,
    ) {
        let message = match next {
            Ok(message) => message,
            Err(error) => return self.shared.health.failed(format!("partition {p}: {error}")),
        };
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                return self.shared.health.failed(format!(
                    "partition {p}: a message without its sequence: {error}"
                ));
            }
        };
        let subject = message.subject.to_string();
        let stream = subject.splitn(4, '.').nth(3).unwrap_or("").to_string();
        run.push((stream, message.payload.to_vec(), sequence));
    }

    /// When a checkpoint is due, checkpoints the partition at `applied` if
    /// messages were applied since the last one, and starts the next period.
    async fn checkpoint_if_due(&self, applied: u64, mark: &mut Mark) {
        if self.every.is_zero() || mark.at.elapsed() < self.every {
            return;
        }
        if applied > mark.checkpointed && self.checkpoint(applied).await {
            mark.checkpointed = applied;
        }
        mark.at = Instant::now();
    }

    /// Imports the partition's checkpoint, if there is a readable one, and
    /// returns the input sequence it covers. A damaged or unreadable
    /// checkpoint is reported and the partition is replayed from its first
    /// message instead (nothing was imported, so nothing counts twice).
    async fn restore(&self) -> Option<u64> {
        let p = self.partition;
        let mut bytes = Vec::new();
        let mut attempt = 0;
        loop {
            bytes.clear();
            let read = match self.checkpoints.get(self.object()).await {
                Ok(mut object) => object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| e.to_string()),
                Err(error)
                    if error.kind()
                        == async_nats::jetstream::object_store::GetErrorKind::NotFound =>
                {
                    return None;
                }
                Err(error) => Err(error.to_string()),
            };
            match read {
                Ok(_) => break,
                // A read that raced the old owner's write of a newer one.
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    tracing::warn!(partition = p, %error, "The partition's checkpoint cannot be read; replaying the partition from its first message.");
                    return None;
                }
            }
        }
        let checkpoint = match dav2d_store::checkpoint::from_bytes(&bytes) {
            Ok(checkpoint) => checkpoint,
            Err(reason) => {
                tracing::warn!(partition = p, %reason, "The partition's checkpoint is damaged; replaying the partition from its first message.");
                return None;
            }
        };
        let covered = checkpoint.wal_from;
        let graph = self.intake.graph().clone();
        let imported = tokio::task::spawn_blocking(move || {
            graph.lock().import_state(&checkpoint.state);
            checkpoint.state
        })
        .await;
        let Ok(state) = imported else {
            return None;
        };
        // Readers on other instances see the imported keys as they are now.
        let mut attempt = 0;
        while let Err(error) =
            crate::latest::republish(&self.jetstream, self.intake.graph(), &state).await
        {
            self.shared.health.failed(format!(
                "partition {p}: publishing its latest values: {error}"
            ));
            attempt += 1;
            if attempt > 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.shared
            .checkpoints_loaded
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            partition = p,
            sequence = covered,
            "Started the partition from its checkpoint."
        );
        Some(covered)
    }

    /// Writes the state of the partition's keys, covering input `sequence`;
    /// whether it was stored.
    async fn checkpoint(&self, sequence: u64) -> bool {
        let p = self.partition;
        let partitions = self.shared.partitions;
        let graph = self.intake.graph().clone();
        let exported = tokio::task::spawn_blocking(move || {
            let state = graph
                .lock()
                .export_state_where(|key| crate::config::partition(key, partitions) == p);
            dav2d_store::checkpoint::to_bytes(&state, sequence)
        })
        .await;
        let Ok(bytes) = exported else {
            return false;
        };
        match self
            .checkpoints
            .put(self.object().as_str(), &mut bytes.as_slice())
            .await
        {
            Ok(_) => {
                self.shared
                    .checkpoints_written
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                self.shared
                    .health
                    .failed(format!("checkpointing partition {p}: {error}"));
                false
            }
        }
    }
}
