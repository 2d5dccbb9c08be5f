//! What parsing a body yields: good records, either as records or (from the
//! flat scanner) in columns whose (stream, key) pairs the parse worker
//! already interned, and the records that could not be decoded.

use std::borrow::Cow;

use dav2d_core::{BatchReport, Graph, SampleIn, SeriesRow, Value};
use std::hash::{Hash, Hasher};

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use super::words::same_bytes;
use crate::dto::{RecordError, WireRecord};

/// Numbers in columns: the distinct (stream, key) pairs of a part of a
/// body, and a row per sample naming its pair. Built by the parse workers
/// so that the engine, which applies on one thread, looks each pair up
/// once instead of hashing a key per sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Columns<'a> {
    /// The distinct (stream, key) pairs, in the order they first appear.
    pub series: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The samples, in body order; their `index` counts from the part's
    /// first element.
    pub rows: Vec<SeriesRow>,
}

/// Builds [`Columns`], interning each (stream, key) pair as it comes. The
/// table holds series numbers and compares against the series list, so a
/// pair is looked up by any `&str` whatever it borrows from.
#[derive(Default)]
pub(crate) struct ColumnsBuilder<'a> {
    columns: Columns<'a>,
    table: HashTable<u32>,
}

fn series_hash(stream: &[u8], key: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    stream.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

impl<'a> ColumnsBuilder<'a> {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Self {
            columns: Columns {
                series: Vec::new(),
                rows: Vec::with_capacity(rows),
            },
            table: HashTable::new(),
        }
    }

    /// Adds sample `index` of (`stream`, `key`); `owned` makes the pair the
    /// columns keep when it is new (`None`: the bytes are not text). `None`
    /// if `owned` refused, or the index or the number of series does not fit
    /// a row.
    pub(crate) fn push(
        &mut self,
        index: usize,
        stream: &[u8],
        key: &[u8],
        owned: impl FnOnce() -> Option<(Cow<'a, str>, Cow<'a, str>)>,
        value: f64,
        ts_ns: Option<i64>,
    ) -> Option<()> {
        let Self { columns, table } = self;
        let hash = series_hash(stream, key);
        let found = table.find(hash, |&id| {
            let (s, k) = &columns.series[id as usize];
            same_bytes(k.as_bytes(), key) && same_bytes(s.as_bytes(), stream)
        });
        let series = match found {
            Some(&id) => id,
            None => {
                let id = u32::try_from(columns.series.len()).ok()?;
                columns.series.push(owned()?);
                let series = &columns.series;
                table.insert_unique(hash, id, |&id| {
                    let (s, k) = &series[id as usize];
                    series_hash(s.as_bytes(), k.as_bytes())
                });
                id
            }
        };
        columns.rows.push(SeriesRow {
            index: u32::try_from(index).ok()?,
            series,
            value,
            ts_ns,
        });
        Some(())
    }

    pub(crate) fn finish(self) -> Columns<'a> {
        self.columns
    }
}

/// The good samples of one piece of a body, owned.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Samples<'a> {
    Records(Vec<WireRecord<'a>>),
    Columns(Columns<'a>),
}

impl<'a> Samples<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Samples::Records(records) => records.len(),
            Samples::Columns(columns) => columns.rows.len(),
        }
    }

    pub(crate) fn into_part(self) -> Part<'a> {
        match self {
            Samples::Records(records) => Part::Records(Cow::Owned(records)),
            Samples::Columns(columns) => Part::Columns(Cow::Owned(columns)),
        }
    }

    pub(crate) fn as_part(&self) -> Part<'_> {
        match self {
            Samples::Records(records) => Part::Records(Cow::Borrowed(records)),
            Samples::Columns(columns) => Part::Columns(Cow::Borrowed(columns)),
        }
    }
}

/// A part of a parsed body: records, or numbers in columns.
#[derive(Clone, Debug, PartialEq)]
pub enum Part<'a> {
    /// Records as decoded one by one.
    Records(Cow<'a, [WireRecord<'a>]>),
    /// Numbers whose (stream, key) pairs are interned.
    Columns(Cow<'a, Columns<'a>>),
}

impl<'a> Part<'a> {
    /// How many good samples the part holds.
    pub fn len(&self) -> usize {
        match self {
            Part::Records(records) => records.len(),
            Part::Columns(columns) => columns.rows.len(),
        }
    }

    /// Whether the part holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> WireRecord<'a> {
    /// The record as the engine takes it; `first` is added to its index.
    fn sample(&self, first: usize) -> SampleIn<'_> {
        SampleIn {
            index: first + self.index,
            stream: &self.stream,
            key: &self.key,
            value: self.value.clone(),
            ts_ns: self.ts,
        }
    }
}

/// Records decoded from a body, and the ones that could not be.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// Good records, in body order (their `index` is their body position).
    pub records: Vec<WireRecord<'a>>,
    /// Further good samples, in body order after `records`, when parts were
    /// parsed apart (kept apart rather than copied together): each part
    /// with the body position of its first element (its samples count
    /// their `index` from there).
    pub more: Vec<(usize, Part<'a>)>,
    /// Rejected records, in body order (indices are body positions).
    pub errors: Vec<RecordError>,
}

