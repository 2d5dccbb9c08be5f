//! The forwarder: what an instance's intake does with decoded samples when
//! clustering is on. The samples of a batch go to
//! `dav2d.in.<partition>.<stream>`, one message per partition and stream
//! holding a JSON array of samples (`key`, `value`, `ts`) in batch order,
//! and the batch counts as accepted once JetStream acknowledged every
//! message of it. Batches from producers forwarding at once are published
//! one after the other, each without waiting for the acknowledgements of
//! the ones before it.

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
                    // Published here, one batch after the other, so the
                    // stream holds them in the order they came; their
                    // acknowledgements are awaited beside the next batches
                    // (pipelined), each batch answered once all of its own
                    // arrived.
                    let published = runtime.block_on(async {
                        let mut acks = Vec::with_capacity(messages.len());
                        for (subject, payload) in messages {
                            let ack = context
                                .publish(subject, payload.into())
                                .await
                                .map_err(|e| e.to_string())?;
                            acks.push(ack);
                        }
                        Ok::<_, String>(acks)
                    });
                    match published {
                        Ok(acks) => {
                            runtime.spawn(async move {
                                let mut result = Ok(());
                                for ack in acks {
                                    if let Err(error) = ack.await {
                                        result = Err(error.to_string());
                                        break;
                                    }
                                }
                                let _ = reply.send(result);
                            });
                        }
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            })
            .ok();
        Forwarder { jobs, partitions }
    }
}

impl Forward for Forwarder {
    fn forward(&self, samples: &[Forwarded<'_>]) -> Result<(), String> {
        // One message per (partition, stream) of the batch: a JSON array of
        // its samples in batch order, so each key keeps its order. Written
        // straight into each message's bytes (no JSON tree per sample).
        let mut groups: Vec<((u32, &str), Vec<u8>)> = Vec::new();
        for s in samples {
            let p = crate::partition(s.key, self.partitions);
            let at = match groups.iter().position(|(g, _)| *g == (p, s.stream)) {
                Some(at) => {
                    groups[at].1.push(b',');
                    at
                }
                None => {
                    groups.push(((p, s.stream), vec![b'[']));
                    groups.len() - 1
                }
            };
            write_sample(&mut groups[at].1, s).map_err(|e| e.to_string())?;
        }
        let messages = groups
            .into_iter()
            .map(|((p, stream), mut body)| {
                body.push(b']');
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

/// Appends `{"key": ..., "value": ..., "ts": ...}` for `sample` to `out`
/// (the key escaped as JSON; a value as `dav2d_wire::value_json` writes it).
fn write_sample(out: &mut Vec<u8>, sample: &Forwarded<'_>) -> serde_json::Result<()> {
    use std::io::Write;
    out.extend_from_slice(b"{\"key\":");
    serde_json::to_writer(&mut *out, sample.key)?;
    out.extend_from_slice(b",\"value\":");
    match sample.value {
        dav2d_core::Value::Float(x) if x.is_finite() => serde_json::to_writer(&mut *out, x)?,
        other => serde_json::to_writer(&mut *out, &dav2d_wire::value_json(other))?,
    }
    // Writing to a Vec cannot fail.
    let _ = write!(out, ",\"ts\":{}}}", sample.ts);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_written_as_the_json_tree_would_be() {
        let values = [
            dav2d_core::Value::Float(21.5),
            dav2d_core::Value::Float(f64::NAN),
            dav2d_core::Value::Int(-3),
            dav2d_core::Value::Str("a \"quoted\" \u{e9}".into()),
        ];
        for value in &values {
            let sample = Forwarded {
                stream: "temp",
                key: "dev\n\"7\"",
                value,
                ts: 1_796_000_000_000_000_123,
            };
            let mut out = Vec::new();
            write_sample(&mut out, &sample).expect("writes");
            let written: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            let tree = serde_json::json!({
                "key": sample.key,
                "value": dav2d_wire::value_json(value),
                "ts": sample.ts,
            });
            assert_eq!(written, tree);
        }
    }
}
