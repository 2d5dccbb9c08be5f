//! Windows: the ring of recent samples each (stream, key) keeps, laid out so
//! the last `n` values are always one contiguous slice.
//!
//! The ring is *mirrored*: a buffer of `2 * capacity` where each sample is
//! written at `i` and `i + capacity`. The newest `k <= capacity` samples are
//! then always `buf[end - k .. end]`, with no wrap-around, so a window can be
//! handed to NumPy as a plain strided array without copying.
//!
//! Buffers live behind `Arc`. A [`WindowSnapshot`] clones the `Arc`s (not the
//! data) so a consumer such as Python can hold a view; the next write to a
//! ring whose buffer is still shared copies it first (`MirrorRing::unshare`), so a
//! view that escapes its call stays valid and unchanged instead of racing
//! with the engine.

use std::sync::Arc;

use crate::value::Value;

mod mirror;

pub(crate) use mirror::MirrorRing;

/// Samples of an input a node (or a window read) sees when none is given.
pub const DEFAULT_WINDOW: usize = 16;

/// The most samples one (stream, key) keeps, and so the longest window a
/// node may ask for: larger values are refused where they are given instead
/// of failing to allocate on the first sample.
pub const MAX_WINDOW: usize = 1 << 20;

/// The most samples a time window keeps unless told otherwise: the ring a
/// key keeps is allocated whole, so a time window's memory is bounded by a
/// count too; samples past it are left out and counted
/// ([`NodeStats::window_overflow`]).
pub const DEFAULT_SPAN_SAMPLES: usize = 1024;

/// The samples of one (stream, key): timestamps and numeric values always,
/// full values only once a non-float value has been seen.
///
/// `repr(C)`: the count, the newest sample, how many are held and whether
/// there are full values come first, so that they lie in a slot's first
/// cache line (see the graph's `Slot`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SeriesRing {
    pub(crate) count: u64,
    /// The newest sample's timestamp and number, kept beside the rings so
    /// reading the latest (every change's publication) touches no ring.
    newest_ts: i64,
    newest_num: f64,
    /// How many of the newest samples the rings hold validly (at most the
    /// capacity; fewer right after a resize).
    held: usize,
    /// Present once the series has held a value that is not a float; numeric
    /// slots of such values hold `NaN`.
    pub(crate) values: Option<MirrorRing<Value>>,
    /// Position of the newest sample in the rings (`(count - 1) % capacity`),
    /// kept so the hot path never divides.
    last: usize,
    pub(crate) ts: MirrorRing<i64>,
    pub(crate) num: MirrorRing<f64>,
    /// How many of the values in `values` are not numbers at all.
    pub(crate) non_numeric_written: u64,
    /// Heap bytes of the values the ring holds (strings, records, bytes),
    /// for the graph's budget of retained values.
    pub(crate) value_bytes: usize,
}

