//! Checkpoints: the engine's whole state in one file, replaced atomically.
//!
//! The file is `DV2CKPT3`, then the first write-ahead-log segment the
//! checkpoint does not cover, the encoded [`GraphState`] and the file-action
//! ledger's day and counts (so the budget survives a restart), then a CRC32C
//! of all three. It is written to a temporary file, fsynced, renamed
//! over the previous checkpoint and the directory is fsynced, so a crash at
//! any moment leaves either the old checkpoint or the new one, never a mix.
//! The encoding is this crate's own: the engine's types are not serializable.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav2d_core::{
    ConstraintKeyState, ConstraintState, GraphState, KeyState, NodeKeyState, NodeState, Scalar,
    StreamState, Value,
};

use crate::ledger::{FileAction, Ledger, LedgerDay};

const MAGIC: &[u8; 8] = b"DV2CKPT3";
/// The checkpoint's file name in the store directory.
pub const FILE: &str = "checkpoint.bin";
const TEMPORARY: &str = "checkpoint.tmp";

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// An I/O call failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not a checkpoint, is damaged or is cut short.
    #[error(
        "{path} is not a readable checkpoint: {reason}; move it aside to restart from the write-ahead log alone"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) struct Encoder(pub(crate) Vec<u8>);

impl Encoder {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(crate) fn scalar(&mut self, v: &Scalar) {
        match v {
            Scalar::Float(x) => {
                self.u8(0);
                self.f64(*x);
            }
            Scalar::Int(x) => {
                self.u8(1);
                self.i64(*x);
            }
            Scalar::Bool(x) => {
                self.u8(2);
                self.u8(u8::from(*x));
            }
            Scalar::Str(x) => {
                self.u8(3);
                self.str(x);
            }
        }
    }
    pub(crate) fn value(&mut self, v: &Value) {
        match v {
            Value::Float(x) => self.scalar(&Scalar::Float(*x)),
            Value::Int(x) => self.scalar(&Scalar::Int(*x)),
            Value::Bool(x) => self.scalar(&Scalar::Bool(*x)),
            Value::Str(x) => self.scalar(&Scalar::Str(Arc::clone(x))),
            Value::Record(fields) => {
                self.u8(4);
                self.u64(fields.len() as u64);
                for (name, scalar) in fields.iter() {
                    self.str(name);
                    self.scalar(scalar);
                }
            }
            Value::Bytes(b) => {
                self.u8(5);
                self.bytes(b);
            }
            // A frame is kept as its description, never its pixels (unless
            // its stream keeps them: `value_keeping`).
            Value::Frame(frame) => self.value(&frame_record(&frame.0.info())),
        }
    }
    /// [`Encoder::value`], keeping a frame's pixels when `pixels` is set
    /// (its stream is listed in `persistence.pixels`).
    pub(crate) fn value_keeping(&mut self, v: &Value, pixels: bool) {
        match v {
            Value::Frame(frame) if pixels => {
                let info = frame.0.info();
                self.u8(6);
                self.str(&info.format);
                self.u64(u64::from(info.width));
                self.u64(u64::from(info.height));
                self.u64(info.seq);
                self.i64(info.ts_ns);
                self.u64(info.skipped);
                for stride in info.strides {
                    self.u64(stride as u64);
                }
                self.bytes(frame.0.bytes());
            }
            other => self.value(other),
        }
    }
    pub(crate) fn option_i64(&mut self, v: Option<i64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.i64(x);
            }
            None => self.u8(0),
        }
    }
    pub(crate) fn option_f64(&mut self, v: Option<f64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.f64(x);
            }
            None => self.u8(0),
        }
    }
}

pub(crate) struct Decoder<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
}

