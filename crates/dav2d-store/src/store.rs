//! The store: a directory holding a checkpoint and the write-ahead log, and
//! the restart procedure that brings a graph back from them.
//!
//! Updates (node outputs, constraint states, and whichever raw streams are
//! persisted) are logged as records and reach the disk at each `flush`: one
//! write and one fsync for the whole group. A `checkpoint` rolls the log to a
//! new segment, writes the graph's whole state noting that segment, and
//! deletes the segments it covers. Restarting loads the checkpoint, then
//! replays the records of the segments after it, so `latest()`, windows and
//! constraint states are what they were at the last durable flush.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav2d_core::{Clock, Graph, Update, Value};

use crate::checkpoint::{self, CheckpointError, Decoder, Encoder};
use crate::ledger::Ledger;
use crate::wal::{Damage, Wal, WalError, WalOptions};

const SAMPLE: u8 = 1;

/// Settings of a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The write-ahead log's settings.
    pub wal: WalOptions,
    /// File actions allowed per UTC day.
    pub max_file_actions_per_day: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            wal: WalOptions::default(),
            max_file_actions_per_day: Ledger::DEFAULT_BUDGET,
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
    scratch: Vec<u8>,
}

fn encode_sample(out: &mut Vec<u8>, stream: &str, key: &str, ts: i64, value: &Value) {
    out.clear();
    let mut e = Encoder(std::mem::take(out));
    e.u8(SAMPLE);
    e.str(stream);
    e.str(key);
    e.i64(ts);
    e.value(value);
    *out = e.0;
}

/// Decodes one logged sample: (stream, key, timestamp, value).
pub(crate) fn decode_sample(bytes: &[u8]) -> Result<(String, String, i64, Value), String> {
    let mut d = Decoder { bytes, at: 0 };
    if d.u8()? != SAMPLE {
        return Err("unknown record kind".to_string());
    }
    let stream = d.str()?;
    let key = d.str()?;
    let ts = d.i64()?;
    let value = d.value()?;
    Ok((stream, key, ts, value))
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
        let mut ledger = Ledger::new(options.max_file_actions_per_day, clock);
        let (wal, recovery) = Wal::open(dir, options.wal, &mut ledger)?;
        let mut restored = Restored {
            damage: recovery.damage.clone(),
            ..Restored::default()
        };
        let mut wal_from = 0;
        if let Some((state, from)) = checkpoint::read(dir)? {
            restored.checkpoint = true;
            restored.skipped_names = graph.import_state(&state);
            wal_from = from;
        }
        for record in recovery.records_from(wal_from) {
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
                scratch: Vec::new(),
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
        encode_sample(&mut scratch, &update.name, &update.key, update.ts_ns, value);
        let result = self.wal.append(&scratch, &mut self.ledger);
        self.scratch = scratch;
        Ok(result?)
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
        let wal_from = self.wal.roll(&mut self.ledger)?;
        checkpoint::write(&self.dir, &graph.export_state(), wal_from, &mut self.ledger)?;
        self.wal.delete_before(wal_from, &mut self.ledger)?;
        Ok(())
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