impl SeriesRing {
    /// Where the fields that publishing reads end, from the series' start:
    /// the count, the newest sample, how many are held and whether there
    /// are full values (the values ring's buffer pointer).
    #[cfg(test)]
    pub(crate) fn published_fields_end() -> usize {
        use std::mem::offset_of;
        [
            offset_of!(Self, count) + 8,
            offset_of!(Self, newest_ts) + 8,
            offset_of!(Self, newest_num) + 8,
            offset_of!(Self, held) + 8,
            offset_of!(Self, values) + offset_of!(MirrorRing<Value>, buf) + 8,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            count: 0,
            held: 0,
            last: 0,
            ts: MirrorRing::new(capacity),
            num: MirrorRing::new(capacity),
            values: None,
            non_numeric_written: 0,
            value_bytes: 0,
            newest_ts: 0,
            newest_num: 0.0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ts.capacity()
    }

    #[inline]
    pub(crate) fn push_float(&mut self, ts_ns: i64, value: f64) {
        if self.values.is_some() {
            self.push_value(ts_ns, Value::Float(value));
            return;
        }
        let position = self.next_position();
        self.write_newest(position, ts_ns, value);
        self.advance(position);
    }

    /// Writes the timestamp and number of the sample at `position`, the new
    /// newest, to the rings and beside them (see `newest_ts`).
    #[inline]
    fn write_newest(&mut self, position: usize, ts_ns: i64, num: f64) {
        self.ts.write_at(position, ts_ns);
        self.num.write_at(position, num);
        (self.newest_ts, self.newest_num) = (ts_ns, num);
    }

    #[inline]
    fn next_position(&self) -> usize {
        if self.count == 0 || self.last + 1 == self.capacity() {
            0
        } else {
            self.last + 1
        }
    }

    #[inline]
    fn advance(&mut self, position: usize) {
        self.last = position;
        self.count += 1;
        if self.held < self.capacity() {
            self.held += 1;
        }
    }

    /// Appends many floats, writing only the newest `capacity` of them.
    pub(crate) fn extend_floats(&mut self, ts: &[i64], values: &[f64]) {
        if self.values.is_some() {
            for (&t, &v) in ts.iter().zip(values) {
                self.push_float(t, v);
            }
            return;
        }
        let skip = values.len().saturating_sub(self.capacity());
        if skip > 0 {
            // Positions of samples no window can see: step over them. The
            // writes below cover every position again, so `held` stays true.
            let capacity = self.capacity();
            self.last = if self.count == 0 {
                (skip - 1) % capacity
            } else {
                (self.last + skip) % capacity
            };
            self.count += skip as u64;
            self.held = (self.held + skip).min(capacity);
        }
        for (&t, &v) in ts[skip..].iter().zip(&values[skip..]) {
            self.push_float(t, v);
        }
    }

    #[inline]
    fn k(&self, n: usize) -> usize {
        n.min(self.held)
    }

    pub(crate) fn push_value(&mut self, ts_ns: i64, value: Value) {
        if let (Value::Float(v), None) = (&value, &self.values) {
            let v = *v;
            self.push_float(ts_ns, v);
            return;
        }
        let capacity = self.capacity();
        let count = self.count;
        if self.values.is_none() {
            // Promote: back-fill full values from the numeric ring.
            let mut values = MirrorRing::new(capacity);
            let nums = self.num.slice(count, self.held).to_vec();
            let first = count - nums.len() as u64;
            for (i, v) in nums.into_iter().enumerate() {
                values.write(first + i as u64, Value::Float(v));
            }
            self.values = Some(values);
        }
        let numeric = value.as_f64();
        if numeric.is_none() {
            self.non_numeric_written += 1;
        }
        let position = self.next_position();
        self.write_newest(position, ts_ns, numeric.unwrap_or(f64::NAN));
        let added = value.heap_size();
        if let Some(values) = self.values.as_mut() {
            let evicted = values.get(position).map_or(0, Value::heap_size);
            values.write_at(position, value);
            self.value_bytes = (self.value_bytes + added).saturating_sub(evicted);
        }
        self.advance(position);
    }

    /// The newest value, if any.
    #[inline]
    pub(crate) fn latest_value(&self) -> Option<Value> {
        if self.held == 0 {
            return None;
        }
        match &self.values {
            Some(values) => values.slice_ending(self.last, self.k(1)).first().cloned(),
            None => Some(Value::Float(self.newest_num)),
        }
    }

    /// The newest sample's number (`NaN` for a value that is not one), as
    /// `nums(1)` would read it from the ring, if any.
    #[inline]
    pub(crate) fn latest_num(&self) -> Option<f64> {
        (self.held > 0).then_some(self.newest_num)
    }

    /// The newest sample's number and timestamp, when the series holds
    /// floats only (no full values) and has a sample.
    #[inline]
    pub(crate) fn latest_float(&self) -> Option<(f64, i64)> {
        (self.held > 0 && self.values.is_none()).then_some((self.newest_num, self.newest_ts))
    }

    /// The newest timestamp, if any.
    #[inline]
    pub(crate) fn latest_ts(&self) -> Option<i64> {
        (self.held > 0).then_some(self.newest_ts)
    }

    /// Whether every value in the newest `n` is a number.
    pub(crate) fn window_is_numeric(&self, n: usize) -> bool {
        match &self.values {
            None => true,
            Some(_) if self.non_numeric_written == 0 => true,
            Some(values) => values
                .slice_ending(self.last, self.k(n))
                .iter()
                .all(|v| v.as_f64().is_some()),
        }
    }

    /// The first non-numeric value among the newest `n`, for error messages.
    pub(crate) fn first_non_numeric(&self, n: usize) -> Option<Value> {
        self.values.as_ref().and_then(|values| {
            values
                .slice_ending(self.last, self.k(n))
                .iter()
                .find(|v| v.as_f64().is_none())
                .cloned()
        })
    }

    /// How many of the newest samples a window sees: the newest `cap`, or
    /// with a time window of `span` ns those less than `span` older than
    /// the newest, at most `cap` of them; and whether the cap left out
    /// samples of the span. The ring keeps timestamps in order (a late
    /// sample is either refused or inserted in place), and it keeps
    /// `cap + 1` samples for a time window, so the one past the cap tells.
    #[inline]
    pub(crate) fn window_len(&self, cap: usize, span: Option<i64>) -> (usize, bool) {
        let Some(span) = span else {
            return (cap, false);
        };
        let ts = self.timestamps(cap.saturating_add(1));
        let Some(&newest) = ts.last() else {
            return (0, false);
        };
        let from = newest.saturating_sub(span);
        let within = ts.len() - ts.partition_point(|&t| t <= from);
        (within.min(cap), within > cap)
    }

    #[inline]
    pub(crate) fn nums(&self, n: usize) -> &[f64] {
        self.num.slice_ending(self.last, self.k(n))
    }

    #[inline]
    pub(crate) fn timestamps(&self, n: usize) -> &[i64] {
        self.ts.slice_ending(self.last, self.k(n))
    }

    pub(crate) fn resize(&mut self, capacity: usize) {
        let (count, held) = (self.count, self.held);
        self.ts = self.ts.resized(count, held, capacity);
        self.num = self.num.resized(count, held, capacity);
        if let Some(values) = &self.values {
            let values = values.resized(count, held, capacity);
            self.value_bytes = (0..values.capacity())
                .filter_map(|position| values.get(position))
                .map(Value::heap_size)
                .sum();
            self.values = Some(values);
        }
        self.held = held.min(capacity);
        self.last = if count == 0 {
            0
        } else {
            ((count - 1) % capacity.max(1) as u64) as usize
        };
    }

    /// The held samples, oldest first, as (timestamp, value).
    pub(crate) fn held_samples(&self) -> Vec<(i64, Value)> {
        let n = self.held;
        let ts = self.timestamps(n);
        match &self.values {
            Some(values) => {
                let values = values.slice_ending(self.last, self.k(n));
                ts.iter().copied().zip(values.iter().cloned()).collect()
            }
            None => ts
                .iter()
                .copied()
                .zip(self.nums(n).iter().map(|v| Value::Float(*v)))
                .collect(),
        }
    }

    /// Replaces the contents with `samples` (oldest first) as the newest of
    /// a series of `count` samples, keeping sequence numbers and ring
    /// positions what they were when the samples were taken.
    pub(crate) fn restore(&mut self, count: u64, samples: &[(i64, Value)]) {
        let kept = &samples[samples.len().saturating_sub(self.capacity())..];
        let first = count.saturating_sub(kept.len() as u64);
        self.count = first;
        self.held = 0;
        self.last = if first == 0 {
            0
        } else {
            ((first - 1) % self.capacity() as u64) as usize
        };
        for (ts, value) in kept {
            self.push_value(*ts, value.clone());
        }
    }

    pub(crate) fn snapshot(&self, n: usize) -> WindowSnapshot {
        let k = self.k(n);
        let end = if self.count == 0 {
            self.capacity()
        } else {
            self.last + self.capacity() + 1
        };
        let start = end - k;
        WindowSnapshot {
            ts: self.ts.shared(),
            num: self.num.shared(),
            values: self.values.as_ref().map(MirrorRing::shared),
            start,
            len: end - start,
        }
    }
}

/// An owned, zero-copy view of the newest samples of one (stream, key),
/// oldest first. Holding it never blocks the engine: the engine copies the
/// ring on its next write instead of mutating what a snapshot sees.
#[derive(Clone, Debug)]
pub struct WindowSnapshot {
    ts: Arc<[i64]>,
    num: Arc<[f64]>,
    values: Option<Arc<[Value]>>,
    start: usize,
    len: usize,
}

impl WindowSnapshot {
    /// The `len` samples ending before `end` of a column (timestamps and
    /// numbers shared, not copied): a window of a run evaluated column-wise.
    pub(crate) fn of_column(ts: &Arc<[i64]>, num: &Arc<[f64]>, end: usize, len: usize) -> Self {
        Self {
            ts: Arc::clone(ts),
            num: Arc::clone(num),
            values: None,
            start: end - len,
            len,
        }
    }

