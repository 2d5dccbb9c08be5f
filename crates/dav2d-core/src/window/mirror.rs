//! The mirrored ring under every window: a buffer of `2 * capacity` where
//! each element is written at `i` and `i + capacity`, shared with snapshots
//! through an `Arc` and copied on the next write only while one is alive.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

/// A mirrored ring of `capacity` elements.
///
/// Not `Clone` on purpose: the only way to share the buffer is
/// [`MirrorRing::shared`], which records that it was shared.
#[derive(Debug)]
#[repr(C)] // The buffer first: an absent ring (`None`) reads as its null pointer.
pub(crate) struct MirrorRing<T: Clone + Default> {
    /// A slice, not a `Vec`: its elements lie right behind the `Arc`'s
    /// counts and its length (twice the capacity) beside the pointer, so a
    /// write goes from the ring to its element without reading a `Vec`
    /// header first.
    pub(super) buf: Arc<[T]>,
    /// Set when the buffer's `Arc` was handed out; until then this ring holds
    /// the only reference and writes need no atomic operation.
    maybe_shared: Cell<bool>,
}

impl<T: Clone + Default> MirrorRing<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buf: (0..2 * capacity).map(|_| T::default()).collect(),
            maybe_shared: Cell::new(false),
        }
    }

    /// The buffer for writing, copied first if a snapshot still holds it.
    #[inline(always)]
    fn buf_mut(&mut self) -> &mut [T] {
        if self.maybe_shared.get() {
            self.unshare();
        }
        let pointer = Arc::as_ptr(&self.buf).cast_mut();
        // SAFETY: `maybe_shared` is false, so the `Arc` was never cloned
        // since it was created or last found unique (`unshare`), and no `Weak`
        // is ever made from it: this ring holds the only reference, and
        // `&mut self` makes this the only access.
        unsafe { &mut *pointer }
    }

    /// Makes the buffer this ring's alone again after it was handed out:
    /// copied if a snapshot still holds it. Out of line, so that the write
    /// path stays small where it is inlined: only the first write after a
    /// snapshot (a window lent to node logic) takes it.
    #[inline(never)]
    fn unshare(&mut self) {
        if Arc::strong_count(&self.buf) != 1 {
            self.buf = Arc::from(&self.buf[..]);
        }
        // Pairs with the release decrement of the snapshot that was
        // dropped on another thread, so its reads happen before our writes.
        fence(Ordering::Acquire);
        self.maybe_shared.set(false);
    }

    /// Writes element number `count` (0-based) of the series.
    #[inline]
    pub(crate) fn write(&mut self, count: u64, value: T) {
        let position = (count % self.capacity() as u64) as usize;
        self.write_at(position, value);
    }

    /// Writes at `position` (in `0..capacity`) and its mirror.
    #[inline(always)]
    pub(crate) fn write_at(&mut self, position: usize, value: T) {
        let capacity = self.capacity();
        let buf = self.buf_mut();
        buf[position] = value.clone();
        buf[position + capacity] = value;
    }

    /// The element at `position` (in `0..capacity`).
    #[inline]
    pub(crate) fn get(&self, position: usize) -> Option<&T> {
        self.buf.get(position)
    }

    /// The newest `k` elements when the newest sits at `last` (no division).
    #[inline]
    pub(crate) fn slice_ending(&self, last: usize, k: usize) -> &[T] {
        let end = last + self.capacity() + 1;
        &self.buf[end - k..end]
    }

    /// The `[start, end)` range of the newest `n` elements when `count`
    /// elements have been written.
    #[inline]
    pub(crate) fn range(&self, count: u64, n: usize) -> (usize, usize) {
        if count == 0 {
            let capacity = self.capacity();
            return (capacity, capacity);
        }
        let k = n
            .min(self.capacity())
            .min(count.min(usize::MAX as u64) as usize);
        let last = ((count - 1) % self.capacity() as u64) as usize;
        let end = last + self.capacity() + 1;
        (end - k, end)
    }

    #[inline]
    pub(crate) fn slice(&self, count: u64, n: usize) -> &[T] {
        let (start, end) = self.range(count, n);
        &self.buf[start..end]
    }

    pub(crate) fn shared(&self) -> Arc<[T]> {
        self.maybe_shared.set(true);
        Arc::clone(&self.buf)
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len() / 2
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
