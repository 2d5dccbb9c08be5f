//! The cluster's settings and the partition function.

use std::time::Duration;

/// How an instance joins the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// `nats://host:port` of the JetStream server.
    pub url: String,
    /// Partitions of the key space (the same on every instance).
    pub partitions: u32,
    /// This instance's name (unique in the cluster).
    pub instance: String,
    /// A partition whose owner stops renewing is free after this long.
    pub lease_ttl: Duration,
    /// How often an owner checkpoints each partition it applies (zero: never;
    /// a new owner then replays the partition from its first message).
    pub checkpoint_every: Duration,
    /// Copies JetStream keeps of the input stream and the buckets.
    pub replicas: usize,
    /// How often an owner publishes its changed keys' latest readings to
    /// the shared bucket (a key that changed many times in between is
    /// written once, at its newest).
    pub publish_every: Duration,
}

impl ClusterConfig {
    /// The component these settings describe.
    pub fn build(self) -> crate::ClusterMember {
        crate::ClusterMember { config: self }
    }
}

/// The partition of `key`: FNV-1a (64-bit) of its UTF-8 bytes, mod
/// `partitions`. Documented and stable: every instance, and any producer
/// publishing straight to the stream, computes the same.
pub fn partition(key: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::partition;

    #[test]
    fn the_partition_function_is_fnv1a_mod_p() {
        // FNV-1a 64 of "" is the offset basis; of "a" the published value.
        assert_eq!(
            partition("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            partition("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % u64::from(u32::MAX)) as u32
        );
        let spread: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition(&format!("dev-{i}"), 16))
            .collect();
        assert_eq!(spread.len(), 16);
    }
}

/// Without the `client` feature: the member that refuses to start, saying
/// what to build (`Config::cluster` refuses a cluster before a plan holds
/// one, so a run never gets here; a hand-made plan still gets the reason).
#[cfg(not(feature = "client"))]
#[derive(Debug)]
pub struct ClusterMember {
    config: ClusterConfig,
}

#[cfg(not(feature = "client"))]
impl dav2d_component::Source for ClusterMember {
    fn name(&self) -> &str {
        &self.config.instance
    }

    fn kind(&self) -> &'static str {
        "cluster"
    }

    fn start(
        self: Box<Self>,
        _context: dav2d_component::Context,
    ) -> Result<Box<dyn dav2d_component::Running>, dav2d_component::StartError> {
        Err(dav2d_component::StartError::Other(
            dav2d_component::built_without("clustering", "cluster"),
        ))
    }
}