    /// An empty window that allocates nothing: every one shares the same
    /// empty vectors.
    pub fn none() -> Self {
        static TS: std::sync::LazyLock<Arc<[i64]>> = std::sync::LazyLock::new(|| Arc::from([]));
        static NUM: std::sync::LazyLock<Arc<[f64]>> = std::sync::LazyLock::new(|| Arc::from([]));
        Self {
            ts: Arc::clone(&TS),
            num: Arc::clone(&NUM),
            values: None,
            start: 0,
            len: 0,
        }
    }

    /// An empty window.
    pub fn empty() -> Self {
        Self {
            ts: Arc::from([]),
            num: Arc::from([]),
            values: None,
            start: 0,
            len: 0,
        }
    }

    /// How many samples the window holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values as floats, contiguous (non-numbers read as `NaN`).
    pub fn numbers(&self) -> &[f64] {
        &self.num[self.start..self.start + self.len]
    }

    /// The timestamps in nanoseconds, contiguous.
    pub fn timestamps(&self) -> &[i64] {
        &self.ts[self.start..self.start + self.len]
    }

    /// Whether every value is a plain float (then [`Self::numbers`] is exact).
    pub fn is_all_float(&self) -> bool {
        match &self.values {
            None => true,
            Some(values) => values[self.start..self.start + self.len]
                .iter()
                .all(Value::is_float),
        }
    }

