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
//! ring whose buffer is still shared copies it first (`Arc::make_mut`), so a
//! view that escapes its call stays valid and unchanged instead of racing
//! with the engine.

use std::sync::Arc;

use crate::value::Value;

/// A mirrored ring of `capacity` elements.
#[derive(Clone, Debug)]
pub(crate) struct MirrorRing<T: Clone + Default> {
    buf: Arc<Vec<T>>,
    capacity: usize,
}

impl<T: Clone + Default> MirrorRing<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buf: Arc::new(vec![T::default(); 2 * capacity]),
            capacity,
        }
    }

    /// Writes element number `count` (0-based) of the series.
    #[inline]
    pub(crate) fn write(&mut self, count: u64, value: T) {
        let position = (count % self.capacity as u64) as usize;
        let buf = Arc::make_mut(&mut self.buf);
        buf[position] = value.clone();
        buf[position + self.capacity] = value;
    }

    /// The `[start, end)` range of the newest `n` elements when `count`
    /// elements have been written.
    #[inline]
    pub(crate) fn range(&self, count: u64, n: usize) -> (usize, usize) {
        if count == 0 {
            return (self.capacity, self.capacity);
        }
        let k = n
            .min(self.capacity)
            .min(count.min(usize::MAX as u64) as usize);
        let last = ((count - 1) % self.capacity as u64) as usize;
        let end = last + self.capacity + 1;
        (end - k, end)
    }

    #[inline]
    pub(crate) fn slice(&self, count: u64, n: usize) -> &[T] {
        let (start, end) = self.range(count, n);
        &self.buf[start..end]
    }

    pub(crate) fn shared(&self) -> Arc<Vec<T>> {
        Arc::clone(&self.buf)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// A ring of `new_capacity` holding the newest of the `held` valid
    /// elements of this one.
    pub(crate) fn resized(&self, count: u64, held: usize, new_capacity: usize) -> Self {
        let mut ring = Self::new(new_capacity);
        let kept = self.slice(count, held.min(new_capacity)).to_vec();
        let first = count - kept.len() as u64;
        for (i, value) in kept.into_iter().enumerate() {
            ring.write(first + i as u64, value);
        }
        ring
    }
}

/// The samples of one (stream, key): timestamps and numeric values always,
/// full values only once a non-float value has been seen.
#[derive(Clone, Debug)]
pub(crate) struct SeriesRing {
    pub(crate) count: u64,
    /// How many of the newest samples the rings hold validly (at most the
    /// capacity; fewer right after a resize).
    held: usize,
    pub(crate) ts: MirrorRing<i64>,
    pub(crate) num: MirrorRing<f64>,
    /// Present once the series has held a value that is not a float; numeric
    /// slots of such values hold `NaN`.
    pub(crate) values: Option<MirrorRing<Value>>,
    /// How many of the values in `values` are not numbers at all.
    pub(crate) non_numeric_written: u64,
}

impl SeriesRing {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            count: 0,
            held: 0,
            ts: MirrorRing::new(capacity),
            num: MirrorRing::new(capacity),
            values: None,
            non_numeric_written: 0,
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
        self.ts.write(self.count, ts_ns);
        self.num.write(self.count, value);
        self.count += 1;
        self.held = (self.held + 1).min(self.capacity());
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
        self.ts.write(count, ts_ns);
        self.num.write(count, numeric.unwrap_or(f64::NAN));
        if let Some(values) = self.values.as_mut() {
            values.write(count, value);
        }
        self.count += 1;
        self.held = (self.held + 1).min(capacity);
    }

    /// The newest value, if any.
    pub(crate) fn latest_value(&self) -> Option<Value> {
        if self.count == 0 {
            return None;
        }
        match &self.values {
            Some(values) => values.slice(self.count, self.k(1)).first().cloned(),
            None => self
                .num
                .slice(self.count, self.k(1))
                .first()
                .map(|v| Value::Float(*v)),
        }
    }

    pub(crate) fn latest_ts(&self) -> Option<i64> {
        self.ts.slice(self.count, self.k(1)).first().copied()
    }

    /// Whether every value in the newest `n` is a number.
    pub(crate) fn window_is_numeric(&self, n: usize) -> bool {
        match &self.values {
            None => true,
            Some(_) if self.non_numeric_written == 0 => true,
            Some(values) => values
                .slice(self.count, self.k(n))
                .iter()
                .all(|v| v.as_f64().is_some()),
        }
    }

    /// The first non-numeric value among the newest `n`, for error messages.
    pub(crate) fn first_non_numeric(&self, n: usize) -> Option<Value> {
        self.values.as_ref().and_then(|values| {
            values
                .slice(self.count, self.k(n))
                .iter()
                .find(|v| v.as_f64().is_none())
                .cloned()
        })
    }

    pub(crate) fn nums(&self, n: usize) -> &[f64] {
        self.num.slice(self.count, self.k(n))
    }

    pub(crate) fn timestamps(&self, n: usize) -> &[i64] {
        self.ts.slice(self.count, self.k(n))
    }

    pub(crate) fn resize(&mut self, capacity: usize) {
        let (count, held) = (self.count, self.held);
        self.ts = self.ts.resized(count, held, capacity);
        self.num = self.num.resized(count, held, capacity);
        if let Some(values) = &self.values {
            self.values = Some(values.resized(count, held, capacity));
        }
        self.held = held.min(capacity);
    }

    pub(crate) fn snapshot(&self, n: usize) -> WindowSnapshot {
        let (start, end) = self.ts.range(self.count, self.k(n));
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
    ts: Arc<Vec<i64>>,
    num: Arc<Vec<f64>>,
    values: Option<Arc<Vec<Value>>>,
    start: usize,
    len: usize,
}

impl WindowSnapshot {
    /// An empty window.
    pub fn empty() -> Self {
        Self {
            ts: Arc::new(Vec::new()),
            num: Arc::new(Vec::new()),
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
        assert!(series.window_is_numeric(1) || series.first_non_numeric(1).is_some());
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
