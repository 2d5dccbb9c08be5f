//! History: write-ahead-log segments rolled into Parquet files, and the
//! reader that answers "what did this name do between then and now".
//!
//! When a checkpoint covers a set of segments, their records are written to
//! one Parquet file under `history/` (temp file, fsync, rename, directory
//! fsync) before the segments are deleted. The file's name carries the
//! segments it covers and its time range,
//! `{first:016}_{last:016}_{min_ts}_{max_ts}.parquet`, so a crash between
//! the rename and the deletes never archives a segment twice, and queries
//! and retention pick files without opening them.
//!
//! The schema is plain, so pyarrow, pandas, polars and DuckDB read it as is:
//! `ts` (timestamp, ns, UTC), `name` and `key` (strings), `value` (double:
//! floats, integers and booleans as 0/1; null for text) and `state` (string:
//! constraint states, string outputs and records as text; null for numbers).
//! Byte buffers (frames) are not history and are left out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav2d_core::Value;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::ledger::{FileAction, Ledger};
use crate::record::decode_sample;
use crate::wal::{self, WalError};

/// The directory, inside the store, that holds the Parquet files.
pub const DIR: &str = "history";
const TEMPORARY: &str = "archive.parquet.tmp";
/// Rows per Parquet row group (and per batch handed to a reader).
pub const ROW_GROUP: usize = 1 << 20;

const SCHEMA: &str = "message dav2d_history {
    required int64 ts (TIMESTAMP(NANOS, true));
    required binary name (STRING);
    required binary key (STRING);
    optional double value;
    optional binary state (STRING);
}";

/// Why reading or writing history failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
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
    /// The Parquet library refused a file.
    #[error("{path}: {error}")]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// What it said.
        error: parquet::errors::ParquetError,
    },
    /// Reading a log segment failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Whoever received the rows could not take them (e.g. an export's
    /// output failed).
    #[error("{0}")]
    Output(String),
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> HistoryError + 'a {
    move |error| HistoryError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

pub(crate) fn pq(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> HistoryError + '_ {
    move |error| HistoryError::Parquet {
        path: path.to_path_buf(),
        error,
    }
}

/// History rows, column by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// Timestamps, ns since the Unix epoch (UTC).
    pub ts: Vec<i64>,
    /// Stream, node or constraint names.
    pub name: Vec<Arc<str>>,
    /// Keys.
    pub key: Vec<Arc<str>>,
    /// Numeric values (`None` for text).
    pub value: Vec<Option<f64>>,
    /// Text values: constraint states, strings, records (`None` for numbers).
    pub state: Vec<Option<Arc<str>>>,
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Appends one sample; returns false (and appends nothing) for values
    /// that are not history (byte buffers).
    pub fn push(&mut self, ts: i64, name: Arc<str>, key: Arc<str>, value: &Value) -> bool {
        let (number, text) = match value {
            Value::Float(v) => (Some(*v), None),
            Value::Int(v) => (Some(*v as f64), None),
            Value::Bool(v) => (Some(f64::from(u8::from(*v))), None),
            Value::Str(s) => (None, Some(Arc::clone(s))),
            Value::Record(_) => (None, Some(Arc::from(value.to_string()))),
            Value::Bytes(_) => return false,
            Value::Frame(frame) => (
                None,
                Some(Arc::from(
                    crate::checkpoint::frame_record(&frame.0.info()).to_string(),
                )),
            ),
        };
        self.ts.push(ts);
        self.name.push(name);
        self.key.push(key);
        self.value.push(number);
        self.state.push(text);
        true
    }

    fn clear(&mut self) {
        self.ts.clear();
        self.name.clear();
        self.key.clear();
        self.value.clear();
        self.state.clear();
    }

    /// The oldest and newest timestamps, if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let lo = self.ts.iter().min()?;
        let hi = self.ts.iter().max()?;
        Some((*lo, *hi))
    }
}

/// Interns the names and keys of decoded records, so a million rows of the
/// same few names hold a few strings.
#[derive(Default)]
struct Interner(rustc_hash::FxHashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: String) -> Arc<str> {
        if let Some(interned) = self.0.get(&s) {
            return Arc::clone(interned);
        }
        let interned: Arc<str> = Arc::from(s.as_str());
        if self.0.len() < 1 << 20 {
            self.0.insert(s, Arc::clone(&interned));
        }
        interned
    }
}

