//! The store: a directory holding a checkpoint and the write-ahead log, and
//! the restart procedure that brings a graph back from them.
//!
//! Updates (node outputs, constraint states, and whichever raw streams are
//! persisted) are logged as records and reach the disk at each `flush`: one
//! write and one fsync for the whole group. A `checkpoint` rolls the log to a
//! new segment, writes the graph's whole state noting that segment, rolls
//! the segments it covers into a Parquet history file, deletes them, and
//! drops history older than the retention. Restarting loads the checkpoint, then
//! replays the records of the segments after it, so `latest()`, windows and
//! constraint states are what they were at the last durable flush.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav2d_core::{Clock, Graph, GraphState, Update};

use crate::checkpoint::{self, CheckpointError};
use crate::history::{self, HistoryError};
use crate::ledger::Ledger;
use crate::record::{decode_sample, encode_sample};
use crate::wal::{Damage, Wal, WalError, WalOptions};

/// Settings of a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The write-ahead log's settings.
    pub wal: WalOptions,
    /// File actions allowed per UTC day.
    pub max_file_actions_per_day: u64,
    /// Parquet history older than this (ns) is deleted at checkpoints
    /// (`None` keeps it forever).
    pub retention_ns: Option<i64>,
    /// Node updates that may wait to be logged; past it, newer updates of a
    /// (name, key) merge into the waiting one, which is counted and reported
    /// (`merged`), never silent.
    pub backlog: usize,
    /// Streams and nodes whose frames are stored with their pixels (the
    /// others' frames are stored as their description).
    pub pixels: Vec<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            wal: WalOptions::default(),
            max_file_actions_per_day: Ledger::DEFAULT_BUDGET,
            retention_ns: None,
            backlog: 1 << 20,
            pixels: Vec::new(),
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// What to persist could not be subscribed to.
    #[error("{0}")]
    Names(String),
    /// Rolling the log into Parquet history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// What a restart brought back.
#[derive(Debug, Default)]
pub struct Restored {
    /// Whether a checkpoint was loaded.
    pub checkpoint: bool,
    /// Log records replayed after the checkpoint.
    pub replayed: usize,
    /// Log records that could not be decoded or named an unknown stream.
    pub skipped_records: usize,
    /// Names in the checkpoint the graph does not have.
    pub skipped_names: Vec<String>,
    /// Damage found in the log (already truncated or reported).
    pub damage: Vec<Damage>,
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    wal: Wal,
    ledger: Ledger,
    retention_ns: Option<i64>,
    /// Names whose frames are stored with their pixels.
    pixels: Vec<String>,
    scratch: Vec<u8>,
    logged_bytes: u64,
    logged_since_checkpoint: u64,
}

/// A checkpoint taken (the log rolled, the state copied) and not yet
/// written: [`Store::finish_checkpoint`] does the file work, which needs no
/// access to the graph.
#[derive(Debug)]
pub struct PendingCheckpoint {
    state: GraphState,
    wal_from: u64,
}