impl Decoder<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "cut short at byte {} (needed {n} more)",
                self.at + MAGIC.len()
            ));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }
    pub(crate) fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64()?))
    }
    pub(crate) fn len(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| format!("a length of {n} at byte {} is impossible", self.at))
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn str(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?)
            .map_err(|_| format!("a name before byte {} is not UTF-8", self.at))
    }
    pub(crate) fn scalar_tagged(&mut self, tag: u8) -> Result<Scalar, String> {
        Ok(match tag {
            0 => Scalar::Float(self.f64()?),
            1 => Scalar::Int(self.i64()?),
            2 => Scalar::Bool(self.u8()? != 0),
            3 => Scalar::Str(Arc::from(self.str()?.as_str())),
            other => return Err(format!("unknown value tag {other} at byte {}", self.at)),
        })
    }
    pub(crate) fn value(&mut self) -> Result<Value, String> {
        let tag = self.u8()?;
        Ok(match tag {
            4 => {
                let n = self.len()?;
                let mut fields = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let name = self.str()?;
                    let tag = self.u8()?;
                    fields.push((Arc::from(name.as_str()), self.scalar_tagged(tag)?));
                }
                Value::Record(Arc::new(fields))
            }
            5 => Value::Bytes(Arc::from(self.bytes()?)),
            6 => {
                let format = self.str()?;
                let dimension = |v: u64| {
                    u32::try_from(v).map_err(|_| format!("a frame dimension of {v} is too large"))
                };
                let width = dimension(self.u64()?)?;
                let height = dimension(self.u64()?)?;
                let seq = self.u64()?;
                let ts_ns = self.i64()?;
                let skipped = self.u64()?;
                let mut strides = [0usize; 3];
                for stride in &mut strides {
                    *stride = usize::try_from(self.u64()?)
                        .map_err(|_| "a frame's row pitch is too large".to_string())?;
                }
                let bytes = self.bytes()?.to_vec();
                let info = dav2d_core::FrameInfo {
                    width,
                    height,
                    format: std::borrow::Cow::Owned(format),
                    seq,
                    ts_ns,
                    size: bytes.len(),
                    skipped,
                    strides,
                    coverage: None,
                };
                Value::Frame(dav2d_core::FrameRef(Arc::new(dav2d_core::OwnedFrame {
                    info,
                    bytes,
                })))
            }
            tag => match self.scalar_tagged(tag)? {
                Scalar::Float(x) => Value::Float(x),
                Scalar::Int(x) => Value::Int(x),
                Scalar::Bool(x) => Value::Bool(x),
                Scalar::Str(x) => Value::Str(x),
            },
        })
    }
    pub(crate) fn option_i64(&mut self) -> Result<Option<i64>, String> {
        Ok(if self.u8()? == 1 {
            Some(self.i64()?)
        } else {
            None
        })
    }
    pub(crate) fn option_f64(&mut self) -> Result<Option<f64>, String> {
        Ok(if self.u8()? == 1 {
            Some(self.f64()?)
        } else {
            None
        })
    }
}

/// A frame's description as the record the store keeps of it (seq, ts,
/// size, format and frames skipped before it; the pixels stay in the
/// frame's pool).
pub fn frame_record(info: &dav2d_core::FrameInfo) -> Value {
    let field = |name: &str, value: Scalar| (Arc::<str>::from(name), value);
    Value::Record(Arc::new(vec![
        field("seq", Scalar::Int(info.seq.min(i64::MAX as u64) as i64)),
        field("ts", Scalar::Int(info.ts_ns)),
        field("width", Scalar::Int(i64::from(info.width))),
        field("height", Scalar::Int(i64::from(info.height))),
        field("format", Scalar::Str(Arc::from(&*info.format))),
        field(
            "skipped",
            Scalar::Int(info.skipped.min(i64::MAX as u64) as i64),
        ),
        field(
            "bytes",
            Scalar::Int(info.size.min(i64::MAX as usize) as i64),
        ),
    ]))
}

fn encode(state: &GraphState, wal_from: u64, ledger: LedgerDay, pixels: &[String]) -> Vec<u8> {
    let mut e = Encoder(Vec::new());
    e.u64(wal_from);
    e.u64(state.streams.len() as u64);
    for stream in &state.streams {
        e.str(&stream.name);
        let keep_pixels = pixels.iter().any(|name| **name == *stream.name);
        e.u64(stream.keys.len() as u64);
        for key in &stream.keys {
            e.str(&key.key);
            e.u64(key.count);
            e.u64(key.samples.len() as u64);
            for (ts, value) in &key.samples {
                e.i64(*ts);
                e.value_keeping(value, keep_pixels);
            }
            match &key.error {
                Some(error) => {
                    e.u8(1);
                    e.str(error);
                }
                None => e.u8(0),
            }
        }
    }
    e.u64(state.nodes.len() as u64);
    for node in &state.nodes {
        e.str(&node.name);
        e.u64(node.keys.len() as u64);
        for key in &node.keys {
            e.str(&key.key);
            e.option_f64(key.memory);
            let c = &key.constraint;
            e.u8(match c.state {
                ConstraintState::Ok => 0,
                ConstraintState::Tripped => 1,
                ConstraintState::Stale => 2,
            });
            e.option_i64(c.holding_since_ns);
            e.i64(c.last_update_ns);
            e.f64(c.last_value);
        }
    }
    e.i64(ledger.day);
    for count in ledger.counts {
        e.u64(count);
    }
    e.0
}