/// One Parquet file of history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryFile {
    /// The file.
    pub path: PathBuf,
    /// The first and last log segments it covers.
    pub segments: (u64, u64),
    /// Its oldest and newest timestamps (ns).
    pub time_range: (i64, i64),
}

impl HistoryFile {
    fn parse(path: PathBuf) -> Option<HistoryFile> {
        let stem = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
        let mut parts = stem.split('_');
        let first = parts.next()?.parse().ok()?;
        let last = parts.next()?.parse().ok()?;
        let lo = parts.next()?.parse().ok()?;
        let hi = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(HistoryFile {
            path,
            segments: (first, last),
            time_range: (lo, hi),
        })
    }

    /// Whether it holds the records of log segment `number`.
    pub fn covers(&self, number: u64) -> bool {
        (self.segments.0..=self.segments.1).contains(&number)
    }
}

/// The history files in store directory `dir`, oldest segments first.
pub fn files(dir: &Path) -> Result<Vec<HistoryFile>, HistoryError> {
    let history = dir.join(DIR);
    let entries = match std::fs::read_dir(&history) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io("listing", &history)(error)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing", &history))?;
        if let Some(file) = HistoryFile::parse(entry.path()) {
            found.push(file);
        }
    }
    found.sort_by_key(|f| f.segments);
    Ok(found)
}

/// A `File` that counts its write calls (each one is a file action).
struct CountingFile {
    file: File,
    writes: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

type ParquetWriter = SerializedFileWriter<BufWriter<CountingFile>>;

fn write_row_group(
    writer: &mut ParquetWriter,
    rows: &Rows,
    path: &Path,
) -> Result<(), HistoryError> {
    let mut group = writer.next_row_group().map_err(pq(path))?;
    let mut column = 0;
    while let Some(mut writer) = group.next_column().map_err(pq(path))? {
        match column {
            0 => {
                writer
                    .typed::<Int64Type>()
                    .write_batch(&rows.ts, None, None)
                    .map_err(pq(path))?;
            }
            1 | 2 => {
                let strings = if column == 1 { &rows.name } else { &rows.key };
                let values: Vec<ByteArray> = strings
                    .iter()
                    .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                    .collect();
                writer
                    .typed::<ByteArrayType>()
                    .write_batch(&values, None, None)
                    .map_err(pq(path))?;
            }
            3 => {
                let levels: Vec<i16> = rows.value.iter().map(|v| i16::from(v.is_some())).collect();
                let values: Vec<f64> = rows.value.iter().flatten().copied().collect();
                writer
                    .typed::<DoubleType>()
                    .write_batch(&values, Some(&levels), None)
                    .map_err(pq(path))?;
            }
            _ => {
                let levels: Vec<i16> = rows.state.iter().map(|v| i16::from(v.is_some())).collect();
                let values: Vec<ByteArray> = rows
                    .state
                    .iter()
                    .flatten()
                    .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                    .collect();
                writer
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&levels), None)
                    .map_err(pq(path))?;
            }
        }
        writer.close().map_err(pq(path))?;
        column += 1;
    }
    group.close().map_err(pq(path))?;
    Ok(())
}

/// Writes Parquet files of history rows batch by batch; the caller renames
/// the finished file into place.
pub struct ParquetSink {
    path: PathBuf,
    writer: ParquetWriter,
    rows: usize,
    time_range: Option<(i64, i64)>,
}

impl ParquetSink {
    /// Creates `path` (one file action) and writes the Parquet header.
    pub fn create(path: &Path, ledger: &mut Ledger) -> Result<ParquetSink, HistoryError> {
        let file = File::create(path).map_err(io("creating", path))?;
        ledger.record(FileAction::Create, 1);
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(pq(path))?);
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_created_by(format!("dav2d {}", env!("CARGO_PKG_VERSION")))
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let sink = BufWriter::with_capacity(8 << 20, CountingFile { file, writes: 0 });
        let writer =
            SerializedFileWriter::new(sink, schema, Arc::new(properties)).map_err(pq(path))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            writer,
            rows: 0,
            time_range: None,
        })
    }

    /// Writes `rows` as one row group.
    pub fn write(&mut self, rows: &Rows) -> Result<(), HistoryError> {
        if rows.is_empty() {
            return Ok(());
        }
        write_row_group(&mut self.writer, rows, &self.path)?;
        self.rows += rows.len();
        if let Some((lo, hi)) = rows.time_range() {
            self.time_range = Some(
                self.time_range
                    .map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))),
            );
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the footer, fsyncs the file and counts the writes and the
    /// fsync; returns the time range of what was written.
    pub fn finish(self, ledger: &mut Ledger) -> Result<Option<(i64, i64)>, HistoryError> {
        let path = self.path;
        let buffered = self.writer.into_inner().map_err(pq(&path))?;
        let counting = buffered
            .into_inner()
            .map_err(|error| io("writing", &path)(error.into_error()))?;
        ledger.record(FileAction::Write, counting.writes);
        counting.file.sync_all().map_err(io("syncing", &path))?;
        ledger.record(FileAction::Fsync, 1);
        Ok(self.time_range)
    }
}

