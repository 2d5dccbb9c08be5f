//! The latest-value publisher: every stream, node and constraint of the
//! keys this instance owns goes to the replicated KV bucket `dav2d-latest`,
//! one entry per (name, key) holding the JSON `/state` answers with, so
//! `/state` on any instance answers for any key. The subscription conflates
//! per key, so a key that changes faster than the bucket takes writes is
//! published at its newest value, never queued without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dav2d_core::{SharedGraph, Subscription, SubscriptionMode, Update};

use crate::LATEST;
use crate::shared::{Shared, latest_key};

/// Updates published per round trip, at most (a round sends them all).
const BATCH: usize = 1024;

/// A conflating subscription to every stream, node and constraint.
pub(crate) fn subscribe(graph: &SharedGraph) -> Result<Subscription, String> {
    let mut graph = graph.lock();
    let mut names: Vec<String> = graph.streams().into_iter().map(|s| s.name).collect();
    for node in graph.nodes() {
        if !names.contains(&node.name) {
            names.push(node.name);
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    graph
        .subscribe_many(&refs, SubscriptionMode::Latest, 1 << 16)
        .map_err(|e| format!("cluster: cannot subscribe to the latest values: {e}"))
}

/// The JSON `/state` answers with for the reading `update` reports.
fn reading(update: &Update) -> Vec<u8> {
    let reading = dav2d_core::Reading {
        sample: update.value.clone().map(|value| dav2d_core::Sample {
            value,
            ts_ns: update.ts_ns,
            seq: update.seq,
        }),
        error: update.error.clone(),
    };
    dav2d_wire::reading_json(&update.key, &reading)
        .to_string()
        .into_bytes()
}

/// Publishes the latest reading of every (stream, key) `state` holds, as
/// the graph holds it now: what a new owner does after importing a
/// checkpoint, before it replays anything, since the old owner may have
/// stopped before publishing its last updates (the import itself is no
/// update).
pub(crate) async fn republish(
    jetstream: &async_nats::jetstream::Context,
    graph: &SharedGraph,
    state: &dav2d_core::GraphState,
) -> Result<u64, String> {
    let messages: Vec<(String, Vec<u8>)> = {
        let graph = graph.lock();
        state
            .streams
            .iter()
            .flat_map(|stream| stream.keys.iter().map(move |k| (&stream.name, &k.key)))
            .filter_map(|(name, key)| {
                let reading = graph.latest(name, key).ok()??;
                let body = dav2d_wire::reading_json(key, &reading).to_string();
                Some((
                    format!("$KV.{LATEST}.{}", latest_key(name, key)),
                    body.into_bytes(),
                ))
            })
            .collect()
    };
    send(jetstream, &messages).await?;
    Ok(messages.len() as u64)
}

/// Publishes `messages` and waits for JetStream to store every one.
async fn send(
    jetstream: &async_nats::jetstream::Context,
    messages: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let mut acks = Vec::with_capacity(messages.len().min(BATCH));
    for chunk in messages.chunks(BATCH) {
        for (subject, payload) in chunk {
            acks.push(
                jetstream
                    .publish(subject.clone(), payload.clone().into())
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        for ack in acks.drain(..) {
            ack.await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Publishes the owned keys' updates until stopped.
pub(crate) struct Publisher {
    pub updates: Subscription,
    pub shared: Arc<Shared>,
    pub jetstream: async_nats::jetstream::Context,
    pub runtime: tokio::runtime::Handle,
    /// The least time between two rounds: updates in between conflate.
    pub every: Duration,
}

impl Publisher {
    /// Runs on a thread of its own until `stop`.
    pub fn start(self, stop: Arc<AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("dav2d-cluster-latest".to_string())
            .spawn(move || self.run(&stop))
            .map_err(|error| tracing::error!(%error, "cannot start the latest-value publisher"))
            .ok()
    }

    fn run(self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            let Some(first) = self.updates.next_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let round = std::time::Instant::now();
            // Everything pending (at most one per (name, key): the
            // subscription conflates), sent in chunks of BATCH.
            let mut batch = vec![first];
            while let Some(update) = self.updates.try_next() {
                batch.push(update);
            }
            // Keys of partitions applied elsewhere are stale here.
            let messages: Vec<(String, Vec<u8>)> = batch
                .iter()
                .filter(|u| self.shared.owns(&u.key))
                .map(|u| {
                    let subject = format!("$KV.{LATEST}.{}", latest_key(&u.name, &u.key));
                    (subject, reading(u))
                })
                .collect();
            // A failed round is retried (the broker may be restarting): an
            // update is never dropped, so the bucket ends at the newest.
            while !stop.load(Ordering::Acquire) {
                match self.send(&messages) {
                    Ok(()) => {
                        self.shared
                            .published
                            .fetch_add(messages.len() as u64, Ordering::Relaxed);
                        self.shared.health.connected();
                        break;
                    }
                    Err(error) => {
                        self.shared
                            .health
                            .failed(format!("publishing latest values: {error}"));
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
            }
            // Let updates gather (and conflate per key) until the next round:
            // a busy key costs one write per round, not one per sample.
            while round.elapsed() < self.every && !stop.load(Ordering::Acquire) {
                std::thread::sleep((self.every - round.elapsed()).min(Duration::from_millis(20)));
            }
        }
    }

    fn send(&self, messages: &[(String, Vec<u8>)]) -> Result<(), String> {
        self.runtime.block_on(send(&self.jetstream, messages))
    }
}