/// Decodes a checkpoint's payload (the bytes between the marker and the
/// checksum); what is wrong with it, if anything. Used by [`read_full`]
/// and the fuzz targets.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let mut d = Decoder { bytes, at: 0 };
    let wal_from = d.u64()?;
    let mut streams = Vec::new();
    for _ in 0..d.len()? {
        let name = d.str()?;
        let mut keys = Vec::new();
        for _ in 0..d.len()? {
            let key = d.str()?;
            let count = d.u64()?;
            let mut samples = Vec::new();
            for _ in 0..d.len()? {
                let ts = d.i64()?;
                samples.push((ts, d.value()?));
            }
            let error = if d.u8()? == 1 { Some(d.str()?) } else { None };
            keys.push(KeyState {
                key,
                count,
                samples,
                error,
            });
        }
        streams.push(StreamState { name, keys });
    }
    let mut nodes = Vec::new();
    for _ in 0..d.len()? {
        let name = d.str()?;
        let mut keys = Vec::new();
        for _ in 0..d.len()? {
            let key = d.str()?;
            let memory = d.option_f64()?;
            let state = match d.u8()? {
                0 => ConstraintState::Ok,
                1 => ConstraintState::Tripped,
                2 => ConstraintState::Stale,
                other => return Err(format!("unknown constraint state {other}")),
            };
            let constraint = ConstraintKeyState {
                state,
                holding_since_ns: d.option_i64()?,
                last_update_ns: d.i64()?,
                last_value: d.f64()?,
            };
            keys.push(NodeKeyState {
                key,
                memory,
                constraint,
            });
        }
        nodes.push(NodeState { name, keys });
    }
    let day = d.i64()?;
    let mut counts = [0u64; 5];
    for count in &mut counts {
        *count = d.u64()?;
    }
    if d.at != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the state",
            bytes.len() - d.at
        ));
    }
    Ok(Checkpoint {
        state: GraphState { streams, nodes },
        wal_from,
        ledger: LedgerDay { day, counts },
    })
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |error| CheckpointError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Checkpoint {
    /// The graph's state.
    pub state: GraphState,
    /// The first log segment it does not cover.
    pub wal_from: u64,
    /// The file-action counts of the day it was written.
    pub ledger: LedgerDay,
}

/// Writes `state` as the checkpoint in `dir`, atomically, noting that it
/// covers every write-ahead-log segment before `wal_from`. The ledger's
/// counts go with it (as they stand before this checkpoint's own actions).
pub fn write(
    dir: &Path,
    state: &GraphState,
    wal_from: u64,
    ledger: &mut Ledger,
) -> Result<(), CheckpointError> {
    write_keeping(dir, state, wal_from, ledger, &[])
}

/// [`write`], keeping the pixels of the frames of the streams in `pixels`.
pub fn write_keeping(
    dir: &Path,
    state: &GraphState,
    wal_from: u64,
    ledger: &mut Ledger,
    pixels: &[String],
) -> Result<(), CheckpointError> {
    let bytes = sealed(&encode(state, wal_from, ledger.snapshot(), pixels));
    let temporary = dir.join(TEMPORARY);
    let mut file = File::create(&temporary).map_err(io("creating", &temporary))?;
    ledger.record(FileAction::Create, 1);
    file.write_all(&bytes).map_err(io("writing", &temporary))?;
    ledger.record(FileAction::Write, 1);
    file.sync_all().map_err(io("syncing", &temporary))?;
    ledger.record(FileAction::Fsync, 1);
    let target = dir.join(FILE);
    std::fs::rename(&temporary, &target).map_err(io("renaming", &target))?;
    ledger.record(FileAction::Rename, 1);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))?;
    ledger.record(FileAction::Fsync, 1);
    Ok(())
}

/// Reads the checkpoint in `dir`, if there is one, with the first WAL
/// segment it does not cover. A damaged checkpoint is an error that says
/// so; it is never partly read.
pub fn read(dir: &Path) -> Result<Option<(GraphState, u64)>, CheckpointError> {
    Ok(read_full(dir)?.map(|c| (c.state, c.wal_from)))
}

/// Like [`read`], with the ledger counts the checkpoint carries.
pub fn read_full(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io("reading", &path)(error)),
    };
    from_bytes(&bytes)
        .map(Some)
        .map_err(|reason| CheckpointError::Damaged { path, reason })
}

/// The marker, `payload` and its checksum: a checkpoint's bytes.
fn sealed(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(MAGIC.len() + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    bytes
}

/// `state` as a checkpoint's bytes (marker, payload, checksum), covering
/// `position`: what a cluster partition's owner stores, with the input
/// stream's sequence as the position. [`from_bytes`] reads it back.
pub fn to_bytes(state: &GraphState, position: u64) -> Vec<u8> {
    sealed(&encode(state, position, LedgerDay::default(), &[]))
}

/// Reads a checkpoint's bytes (as the file holds them, or as [`to_bytes`]
/// made them); the position is its `wal_from`. A damaged checkpoint is an
/// error that says what is wrong; it is never partly read.
pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("it does not start with the checkpoint marker".to_string());
    }
    let payload = &bytes[MAGIC.len()..bytes.len() - 4];
    let stored = &bytes[bytes.len() - 4..];
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    if crc32c::crc32c(payload) != stored {
        return Err("its checksum does not match (damaged or cut short)".to_string());
    }
    decode(payload)
}
