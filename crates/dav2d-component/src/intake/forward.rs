//! Clustering's hooks in the intake: decoded samples handed to the
//! partitioned stream instead of the engine ([`Forward`]), and where
//! readers find keys other instances apply ([`ClusterReads`]).

use std::sync::Arc;
use std::time::Instant;

use dav2d_core::{BatchReport, Keys};
use dav2d_wire::Parsed;

use super::{Intake, Outcome};

/// One decoded sample handed on instead of applied (clustering).
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: &'a dav2d_core::Value,
    /// The timestamp (the forwarding instance's clock when the sample gave none).
    pub ts: i64,
}

/// Where decoded samples go instead of the local engine (the cluster's
/// partitioned stream); it returns once they are stored, or says why not.
pub trait Forward: Send + Sync {
    /// Hands `samples` on; `Err` refuses the batch ("retry later").
    fn forward(&self, samples: &[Forwarded<'_>]) -> Result<(), String>;
}

/// A reading another instance published, as `/state` answers it (JSON).
pub type ClusterReading =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<Vec<u8>>, String>> + Send>>;

/// Where readers find the keys this instance does not apply (clustering):
/// each partition's owner publishes its keys' latest values and alert
/// states to a replicated bucket, and `/state` on any instance reads a key
/// it does not own from there.
pub trait ClusterReads: Send + Sync {
    /// Whether this instance applies `key` (owns its partition).
    fn owns(&self, key: &str) -> bool;
    /// The latest reading of (`name`, `key`) as its owner published it, as
    /// the JSON `/state` answers with; `None` when there is none yet.
    fn latest(&self, name: &str, key: &str) -> ClusterReading;
}

impl Intake {
    /// From now on, decoded samples go to `forward` instead of the engine
    /// (clustering: the partitioned stream; the owner of each partition
    /// applies them). Set once, before the sources start.
    pub fn set_forward(&self, forward: Arc<dyn Forward>) -> Result<(), String> {
        self.shared
            .forward
            .set(forward)
            .map_err(|_| "this intake already forwards".to_string())
    }

    /// From now on, readers look up the keys this instance does not own
    /// in `reads` (clustering).
    pub fn set_cluster_reads(&self, reads: Arc<dyn ClusterReads>) -> Result<(), String> {
        self.shared
            .cluster_reads
            .set(reads)
            .map_err(|_| "this intake already reads from a cluster".to_string())
    }

    /// Where the keys this instance does not own are read, when clustering.
    pub fn cluster_reads(&self) -> Option<&Arc<dyn ClusterReads>> {
        self.shared.cluster_reads.get()
    }

    /// Whether decoded samples are forwarded rather than applied.
    pub fn forwards(&self) -> bool {
        self.shared.forward.get().is_some()
    }

    /// Hands `parsed` to `forward` (clustering) and reports it as accepted
    /// once stored; its decode rejections are reported as usual.
    pub(super) fn forward(
        &self,
        forward: &dyn Forward,
        parsed: Parsed<'_>,
        started: Instant,
    ) -> Outcome {
        self.shared
            .metrics
            .parse_seconds
            .observe(started.elapsed().as_secs_f64());
        let now = self.shared.clock.now_ns();
        let decoded: Vec<dav2d_core::SampleIn<'_>> = parsed.samples().collect();
        let samples: Vec<Forwarded<'_>> = decoded
            .iter()
            .map(|s| Forwarded {
                stream: s.stream,
                key: s.key,
                value: &s.value,
                ts: s.ts_ns.unwrap_or(now),
            })
            .collect();
        self.counters
            .received
            .inc_by((samples.len() + parsed.errors.len()) as u64);
        self.forward_samples(forward, &samples, &parsed.errors)
    }

    /// Forwards `samples`; accepted once stored, refused ("retry later")
    /// when the cluster did not take them.
    pub(super) fn forward_samples(
        &self,
        forward: &dyn Forward,
        samples: &[Forwarded<'_>],
        decode_errors: &[dav2d_wire::RecordError],
    ) -> Outcome {
        if let Err(error) = forward.forward(samples) {
            tracing::warn!(%error, "Forwarding to the cluster failed; the batch is refused.");
            return Outcome::Overloaded;
        }
        let mut report = self.report(BatchReport::default(), decode_errors);
        report.accepted = samples.len();
        Outcome::Applied(report)
    }

    /// [`Intake::push_numbers`] when clustering: the numbers go to the
    /// partitioned stream, stamped with the graph's clock.
    pub(super) fn forward_numbers(
        &self,
        forward: &dyn Forward,
        stream: &str,
        keys: Keys<'_>,
        values: &[f64],
        ts: Option<&[i64]>,
    ) -> Outcome {
        self.counters.received.inc_by(values.len() as u64);
        let now = self.shared.clock.now_ns();
        let values: Vec<dav2d_core::Value> = values
            .iter()
            .map(|v| dav2d_core::Value::Float(*v))
            .collect();
        let samples: Vec<Forwarded<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, value)| Forwarded {
                stream,
                key: match keys {
                    Keys::One(key) => key,
                    Keys::Many(keys) => keys.get(i).copied().unwrap_or(""),
                },
                value,
                ts: ts.and_then(|ts| ts.get(i).copied()).unwrap_or(now),
            })
            .collect();
        self.forward_samples(forward, &samples, &[])
    }
}
