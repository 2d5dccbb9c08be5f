//! Scale-out for dav2d on NATS JetStream.
//!
//! The key design decision: no cluster protocol of our own. Every instance
//! computes a sample's partition the same way ([`partition`]: FNV-1a of the
//! key, mod the partition count) and publishes it to
//! `dav2d.in.<partition>.<stream>` of one JetStream stream, so Debian's
//! server needs no subject transform. Partitions are owned through leases in
//! a JetStream KV bucket whose entries expire after the lease TTL: an owner
//! renews its entries with compare-and-set on their revision, and an
//! instance that stops renewing loses them when they expire; the survivors
//! take them over by creating the entry (which fails if someone else did
//! first). An owner applies its partitions by replaying them in order from
//! the stream (an ordered consumer from the first message), so a new owner
//! rebuilds windows, node memory and constraint states exactly.

mod config;
mod forward;
mod member;

pub use config::{ClusterConfig, partition};
pub use forward::Forwarder;
pub use member::ClusterMember;

/// The JetStream stream holding every instance's inputs.
pub const STREAM: &str = "DAV2D_IN";
/// The KV bucket of partition leases.
pub const LEASES: &str = "dav2d-leases";
/// The KV bucket where instances say they are alive.
pub const MEMBERS: &str = "dav2d-members";
