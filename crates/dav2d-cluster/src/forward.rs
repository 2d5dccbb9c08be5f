//! The forwarder: what an instance's intake does with decoded samples when
//! clustering is on. The samples of a batch go to
//! `dav2d.in.<partition>.<stream>`, one message per partition and stream
//! holding a JSON array of samples (`key`, `value`, `ts`) in batch order,
//! and the batch counts as accepted once JetStream acknowledged every
//! message of it.

use std::sync::mpsc;
use std::time::Duration;

use dav2d_component::{Forward, Forwarded};

/// A batch to publish, and where to say how it went.
type Job = (Vec<(String, Vec<u8>)>, mpsc::SyncSender<Result<(), String>>);

/// Publishes forwarded samples from a thread and client of its own.
pub struct Forwarder {
    jobs: mpsc::SyncSender<Job>,
    partitions: u32,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl Forwarder {
    /// Starts publishing to `client`'s JetStream on `runtime` (kept alive
    /// while the forwarder lives).
    pub fn start(
        client: async_nats::Client,
        runtime: std::sync::Arc<tokio::runtime::Runtime>,
        partitions: u32,
    ) -> Forwarder {
        let (jobs, received) = mpsc::sync_channel::<Job>(64);
        let context = {
            let _inside = runtime.enter();
            async_nats::jetstream::new(client)
        };
        std::thread::Builder::new()
            .name("dav2d-cluster-forward".to_string())
            .spawn(move || {
                while let Ok((messages, reply)) = received.recv() {
                    let result = runtime.block_on(async {
                        let mut acks = Vec::with_capacity(messages.len());
                        for (subject, payload) in messages {
                            let ack = context
                                .publish(subject, payload.into())
                                .await
                                .map_err(|e| e.to_string())?;
                            acks.push(ack);
                        }
                        for ack in acks {
                            ack.await.map_err(|e| e.to_string())?;
                        }
                        Ok::<(), String>(())
                    });
                    let _ = reply.send(result);
                }
            })
            .ok();
        Forwarder { jobs, partitions }
    }
}

impl Forward for Forwarder {
    fn forward(&self, samples: &[Forwarded<'_>]) -> Result<(), String> {
        // One message per (partition, stream) of the batch: a JSON array of
        // its samples in batch order, so each key keeps its order.
        let mut groups: Vec<((u32, &str), Vec<serde_json::Value>)> = Vec::new();
        for s in samples {
            let p = crate::partition(s.key, self.partitions);
            let sample = serde_json::json!({
                "key": s.key,
                "value": dav2d_wire::value_json(s.value),
                "ts": s.ts,
            });
            match groups.iter_mut().find(|(g, _)| *g == (p, s.stream)) {
                Some((_, group)) => group.push(sample),
                None => groups.push(((p, s.stream), vec![sample])),
            }
        }
        let messages = groups
            .into_iter()
            .map(|((p, stream), group)| {
                let body = serde_json::Value::Array(group).to_string().into_bytes();
                (format!("dav2d.in.{p}.{stream}"), body)
            })
            .collect();
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .send((messages, reply))
            .map_err(|_| "the cluster forwarder stopped".to_string())?;
        answer
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the cluster did not acknowledge within 30 s".to_string())?
    }
}