fn sync_dir(dir: &Path, ledger: &mut Ledger) -> Result<(), HistoryError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))?;
    ledger.record(FileAction::Fsync, 1);
    Ok(())
}

/// Streams the history rows of log segment `number` to `each`, in batches
/// of at most [`ROW_GROUP`] rows. Records that do not decode are skipped
/// (the log's CRC already vouches for them; a newer record kind is not
/// history). Returns the damage found, if any.
fn segment_rows(
    dir: &Path,
    number: u64,
    interner: &mut Interner,
    rows: &mut Rows,
    mut each: impl FnMut(&mut Rows) -> Result<(), HistoryError>,
) -> Result<Option<(u64, &'static str)>, HistoryError> {
    let mut failed = None;
    let damage = wal::for_each_record(&wal::segment_file(dir, number), |payload| {
        if failed.is_some() {
            return;
        }
        if let Ok((name, key, ts, value)) = decode_sample(payload) {
            rows.push(ts, interner.get(name), interner.get(key), &value);
            if rows.len() >= ROW_GROUP {
                if let Err(error) = each(rows) {
                    failed = Some(error);
                }
                rows.clear();
            }
        }
    })?;
    if let Some(error) = failed {
        return Err(error);
    }
    Ok(damage)
}

/// Rolls the log segments `numbers` (already covered by a checkpoint) into
/// one Parquet file under `history/`: written to a temp file, fsynced,
/// renamed into place, directory fsynced. Returns the file, or `None` when
/// the segments hold no history rows.
pub fn archive(
    dir: &Path,
    numbers: &[u64],
    ledger: &mut Ledger,
) -> Result<Option<HistoryFile>, HistoryError> {
    let (Some(&first), Some(&last)) = (numbers.first(), numbers.last()) else {
        return Ok(None);
    };
    let history = dir.join(DIR);
    if !history.exists() {
        std::fs::create_dir_all(&history).map_err(io("creating", &history))?;
        ledger.record(FileAction::Create, 1);
        sync_dir(dir, ledger)?;
    }
    let temporary = history.join(TEMPORARY);
    let mut sink = ParquetSink::create(&temporary, ledger)?;
    let mut interner = Interner::default();
    let mut rows = Rows::default();
    for &number in numbers {
        segment_rows(dir, number, &mut interner, &mut rows, |full| {
            sink.write(full)
        })?;
    }
    sink.write(&rows)?;
    let written = sink.rows();
    let Some((lo, hi)) = sink.finish(ledger)? else {
        std::fs::remove_file(&temporary).map_err(io("deleting", &temporary))?;
        ledger.record(FileAction::Delete, 1);
        return Ok(None);
    };
    let path = history.join(format!("{first:016}_{last:016}_{lo}_{hi}.parquet"));
    std::fs::rename(&temporary, &path).map_err(io("renaming", &path))?;
    ledger.record(FileAction::Rename, 1);
    sync_dir(&history, ledger)?;
    tracing::debug!(path = %path.display(), rows = written, "Log segments rolled into Parquet.");
    Ok(Some(HistoryFile {
        path,
        segments: (first, last),
        time_range: (lo, hi),
    }))
}