impl<'a> Parsed<'a> {
    /// How many good samples there are.
    pub fn len(&self) -> usize {
        self.records.len() + self.more.iter().map(|(_, part)| part.len()).sum::<usize>()
    }

    /// Whether there is no good sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every good sample as the engine takes it, with its body position, in
    /// body order.
    pub fn samples(&self) -> impl Iterator<Item = SampleIn<'_>> {
        self.chunks(usize::MAX).flat_map(Chunk::samples)
    }

    /// The good samples in chunks of at most `size`, in body order, for an
    /// engine that applies a chunk per lock hold.
    pub fn chunks(&self, size: usize) -> impl Iterator<Item = Chunk<'_>> {
        let size = size.max(1);
        self.records
            .chunks(size)
            .map(|records| Chunk::Records(records, 0))
            .chain(self.more.iter().flat_map(
                move |(first, part)| -> Box<dyn Iterator<Item = Chunk<'_>> + '_> {
                    match part {
                        Part::Records(records) => Box::new(
                            records
                                .chunks(size)
                                .map(move |records| Chunk::Records(records, *first)),
                        ),
                        Part::Columns(columns) => Box::new(
                            columns
                                .rows
                                .chunks(size)
                                .map(move |rows| Chunk::Columns(columns, rows, *first)),
                        ),
                    }
                },
            ))
    }

    /// The stream of every good sample, or at least of every series (a
    /// stream may be named more than once).
    pub fn streams(&self) -> impl Iterator<Item = &str> {
        self.records
            .iter()
            .map(|r| &*r.stream)
            .chain(
                self.more
                    .iter()
                    .flat_map(|(_, part)| -> Box<dyn Iterator<Item = &str> + '_> {
                        match part {
                            Part::Records(records) => Box::new(records.iter().map(|r| &*r.stream)),
                            Part::Columns(columns) => {
                                Box::new(columns.series.iter().map(|(stream, _)| &**stream))
                            }
                        }
                    }),
            )
    }

    /// Gives every sample without a key the key `key` (a broker message's
    /// topic names the key its samples may leave out).
    pub fn fill_empty_keys(&mut self, key: &str) {
        let fill = |k: &mut Cow<'a, str>| {
            if k.is_empty() {
                *k = Cow::Owned(key.to_string());
            }
        };
        self.records.iter_mut().for_each(|r| fill(&mut r.key));
        for (_, part) in &mut self.more {
            match part {
                Part::Records(records) => {
                    records.to_mut().iter_mut().for_each(|r| fill(&mut r.key))
                }
                Part::Columns(columns) => {
                    // Two series may now share a key: rows keep their own
                    // series, which the engine resolves to the same slot.
                    columns
                        .to_mut()
                        .series
                        .iter_mut()
                        .for_each(|(_, k)| fill(k));
                }
            }
        }
    }

    /// Keeps only the samples whose key `keep` accepts; returns how many
    /// were dropped.
    pub fn retain_keys(&mut self, keep: impl Fn(&str) -> bool) -> usize {
        let before = self.len();
        self.records.retain(|r| keep(&r.key));
        for (_, part) in &mut self.more {
            match part {
                Part::Records(records) => records.to_mut().retain(|r| keep(&r.key)),
                Part::Columns(columns) => {
                    let columns = columns.to_mut();
                    let kept: Vec<bool> = columns.series.iter().map(|(_, k)| keep(k)).collect();
                    columns.rows.retain(|row| kept[row.series as usize]);
                }
            }
        }
        before - self.len()
    }
}

/// A run of good samples of a body, in body order (see [`Parsed::chunks`]).
#[derive(Clone, Copy, Debug)]
pub enum Chunk<'p> {
    /// Records, and the body position their indices count from.
    Records(&'p [WireRecord<'p>], usize),
    /// Rows of a part in columns, and the body position of the part's first
    /// element.
    Columns(&'p Columns<'p>, &'p [SeriesRow], usize),
}

impl<'p> Chunk<'p> {
    /// The chunk's samples as the engine takes them, with their body
    /// positions.
    fn samples(self) -> Box<dyn Iterator<Item = SampleIn<'p>> + 'p> {
        match self {
            Chunk::Records(records, first) => {
                Box::new(records.iter().map(move |r| r.sample(first)))
            }
            Chunk::Columns(columns, rows, first) => Box::new(rows.iter().map(move |row| {
                let (stream, key) = &columns.series[row.series as usize];
                SampleIn {
                    index: first + row.index as usize,
                    stream,
                    key,
                    value: Value::Float(row.value),
                    ts_ns: row.ts_ns,
                }
            })),
        }
    }

    /// Pushes the chunk's samples into `graph`, in order, counting them in
    /// `report` (the wave is the caller's to run).
    pub fn push_into(&self, graph: &mut Graph, report: &mut BatchReport) {
        match *self {
            Chunk::Records(records, first) => {
                graph.push_records(records.iter().map(|r| r.sample(first)), report);
            }
            Chunk::Columns(columns, rows, first) => {
                graph.push_series(&columns.series, rows, first, report);
            }
        }
    }
}
