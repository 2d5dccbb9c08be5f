//! The write-ahead log: append-only segments of CRC32C-framed records,
//! written a group at a time.
//!
//! A record on disk is `[length: u32 LE][crc: u32 LE][payload]`, where the
//! CRC32C covers the length bytes and the payload, so a damaged length is
//! caught as surely as a damaged payload. Records are buffered by `append`
//! and reach the file in one write per `commit` (group commit), followed by
//! an fsync under the `Batch` and `Always` policies. Segments roll once they
//! pass `segment_bytes`.
//!
//! Opening a log reads every segment back. A torn or corrupt tail of the
//! newest segment (a crash mid-write) is truncated at the last good record
//! and reported with counts; damage anywhere else is reported with its place
//! and the records after it in that segment are not read. Nothing damaged is
//! ever returned as a record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::ledger::{FileAction, Ledger};

/// Largest payload accepted; a larger length read back means damage.
pub const MAX_RECORD: usize = 64 << 20;
const HEADER: usize = 8;

/// When commits reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fsync {
    /// fsync after every commit, and commit after every append.
    Always,
    /// fsync once per commit (a group of records).
    #[default]
    Batch,
    /// Never fsync (the OS decides); fastest, not durable across power loss.
    Off,
}

/// Settings of the log.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Roll to a new segment once the current one is this large.
    pub segment_bytes: u64,
    /// When commits reach the disk.
    pub fsync: Fsync,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            fsync: Fsync::Batch,
        }
    }
}

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O call failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A payload larger than [`MAX_RECORD`].
    #[error("a record of {0} bytes is larger than the {MAX_RECORD}-byte limit")]
    TooLarge(usize),
}

/// Damage found while reading the log back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset of the first bad record.
    pub offset: u64,
    /// Bytes from there to the end of the segment, not read as records.
    pub dropped_bytes: u64,
    /// What was wrong: `torn` (the file ends inside a record) or `corrupt`.
    pub kind: &'static str,
    /// Whether the tail was truncated (only the newest segment's).
    pub truncated: bool,
}

/// What opening the log found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every good record, oldest first.
    pub records: Vec<Vec<u8>>,
    /// For each segment read: its number and the index of its first record.
    pub starts: Vec<(u64, usize)>,
    /// Damage found, if any, per segment.
    pub damage: Vec<Damage>,
    /// Segments read.
    pub segments: usize,
}

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    file: File,
    segment: u64,
    segment_len: u64,
    pending: Vec<u8>,
    pending_records: usize,
    /// A failed write may have left part of a group after `segment_len`:
    /// it is cut off before anything else is written.
    dirty: bool,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |error| WalError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:016}.log"))
}

/// The numbers of the segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(number) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn frame_crc(length: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&length), payload)
}

impl Recovery {
    /// The records of segment `from` and every later segment.
    pub fn records_from(&self, from: u64) -> &[Vec<u8>] {
        let first = self
            .starts
            .iter()
            .find(|(segment, _)| *segment >= from)
            .map_or(self.records.len(), |(_, index)| *index);
        &self.records[first..]
    }
}

/// Streams the good records of the segment file at `path` to `each`,
/// reading it in bounded pieces (a segment may be far larger than memory
/// should hold); returns where damage starts, if any, and its kind. Changes
/// nothing on disk.
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(&[u8]),
) -> Result<Option<(u64, &'static str)>, WalError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        match read_full(&mut reader, &mut header).map_err(io("reading", path))? {
            0 => return Ok(None),
            n if n < HEADER => return Ok(Some((offset, "torn"))),
            _ => {}
        }
        let length_bytes = [header[0], header[1], header[2], header[3]];
        let length = u32::from_le_bytes(length_bytes) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length > MAX_RECORD {
            return Ok(Some((offset, "corrupt")));
        }
        payload.resize(length, 0);
        if read_full(&mut reader, &mut payload).map_err(io("reading", path))? < length {
            return Ok(Some((offset, "torn")));
        }
        if frame_crc(length_bytes, &payload) != crc {
            return Ok(Some((offset, "corrupt")));
        }
        each(&payload);
        offset += (HEADER + length) as u64;
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The path of segment `number` in `dir`.
pub fn segment_file(dir: &Path, number: u64) -> PathBuf {
    segment_path(dir, number)
}

