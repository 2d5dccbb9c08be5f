//! `dav2d inspect`: what a store directory holds, read without changing it.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::store::decode_sample;
use crate::wal::{self, WalError};

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

/// What a store directory holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// The log's segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// The checkpoint: its size, streams and keys, or why it is unreadable.
    pub checkpoint: Option<Result<(u64, usize, usize), String>>,
}

/// Reads `dir` without truncating or writing anything.
pub fn inspect(dir: &Path) -> Result<Inspection, WalError> {
    let mut segments = Vec::new();
    for number in wal::segments(dir)? {
        let path = dir.join(format!("wal-{number:016}.log"));
        let bytes = std::fs::read(&path).map_err(|error| WalError::Io {
            action: "reading",
            path: path.clone(),
            error,
        })?;
        let mut records = Vec::new();
        let damage = wal::read_segment_records(&bytes, &mut records);
        let mut time_range: Option<(i64, i64)> = None;
        for record in &records {
            if let Ok((_, _, ts, _)) = decode_sample(record) {
                time_range = Some(time_range.map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))));
            }
        }
        segments.push(SegmentInfo {
            path,
            bytes: bytes.len() as u64,
            records: records.len(),
            time_range,
            damage,
        });
    }
    let checkpoint = match checkpoint::read(dir) {
        Ok(None) => None,
        Ok(Some((state, _))) => {
            let size = std::fs::metadata(dir.join(checkpoint::FILE)).map_or(0, |m| m.len());
            let keys = state.streams.iter().map(|s| s.keys.len()).sum();
            Some(Ok((size, state.streams.len(), keys)))
        }
        Err(error) => Some(Err(error.to_string())),
    };
    Ok(Inspection {
        segments,
        checkpoint,
    })
}