    /// The value at `index` (0 = oldest), if in range.
    pub fn value(&self, index: usize) -> Option<Value> {
        if index >= self.len {
            return None;
        }
        match &self.values {
            Some(values) => values.get(self.start + index).cloned(),
            None => self.num.get(self.start + index).map(|v| Value::Float(*v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_newest_sample_is_the_rings_newest_through_every_kind_of_write() {
        // What the rings say is newest, read from them as before the
        // newest was kept beside them.
        fn from_rings(series: &SeriesRing) -> (Option<Value>, Option<i64>) {
            let ts = series.timestamps(1).first().copied();
            let value = match &series.values {
                Some(values) => values
                    .slice_ending(series.last, series.k(1))
                    .first()
                    .cloned(),
                None => series.nums(1).first().map(|v| Value::Float(*v)),
            };
            (value, ts)
        }
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..200 {
            let mut series = SeriesRing::new(1 + (round % 7));
            let mut ts = 0i64;
            for _ in 0..60 {
                ts += 1 + next(3) as i64;
                match next(6) {
                    0 | 1 => series.push_float(ts, next(1000) as f64 - 500.0),
                    2 => {
                        let n = next(12) as usize;
                        let stamps: Vec<i64> = (0..n as i64).map(|i| ts + i).collect();
                        let values: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
                        series.extend_floats(&stamps, &values);
                        ts += n as i64;
                    }
                    3 => series.push_value(
                        ts,
                        match next(3) {
                            0 => Value::Str(Arc::from("text")),
                            1 => Value::Int(next(9) as i64),
                            _ => Value::Float(1.25),
                        },
                    ),
                    4 => series.resize(1 + next(9) as usize),
                    _ => {
                        // A late sample put in place, as the engine does.
                        let mut samples = series.held_samples();
                        samples.insert(0, (i64::MIN + ts, Value::Float(-1.0)));
                        let count = series.count + 1;
                        series.restore(count, &samples);
                    }
                }
                assert_eq!(
                    (series.latest_value(), series.latest_ts()),
                    from_rings(&series)
                );
                let ring_num = series.nums(1).first().map(|v| v.to_bits());
                assert_eq!(series.latest_num().map(f64::to_bits), ring_num);
                let ring_float = match series.values {
                    None => ring_num.zip(series.latest_ts()),
                    Some(_) => None,
                };
                let kept_float = series.latest_float().map(|(v, ts)| (v.to_bits(), ts));
                assert_eq!(kept_float, ring_float);
            }
        }
    }

    /// A view is the shared buffer and the range it showed when taken.
    type View = (Arc<[u64]>, usize, usize, Vec<u64>);

    #[test]
    fn views_held_on_other_threads_stay_unchanged_while_the_writer_wraps_many_times() {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<View>(16);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                std::thread::spawn(move || {
                    let mut held: Vec<View> = Vec::new();
                    let mut checked = 0u64;
                    loop {
                        let next = receiver.lock().map(|r| r.recv());
                        let Ok(Ok(view)) = next else { break };
                        held.push(view);
                        // Every held view still reads what it saw, however
                        // often the writer wrapped the ring meanwhile.
                        for (buf, start, end, seen) in &held {
                            assert_eq!(&buf[*start..*end], &seen[..]);
                            checked += 1;
                        }
                        if held.len() > 24 {
                            held.remove(0);
                        }
                    }
                    checked
                })
            })
            .collect();
        let mut ring = MirrorRing::<u64>::new(8);
        for count in 0..100_000u64 {
            ring.write(count, count);
            if count % 13 == 0 {
                let view = ring.shared();
                let (start, end) = ring.range(count + 1, 5);
                let seen = view[start..end].to_vec();
                let first = (count + 1).saturating_sub(5);
                assert_eq!(seen, (first..=count).collect::<Vec<_>>());
                sender
                    .send((view, start, end, seen))
                    .expect("a reader takes the view");
            }
        }
        drop(sender);
        let checked: u64 = readers
            .into_iter()
            .map(|r| r.join().expect("no reader saw a changed view"))
            .sum();
        assert!(checked > 7_000, "the readers checked views: {checked}");
    }

    fn check_ring(capacity: usize, writes: u64, n: usize, expected: &[i64]) {
        let mut ring = MirrorRing::new(capacity);
        for i in 0..writes {
            ring.write(i, i as i64);
        }
        assert_eq!(
            ring.slice(writes, n),
            expected,
            "capacity {capacity}, {writes} writes, last {n}"
        );
    }

    #[test]
    fn mirrored_ring_keeps_the_newest_contiguous() {
        check_ring(3, 0, 3, &[]);
        check_ring(3, 1, 3, &[0]);
        check_ring(3, 2, 3, &[0, 1]);
        check_ring(3, 3, 3, &[0, 1, 2]);
        check_ring(3, 4, 3, &[1, 2, 3]);
        check_ring(3, 5, 2, &[3, 4]);
        check_ring(3, 7, 10, &[4, 5, 6]);
        check_ring(1, 5, 1, &[4]);
        check_ring(5, 12, 5, &[7, 8, 9, 10, 11]);
    }

    #[test]
    fn a_snapshot_is_unchanged_by_later_writes() {
        let mut series = SeriesRing::new(2);
        series.push_float(1, 1.0);
        series.push_float(2, 2.0);
        let snapshot = series.snapshot(2);
        series.push_float(3, 3.0);
        assert_eq!(snapshot.numbers(), &[1.0, 2.0]);
        assert_eq!(series.nums(2), &[2.0, 3.0]);
    }

    #[test]
    fn promotion_to_full_values_keeps_history() {
        let mut series = SeriesRing::new(3);
        series.push_float(1, 1.5);
        series.push_value(2, Value::Int(2));
        series.push_value(3, Value::from("x"));
        let snapshot = series.snapshot(3);
        assert_eq!(snapshot.value(0), Some(Value::Float(1.5)));
        assert_eq!(snapshot.value(1), Some(Value::Int(2)));
        assert_eq!(snapshot.value(2), Some(Value::from("x")));
        assert!(!series.window_is_numeric(3));
        assert!(!series.window_is_numeric(1), "the newest value is a string");
        assert_eq!(series.first_non_numeric(3), Some(Value::from("x")));
        assert_eq!(
            snapshot.numbers()[..2],
            [1.5, 2.0],
            "numbers still read numerically"
        );
    }

    #[test]
    fn extending_matches_pushing_one_by_one() {
        for (capacity, before, batch) in [(3, 0, 10), (3, 2, 10), (4, 5, 2), (1, 0, 3), (5, 7, 5)] {
            let mut pushed = SeriesRing::new(capacity);
            let mut extended = SeriesRing::new(capacity);
            for i in 0..before {
                pushed.push_float(i, i as f64);
                extended.push_float(i, i as f64);
            }
            let ts: Vec<i64> = (before..before + batch).collect();
            let values: Vec<f64> = ts.iter().map(|&t| t as f64).collect();
            for (&t, &v) in ts.iter().zip(&values) {
                pushed.push_float(t, v);
            }
            extended.extend_floats(&ts, &values);
            assert_eq!(
                extended.nums(capacity),
                pushed.nums(capacity),
                "capacity {capacity}"
            );
            assert_eq!(extended.timestamps(capacity), pushed.timestamps(capacity));
            assert_eq!(extended.count, pushed.count);
            extended.push_float(99, 99.0);
            pushed.push_float(99, 99.0);
            assert_eq!(extended.nums(capacity), pushed.nums(capacity));
        }
    }

    #[test]
    fn resizing_keeps_the_newest() {
        let mut series = SeriesRing::new(2);
        for i in 0..5 {
            series.push_float(i, i as f64);
        }
        series.resize(4);
        assert_eq!(series.nums(4), &[3.0, 4.0]);
        series.push_float(5, 5.0);
        assert_eq!(series.nums(4), &[3.0, 4.0, 5.0]);
    }
}