impl Store {
    /// Opens the store in `dir` and restores `graph` (built with the same
    /// streams and nodes as before) from its checkpoint and log.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
        graph: &mut Graph,
    ) -> Result<(Store, Restored), StoreError> {
        Self::open_into(dir, options, clock, Some(graph))
    }

    /// Opens the store in `dir` beside a graph that already runs (a store a
    /// hot reload started): nothing is restored into the graph, whose live
    /// state wins; checkpoint it at once, so the log already there is not
    /// replayed by the next start.
    pub fn open_beside(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        Ok(Self::open_into(dir, options, clock, None)?.0)
    }

    fn open_into(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
        mut graph: Option<&mut Graph>,
    ) -> Result<(Store, Restored), StoreError> {
        let mut ledger = Ledger::new(options.max_file_actions_per_day, clock);
        let (wal, recovery) = Wal::open(dir, options.wal, &mut ledger)?;
        let mut restored = Restored {
            damage: recovery.damage.clone(),
            ..Restored::default()
        };
        let mut wal_from = 0;
        if let Some(kept) = checkpoint::read_full(dir)? {
            wal_from = kept.wal_from;
            ledger.restore(kept.ledger);
            if let Some(graph) = graph.as_deref_mut() {
                restored.checkpoint = true;
                restored.skipped_names = graph.import_state(&kept.state);
            }
        }
        // Beside a running graph, the log is not replayed into it.
        let records: &[Vec<u8>] = match graph {
            Some(_) => recovery.records_from(wal_from),
            None => &[],
        };
        for record in records {
            let Some(graph) = graph.as_deref_mut() else {
                break;
            };
            let replayed = match decode_sample(record) {
                Ok((stream, key, ts, value)) => graph.restore_sample(&stream, &key, ts, value),
                Err(_) => false,
            };
            if replayed {
                restored.replayed += 1;
            } else {
                restored.skipped_records += 1;
            }
        }
        tracing::info!(
            checkpoint = restored.checkpoint,
            replayed = restored.replayed,
            skipped = restored.skipped_records,
            "Store opened."
        );
        Ok((
            Store {
                dir: dir.to_path_buf(),
                wal,
                ledger,
                retention_ns: options.retention_ns,
                pixels: options.pixels,
                scratch: Vec::new(),
                logged_bytes: 0,
                // What the log holds past the checkpoint is not in one yet:
                // the next checkpoint (at the latest, at a clean stop)
                // takes it, so the next start does not replay it again.
                logged_since_checkpoint: (restored.replayed + restored.skipped_records) as u64,
            },
            restored,
        ))
    }

    /// Logs one update (errors are states, not samples: they are skipped).
    /// It is durable after the next [`Store::flush`].
    pub fn log(&mut self, update: &Update) -> Result<(), StoreError> {
        let Some(value) = &update.value else {
            return Ok(());
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let pixels = self.pixels.iter().any(|name| **name == *update.name);
        encode_sample(
            &mut scratch,
            &update.name,
            &update.key,
            update.ts_ns,
            value,
            pixels,
        );
        let result = self.wal.append(&scratch, &mut self.ledger);
        self.logged_bytes += scratch.len() as u64 + 8;
        self.logged_since_checkpoint += 1;
        self.scratch = scratch;
        Ok(result?)
    }

    /// Bytes logged since the store was opened (framing included).
    pub fn logged_bytes(&self) -> u64 {
        self.logged_bytes
    }

    /// Records logged since the last checkpoint (a checkpoint with none is
    /// skipped: it would only spend file actions).
    pub fn logged_since_checkpoint(&self) -> u64 {
        self.logged_since_checkpoint
    }

    /// Sets the size at which log segments roll (the store grows it with
    /// load to keep within the file-action budget).
    pub fn set_segment_bytes(&mut self, bytes: u64) {
        self.wal.set_segment_bytes(bytes);
    }

    /// The size at which log segments roll now.
    pub fn segment_bytes(&self) -> u64 {
        self.wal.segment_bytes()
    }

    /// Makes every logged update durable: one write and one fsync. Returns
    /// how many records were written.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        Ok(self.wal.commit(&mut self.ledger)?)
    }

    /// Writes a checkpoint of `graph` and drops the log it covers. Flush
    /// and checkpoint with the graph in the same state (no update in
    /// between), or the log replays updates the checkpoint already holds.
    pub fn checkpoint(&mut self, graph: &Graph) -> Result<(), StoreError> {
        let pending = self.begin_checkpoint(graph)?;
        self.finish_checkpoint(pending)
    }

    /// The part of a checkpoint that needs the graph: commits what is
    /// pending, rolls the log and copies the state. Hold the graph still
    /// (its lock) from the last [`Store::log`] through this call.
    pub fn begin_checkpoint(&mut self, graph: &Graph) -> Result<PendingCheckpoint, StoreError> {
        let wal_from = self.wal.roll(&mut self.ledger)?;
        self.logged_since_checkpoint = 0;
        Ok(PendingCheckpoint {
            state: graph.export_state(),
            wal_from,
        })
    }

    /// The file work of a checkpoint: writes it atomically, rolls the
    /// segments it covers into Parquet history and deletes them, then
    /// deletes history older than the retention. A crash anywhere in here
    /// leaves a directory that restarts correctly; the next checkpoint
    /// finishes the job without archiving anything twice.
    pub fn finish_checkpoint(&mut self, pending: PendingCheckpoint) -> Result<(), StoreError> {
        let PendingCheckpoint { state, wal_from } = pending;
        checkpoint::write_keeping(&self.dir, &state, wal_from, &mut self.ledger, &self.pixels)?;
        drop(state);
        let archived = history::files(&self.dir)?;
        let covered: Vec<u64> = crate::wal::segments(&self.dir)?
            .into_iter()
            .filter(|&n| n < wal_from)
            .collect();
        let unarchived: Vec<u64> = covered
            .iter()
            .copied()
            .filter(|&n| !archived.iter().any(|f| f.covers(n)))
            .collect();
        history::archive(&self.dir, &unarchived, &mut self.ledger)?;
        self.wal.delete_before(wal_from, &mut self.ledger)?;
        if let Some(retention) = self.retention_ns {
            let before = self.ledger.now_ns().saturating_sub(retention);
            let expired = history::expire(&self.dir, before, &mut self.ledger)?;
            if expired > 0 {
                tracing::info!(expired, "History older than the retention was deleted.");
            }
        }
        Ok(())
    }

    /// The store's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The file-action ledger.
    pub fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Records logged and not yet flushed.
    pub fn pending(&self) -> usize {
        self.wal.pending()
    }
}
