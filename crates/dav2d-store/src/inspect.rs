//! `dav2d inspect`: what a store directory holds, read without changing it.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::history::{self, HistoryError, Progress};
use crate::ledger::LedgerDay;
use crate::record::decode_sample;
use crate::wal;

/// One log segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Good records in it.
    pub records: usize,
    /// Oldest and newest sample timestamps (ns), if any.
    pub time_range: Option<(i64, i64)>,
    /// Where damage starts and what kind, if any.
    pub damage: Option<(u64, &'static str)>,
}

/// One Parquet history file.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryInfo {
    /// The file, the segments it holds and its time range.
    pub file: history::HistoryFile,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows in it, or why its footer could not be read.
    pub rows: Result<u64, String>,
}

/// What a store directory holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// The hot reloads recorded (`reloads.ndjson`): version, time (ns) and
    /// changes of each, oldest first.
    pub reloads: Vec<(u64, i64, Vec<String>)>,
    /// The log's segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// The Parquet history files, oldest first.
    pub history: Vec<HistoryInfo>,
    /// The checkpoint: its size, streams and keys, or why it is unreadable.
    pub checkpoint: Option<Result<(u64, usize, usize), String>>,
    /// File actions used on the day of the last checkpoint, as it recorded
    /// them.
    pub file_actions: Option<LedgerDay>,
}

/// Reads `dir` without truncating or writing anything.
pub fn inspect(dir: &Path) -> Result<Inspection, HistoryError> {
    inspect_with_progress(dir, |_| {})
}

/// [`inspect`], telling `progress` how many bytes of log it has read (the
/// log is read through; history files only by their footers).
pub fn inspect_with_progress(
    dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Inspection, HistoryError> {
    let numbers = wal::segments(dir)?;
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let mut at = Progress {
        done: 0,
        total: numbers
            .iter()
            .map(|&n| size(&wal::segment_file(dir, n)))
            .sum(),
    };
    progress(at);
    let mut segments = Vec::new();
    for number in numbers {
        let path = wal::segment_file(dir, number);
        let mut records = 0;
        let mut time_range: Option<(i64, i64)> = None;
        let damage = wal::for_each_record(&path, |record| {
            records += 1;
            if let Ok((_, _, ts, _)) = decode_sample(record) {
                time_range = Some(time_range.map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))));
            }
        })?;
        let bytes = size(&path);
        at.done += bytes;
        progress(at);
        segments.push(SegmentInfo {
            path,
            bytes,
            records,
            time_range,
            damage,
        });
    }
    let history = history::files(dir)?
        .into_iter()
        .map(|file| HistoryInfo {
            bytes: size(&file.path),
            rows: history::row_count(&file.path).map_err(|error| error.to_string()),
            file,
        })
        .collect();
    let (checkpoint, file_actions) = match checkpoint::read_full(dir) {
        Ok(None) => (None, None),
        Ok(Some(kept)) => {
            let size = size(&dir.join(checkpoint::FILE));
            let keys = kept.state.streams.iter().map(|s| s.keys.len()).sum();
            (
                Some(Ok((size, kept.state.streams.len(), keys))),
                Some(kept.ledger),
            )
        }
        Err(error) => (Some(Err(error.to_string())), None),
    };
    Ok(Inspection {
        reloads: reloads(dir),
        segments,
        history,
        checkpoint,
        file_actions,
    })
}

/// Where a store records the hot reloads of the run writing it, one JSON
/// object a line: `{"version", "ts", "changes"}`.
pub const RELOADS_FILE: &str = "reloads.ndjson";

/// The reloads recorded in `dir` (a line that does not parse is skipped).
fn reloads(dir: &Path) -> Vec<(u64, i64, Vec<String>)> {
    #[derive(serde::Deserialize)]
    struct Line {
        version: u64,
        ts: i64,
        changes: Vec<String>,
    }
    let text = std::fs::read_to_string(dir.join(RELOADS_FILE)).unwrap_or_default();
    (text.lines())
        .filter_map(|line| serde_json::from_str::<Line>(line).ok())
        .map(|l| (l.version, l.ts, l.changes))
        .collect()
}
