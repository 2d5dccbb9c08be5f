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
//! first). An owner applies its partitions in order from the stream (an
//! ordered consumer) and checkpoints each one (the state of its keys and the
//! stream sequence it covers) in a JetStream object store, so a new owner
//! loads the checkpoint and replays only what came after it, ending with
//! exactly the windows, node memory and constraint states the old owner
//! had. Owners publish their keys' latest values and alert states to a
//! replicated KV bucket, where `/state` on any instance reads the keys it
//! does not own.

mod config;
#[cfg(feature = "client")]
mod forward;
#[cfg(feature = "client")]
mod latest;
#[cfg(feature = "client")]
mod member;
#[cfg(feature = "client")]
mod partition;
#[cfg(feature = "client")]
mod shared;

#[cfg(not(feature = "client"))]
pub use config::ClusterMember;
pub use config::{ClusterConfig, partition};
#[cfg(feature = "client")]
pub use forward::Forwarder;
#[cfg(feature = "client")]
pub use member::ClusterMember;

/// Whether this build can join a cluster (Cargo feature `client`).
pub const AVAILABLE: bool = cfg!(feature = "client");

/// The JetStream stream holding every instance's inputs.
pub const STREAM: &str = "DAV2D_IN";
/// The KV bucket of partition leases.
pub const LEASES: &str = "dav2d-leases";
/// The KV bucket where instances say they are alive.
pub const MEMBERS: &str = "dav2d-members";
/// The KV bucket of every (name, key)'s latest reading, by its owner.
pub const LATEST: &str = "dav2d-latest";
/// The object store of partition checkpoints (`p<partition>`).
pub const CHECKPOINTS: &str = "dav2d-checkpoints";
