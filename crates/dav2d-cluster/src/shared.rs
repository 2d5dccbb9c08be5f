//! What the member, its partition tasks, the latest-value publisher and the
//! HTTP read-through share: which partitions this instance owns, its
//! health and counts, and the bucket readers look keys up in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dav2d_component::{BrokerHealth, ClusterReading, ClusterReads, Gauge, Health};

/// Shared by everything of one cluster member.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The partition count (the same on every instance).
    pub partitions: u32,
    /// Whether each partition is applied here now.
    owned: Vec<AtomicBool>,
    /// Connected or reconnecting, with the last error.
    pub health: BrokerHealth,
    /// Partition checkpoints written.
    pub checkpoints_written: AtomicU64,
    /// Partition checkpoints a new owner started from.
    pub checkpoints_loaded: AtomicU64,
    /// Input messages applied from owned partitions.
    pub applied: AtomicU64,
    /// Latest values published to the replicated bucket.
    pub published: AtomicU64,
}

impl Shared {
    pub fn new(partitions: u32) -> Shared {
        Shared {
            partitions,
            owned: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            health: BrokerHealth::default(),
            checkpoints_written: AtomicU64::new(0),
            checkpoints_loaded: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    /// Marks partition `p` as applied here, or not.
    pub fn set_owned(&self, p: u32, owned: bool) {
        if let Some(flag) = self.owned.get(p as usize) {
            flag.store(owned, Ordering::Release);
        }
    }

    /// Whether this instance applies `key`.
    pub fn owns(&self, key: &str) -> bool {
        let p = crate::config::partition(key, self.partitions);
        self.owned
            .get(p as usize)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    fn owned_count(&self) -> u64 {
        self.owned
            .iter()
            .filter(|f| f.load(Ordering::Relaxed))
            .count() as u64
    }
}

impl Health for Shared {
    fn status(&self) -> Result<(), String> {
        self.health.status()
    }

    fn gauges(&self) -> Vec<Gauge> {
        let mut gauges = self.health.gauges();
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauges.extend([
            Gauge::count(
                "cluster_partitions_owned",
                "Partitions this instance applies now",
                self.owned_count(),
            ),
            Gauge::count(
                "cluster_checkpoints_written",
                "Partition checkpoints written",
                count(&self.checkpoints_written),
            ),
            Gauge::count(
                "cluster_checkpoints_loaded",
                "Partition checkpoints a takeover started from",
                count(&self.checkpoints_loaded),
            ),
            Gauge::count(
                "cluster_messages_applied",
                "Input messages applied from owned partitions",
                count(&self.applied),
            ),
            Gauge::count(
                "cluster_latest_published",
                "Latest values published to the replicated bucket",
                count(&self.published),
            ),
        ]);
        gauges
    }
}

/// The key of (name, key) in the latest-value bucket: both escaped to the
/// characters a KV key may hold (`[A-Za-z0-9_-]` as they are, any other
/// byte as `=` and two hex digits, the empty key as a lone `=`), joined by
/// a dot.
pub(crate) fn latest_key(name: &str, key: &str) -> String {
    fn escape(text: &str, into: &mut String) {
        if text.is_empty() {
            into.push('=');
        }
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
                into.push(byte as char);
            } else {
                into.push_str(&format!("={byte:02X}"));
            }
        }
    }
    let mut out = String::with_capacity(name.len() + key.len() + 2);
    escape(name, &mut out);
    out.push('.');
    escape(key, &mut out);
    out
}

/// The read-through `/state` uses for keys other instances apply.
pub(crate) struct Reads {
    pub shared: Arc<Shared>,
    pub latest: async_nats::jetstream::kv::Store,
    /// The client's runtime: an HTTP thread's runtime may not drive this
    /// client's connection, so lookups run here.
    pub runtime: tokio::runtime::Handle,
}

impl ClusterReads for Reads {
    fn owns(&self, key: &str) -> bool {
        self.shared.owns(key)
    }

    fn latest(&self, name: &str, key: &str) -> ClusterReading {
        let bucket = self.latest.clone();
        let entry = latest_key(name, key);
        let lookup = self.runtime.spawn(async move { bucket.get(entry).await });
        Box::pin(async move {
            match lookup.await {
                Ok(Ok(found)) => Ok(found.map(|bytes| bytes.to_vec())),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::latest_key;

    #[test]
    fn latest_keys_escape_what_a_kv_key_cannot_hold() {
        assert_eq!(latest_key("avg", "dev-17"), "avg.dev-17");
        assert_eq!(latest_key("a.b", "x y"), "a=2Eb.x=20y");
        assert_eq!(latest_key("avg", ""), "avg.=");
        assert_eq!(latest_key("avg", "="), "avg.=3D");
        assert_eq!(latest_key("t", "é"), "t.=C3=A9");
    }
}