/// Deletes history files whose newest row is older than `before_ns`.
/// Returns how many were deleted.
pub fn expire(dir: &Path, before_ns: i64, ledger: &mut Ledger) -> Result<usize, HistoryError> {
    let mut deleted = 0;
    for file in files(dir)? {
        if file.time_range.1 < before_ns {
            std::fs::remove_file(&file.path).map_err(io("deleting", &file.path))?;
            ledger.record(FileAction::Delete, 1);
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Which history rows a query wants.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only rows of this name (`None`: every name).
    pub name: Option<String>,
    /// Only rows of this key (`None`: every key).
    pub key: Option<String>,
    /// Only rows at or after this time (ns).
    pub since: Option<i64>,
    /// Only rows before this time (ns).
    pub until: Option<i64>,
}

impl Query {
    fn overlaps(&self, (lo, hi): (i64, i64)) -> bool {
        self.since.is_none_or(|since| hi >= since) && self.until.is_none_or(|until| lo < until)
    }

    fn wants(&self, ts: i64, name: &str, key: &str) -> bool {
        self.since.is_none_or(|since| ts >= since)
            && self.until.is_none_or(|until| ts < until)
            && self.name.as_deref().is_none_or(|n| n == name)
            && self.key.as_deref().is_none_or(|k| k == key)
    }

    fn filter_into(&self, rows: &Rows, out: &mut Rows) {
        for i in 0..rows.len() {
            if self.wants(rows.ts[i], &rows.name[i], &rows.key[i]) {
                out.ts.push(rows.ts[i]);
                out.name.push(Arc::clone(&rows.name[i]));
                out.key.push(Arc::clone(&rows.key[i]));
                out.value.push(rows.value[i]);
                out.state.push(rows.state[i].clone());
            }
        }
    }
}

/// Where a scan is: bytes of input done, and in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes read so far.
    pub done: u64,
    /// Input bytes to read in all.
    pub total: u64,
}

fn strings(
    reader: &mut ColumnReader,
    path: &Path,
    n: usize,
    nullable: bool,
) -> Result<(Vec<ByteArray>, Vec<i16>), HistoryError> {
    let ColumnReader::ByteArrayColumnReader(reader) = reader else {
        return Err(HistoryError::Parquet {
            path: path.to_path_buf(),
            error: parquet::errors::ParquetError::General("a string column is not binary".into()),
        });
    };
    let (mut values, mut levels) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut read = 0;
    while read < n {
        let (records, _, _) = reader
            .read_records(n - read, nullable.then_some(&mut levels), None, &mut values)
            .map_err(pq(path))?;
        if records == 0 {
            break;
        }
        read += records;
    }
    Ok((values, levels))
}

fn text(bytes: &ByteArray, interner: &mut Interner) -> Arc<str> {
    interner.get(String::from_utf8_lossy(bytes.data()).into_owned())
}

/// Reads one row group of a history file into `rows` (appending).
fn read_row_group(
    group: &dyn RowGroupReader,
    path: &Path,
    interner: &mut Interner,
    rows: &mut Rows,
) -> Result<(), HistoryError> {
    let n = group.metadata().num_rows().max(0) as usize;
    let mismatch = |what: &str| HistoryError::Parquet {
        path: path.to_path_buf(),
        error: parquet::errors::ParquetError::General(format!("not a dav2d history file: {what}")),
    };
    if group.num_columns() != 5 {
        return Err(mismatch("it does not have the five history columns"));
    }
    let ColumnReader::Int64ColumnReader(mut ts) = group.get_column_reader(0).map_err(pq(path))?
    else {
        return Err(mismatch("ts is not int64"));
    };
    let mut timestamps = Vec::with_capacity(n);
    while timestamps.len() < n {
        let (records, _, _) = ts
            .read_records(n - timestamps.len(), None, None, &mut timestamps)
            .map_err(pq(path))?;
        if records == 0 {
            break;
        }
    }
    let (names, _) = strings(
        &mut group.get_column_reader(1).map_err(pq(path))?,
        path,
        n,
        false,
    )?;
    let (keys, _) = strings(
        &mut group.get_column_reader(2).map_err(pq(path))?,
        path,
        n,
        false,
    )?;
    let ColumnReader::DoubleColumnReader(mut value) =
        group.get_column_reader(3).map_err(pq(path))?
    else {
        return Err(mismatch("value is not double"));
    };
    let (mut values, mut value_levels) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while value_levels.len() < n {
        let (records, _, _) = value
            .read_records(
                n - value_levels.len(),
                Some(&mut value_levels),
                None,
                &mut values,
            )
            .map_err(pq(path))?;
        if records == 0 {
            break;
        }
    }
    let (states, state_levels) = strings(
        &mut group.get_column_reader(4).map_err(pq(path))?,
        path,
        n,
        true,
    )?;
    if [
        names.len(),
        keys.len(),
        value_levels.len(),
        state_levels.len(),
    ]
    .iter()
    .any(|&len| len != timestamps.len())
    {
        return Err(mismatch("its columns have different lengths"));
    }
    let (mut values, mut states) = (values.into_iter(), states.iter());
    for i in 0..timestamps.len() {
        rows.ts.push(timestamps[i]);
        rows.name.push(text(&names[i], interner));
        rows.key.push(text(&keys[i], interner));
        rows.value.push(if value_levels[i] > 0 {
            values.next()
        } else {
            None
        });
        rows.state.push(if state_levels[i] > 0 {
            states
                .next()
                .map(|s| Arc::from(String::from_utf8_lossy(s.data()).as_ref()))
        } else {
            None
        });
    }
    Ok(())
}

/// The number of rows in a history file, from its footer.
pub fn row_count(path: &Path) -> Result<u64, HistoryError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let reader = SerializedFileReader::new(file).map_err(pq(path))?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Reads a history file, handing each row group to `each`.
pub fn read_file(
    path: &Path,
    mut each: impl FnMut(&Rows) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let reader = SerializedFileReader::new(file).map_err(pq(path))?;
    let mut interner = Interner::default();
    let mut rows = Rows::default();
    for i in 0..reader.num_row_groups() {
        let group = reader.get_row_group(i).map_err(pq(path))?;
        rows.clear();
        read_row_group(group.as_ref(), path, &mut interner, &mut rows)?;
        each(&rows)?;
    }
    Ok(())
}

/// Answers `query` from store directory `dir`: the Parquet history first,
/// then the log segments not yet rolled into it, oldest first. Matching
/// rows reach `each` in batches; `progress` hears how far it is. Reads
/// only: it never changes the directory (a live store may be writing it).
pub fn scan(
    dir: &Path,
    query: &Query,
    mut progress: impl FnMut(Progress),
    mut each: impl FnMut(&Rows) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let archived = files(dir)?;
    let wanted: Vec<&HistoryFile> = archived
        .iter()
        .filter(|f| query.overlaps(f.time_range))
        .collect();
    let segments: Vec<u64> = wal::segments(dir)?
        .into_iter()
        .filter(|&n| !archived.iter().any(|f| f.covers(n)))
        .collect();
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let mut at = Progress {
        done: 0,
        total: wanted.iter().map(|f| size(&f.path)).sum::<u64>()
            + segments
                .iter()
                .map(|&n| size(&wal::segment_file(dir, n)))
                .sum::<u64>(),
    };
    progress(at);
    let mut matched = Rows::default();
    for file in wanted {
        read_file(&file.path, |rows| {
            matched.clear();
            query.filter_into(rows, &mut matched);
            if matched.is_empty() {
                Ok(())
            } else {
                each(&matched)
            }
        })?;
        at.done += size(&file.path);
        progress(at);
    }
    let mut interner = Interner::default();
    let mut rows = Rows::default();
    let mut read: Vec<PathBuf> = archived.iter().map(|f| f.path.clone()).collect();
    for number in segments {
        let bytes = size(&wal::segment_file(dir, number));
        let mut filter_and_hand = |full: &Rows| {
            matched.clear();
            query.filter_into(full, &mut matched);
            if matched.is_empty() {
                Ok(())
            } else {
                each(&matched)
            }
        };
        match segment_rows(dir, number, &mut interner, &mut rows, |full| {
            filter_and_hand(full)
        }) {
            Ok(_) => filter_and_hand(&rows)?,
            Err(HistoryError::Wal(WalError::Io { error, .. }))
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                // A live store rolled this segment into Parquet while we
                // read: its rows are in a history file that is new since.
                for file in files(dir)? {
                    if file.covers(number) && !read.contains(&file.path) {
                        read.push(file.path.clone());
                        if query.overlaps(file.time_range) {
                            read_file(&file.path, &mut filter_and_hand)?;
                        }
                    }
                }
            }
            Err(error) => return Err(error),
        }
        rows.clear();
        at.done += bytes;
        progress(at);
    }
    Ok(())
}