/// Reads the good records of one segment's bytes; the offset where damage
/// starts, if any, and its kind. Used by recovery and the fuzz targets.
pub fn read_segment(bytes: &[u8], records: &mut Vec<Vec<u8>>) -> Option<(u64, &'static str)> {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.len() < HEADER {
            return Some((offset as u64, "torn"));
        }
        let length_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let length = u32::from_le_bytes(length_bytes) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if length > MAX_RECORD {
            return Some((offset as u64, "corrupt"));
        }
        if rest.len() < HEADER + length {
            return Some((offset as u64, "torn"));
        }
        let payload = &rest[HEADER..HEADER + length];
        if frame_crc(length_bytes, payload) != crc {
            return Some((offset as u64, "corrupt"));
        }
        records.push(payload.to_vec());
        offset += HEADER + length;
    }
    None
}

impl Wal {
    /// Opens (or creates) the log in `dir`, reading back every good record
    /// and truncating a damaged tail of the newest segment.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        ledger: &mut Ledger,
    ) -> Result<(Wal, Recovery), WalError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
            ledger.record(FileAction::Create, 1);
        }
        let numbers = segments(dir)?;
        let mut recovery = Recovery {
            segments: numbers.len(),
            ..Recovery::default()
        };
        for (i, &number) in numbers.iter().enumerate() {
            let path = segment_path(dir, number);
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io("reading", &path))?;
            recovery.starts.push((number, recovery.records.len()));
            let Some((offset, kind)) = read_segment(&bytes, &mut recovery.records) else {
                continue;
            };
            let newest = i + 1 == numbers.len();
            let dropped_bytes = bytes.len() as u64 - offset;
            if newest {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io("opening", &path))?;
                file.set_len(offset).map_err(io("truncating", &path))?;
                file.sync_all().map_err(io("syncing", &path))?;
                ledger.record(FileAction::Delete, 1);
                ledger.record(FileAction::Fsync, 1);
            }
            tracing::warn!(
                segment = %path.display(),
                offset,
                dropped_bytes,
                kind,
                truncated = newest,
                "Damaged write-ahead log records were found and not read."
            );
            recovery.damage.push(Damage {
                segment: path,
                offset,
                dropped_bytes,
                kind,
                truncated: newest,
            });
        }
        let (segment, file, segment_len) = match numbers.last() {
            Some(&number) => {
                let path = segment_path(dir, number);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io("opening", &path))?;
                let len = file.metadata().map_err(io("reading", &path))?.len();
                (number, file, len)
            }
            None => {
                let (file, number) = Self::create_segment(dir, 0, ledger)?;
                (number, file, 0)
            }
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            file,
            segment,
            segment_len,
            pending: Vec::new(),
            pending_records: 0,
            dirty: false,
        };
        Ok((wal, recovery))
    }

    fn create_segment(
        dir: &Path,
        number: u64,
        ledger: &mut Ledger,
    ) -> Result<(File, u64), WalError> {
        let path = segment_path(dir, number);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("creating", &path))?;
        // The new name must survive a crash too: fsync the directory.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", dir))?;
        ledger.record(FileAction::Create, 1);
        ledger.record(FileAction::Fsync, 1);
        Ok((file, number))
    }

    /// Buffers one record; it reaches the file at the next [`Wal::commit`]
    /// (at once under [`Fsync::Always`]).
    pub fn append(&mut self, payload: &[u8], ledger: &mut Ledger) -> Result<(), WalError> {
        if payload.len() > MAX_RECORD {
            return Err(WalError::TooLarge(payload.len()));
        }
        let length = (payload.len() as u32).to_le_bytes();
        self.pending.extend_from_slice(&length);
        self.pending
            .extend_from_slice(&frame_crc(length, payload).to_le_bytes());
        self.pending.extend_from_slice(payload);
        self.pending_records += 1;
        if self.options.fsync == Fsync::Always {
            self.commit(ledger)?;
        }
        Ok(())
    }

    /// Records buffered and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending_records
    }

    /// Writes the buffered records in one write, fsyncs them (unless
    /// `Fsync::Off`) and rolls the segment if it is full. When this returns,
    /// the records are durable. Returns how many records were committed.
    ///
    /// When the write or the fsync fails, the records stay buffered, what
    /// the failed write left in the file is cut off (now, or before the next
    /// write if the cut fails too), and the next commit writes them again.
    pub fn commit(&mut self, ledger: &mut Ledger) -> Result<usize, WalError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let path = segment_path(&self.dir, self.segment);
        if self.dirty {
            // What a failed write left must go before anything follows it,
            // or a reader would meet a half record in the middle.
            self.file
                .set_len(self.segment_len)
                .map_err(io("cutting a failed write from", &path))?;
            ledger.record(FileAction::Delete, 1);
            self.dirty = false;
        }
        ledger.record(FileAction::Write, 1);
        let mut result = self
            .file
            .write_all(&self.pending)
            .map_err(io("writing", &path));
        if result.is_ok() && self.options.fsync != Fsync::Off {
            ledger.record(FileAction::Fsync, 1);
            // After a failed fsync the kernel may have dropped the pages:
            // the group is written again rather than trusted.
            result = self.file.sync_data().map_err(io("syncing", &path));
        }
        if let Err(error) = result {
            self.dirty = true;
            if self.file.set_len(self.segment_len).is_ok() {
                ledger.record(FileAction::Delete, 1);
                self.dirty = false;
            }
            return Err(error);
        }
        self.segment_len += self.pending.len() as u64;
        self.pending.clear();
        let committed = std::mem::take(&mut self.pending_records);
        if self.segment_len >= self.options.segment_bytes {
            // The records are durable already; a segment that cannot roll
            // now keeps growing and the roll is tried again next commit.
            match Self::create_segment(&self.dir, self.segment + 1, ledger) {
                Ok((file, number)) => {
                    self.file = file;
                    self.segment = number;
                    self.segment_len = 0;
                }
                Err(error) => {
                    tracing::warn!(%error, "The log segment could not roll; it keeps growing for now.");
                }
            }
        }
        Ok(committed)
    }

    /// Sets the size at which segments roll.
    pub fn set_segment_bytes(&mut self, bytes: u64) {
        self.options.segment_bytes = bytes.max(4096);
    }

    /// The size at which segments roll.
    pub fn segment_bytes(&self) -> u64 {
        self.options.segment_bytes
    }

    /// The number of the segment being written.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Commits what is pending and starts a new segment, returning its
    /// number: every record written before is in an older segment.
    pub fn roll(&mut self, ledger: &mut Ledger) -> Result<u64, WalError> {
        self.commit(ledger)?;
        if self.segment_len > 0 {
            let (file, number) = Self::create_segment(&self.dir, self.segment + 1, ledger)?;
            self.file = file;
            self.segment = number;
            self.segment_len = 0;
        }
        Ok(self.segment)
    }

    /// Deletes the segments older than `segment` (a checkpoint covers them).
    /// Returns how many were deleted.
    pub fn delete_before(&mut self, segment: u64, ledger: &mut Ledger) -> Result<usize, WalError> {
        let mut deleted = 0;
        for number in segments(&self.dir)?.into_iter().filter(|&n| n < segment) {
            let path = segment_path(&self.dir, number);
            std::fs::remove_file(&path).map_err(io("deleting", &path))?;
            ledger.record(FileAction::Delete, 1);
            deleted += 1;
        }
        Ok(deleted)
    }
}
