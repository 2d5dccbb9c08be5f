//! Persistence for dav2d: the write-ahead log, checkpoints and the
//! file-action ledger.
//!
//! The key design decision: nothing touches the disk per sample. Records are
//! buffered and written a group at a time (one write, one fsync per flush),
//! and every file action is counted in a [`Ledger`] against a daily budget,
//! so load raises the batch size rather than the number of file actions.
//! Checkpoints and Parquet history build on this.

pub mod checkpoint;
pub mod history;
pub mod inspect;
pub mod ledger;
pub mod persist;
pub mod record;
pub mod samples;
mod section;
mod sink;
pub mod store;
pub mod wal;

pub use checkpoint::CheckpointError;
pub use history::{HistoryError, HistoryFile, Query, Rows};
pub use inspect::{HistoryInfo, Inspection, SegmentInfo, inspect, inspect_with_progress};
pub use ledger::{FileAction, Ledger, LedgerDay};
pub use persist::{PersistStats, Persister, Schedule};
pub use section::PersistenceSection;
pub use sink::{PersistenceConfig, PersistenceSink};
pub use store::{PendingCheckpoint, Restored, Store, StoreError, StoreOptions};
pub use wal::{Damage, Fsync, Recovery, Wal, WalError, WalOptions};
