//! The frame pool: allocated, 64-byte-aligned slots owned by Rust (their
//! pages taken only as frames are written into them), one
//! pool per frame stream. The producer writes into a free slot and
//! publishes it as the newest; readers lease the newest and read it in
//! place. A slot that is leased (by a lease, an exported buffer, a tensor:
//! whatever holds a [`Lease`]) or is the newest is never written; when no
//! slot is free the producer skips the frame and counts it. A slow reader
//! gets the newest frame, never a backlog, and never blocks the producer
//! (unless the stream asked for every frame: [`Delivery::Every`]).
//!
//! The bookkeeping (which slot is newest, how many leases each has, which
//! one is being written) sits behind one mutex taken for a few instructions
//! per frame and per lease; the pixels are never behind it.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::format::{FrameLayout, PixelFormat};

/// The alignment of every slot's buffer.
pub const SLOT_ALIGN: usize = 64;

/// How the producer treats readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Live sources: the producer never waits; readers get the newest.
    #[default]
    Latest,
    /// Files and pipes: the producer publishes the next frame only once a
    /// reader has taken the newest, so a reader sees every frame.
    Every,
}

/// A published frame's description.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameMeta {
    /// Where its planes are in the slot.
    pub layout: FrameLayout,
    /// Timestamp, ns since the epoch (as the source gave it).
    pub ts_ns: i64,
    /// Position in the stream, from 0.
    pub seq: u64,
}

/// One slot's buffer: `capacity` bytes aligned to [`SLOT_ALIGN`], zeroed
/// lazily: it is allocated with the allocator's `calloc` path (alignment
/// 16, [`SLOT_ALIGN`] bytes more, the pointer aligned up within), which for
/// a large slot maps fresh zero pages that take memory only once a frame
/// is written into them. (An allocation aligned to 64 would be zeroed by
/// writing every byte, so an idle stream would hold its whole pool.)
struct Buffer {
    /// What the allocator returned.
    base: *mut u8,
    /// `base` aligned up to [`SLOT_ALIGN`].
    pointer: *mut u8,
    capacity: usize,
}

/// The alignment the allocator zeroes lazily (`calloc`'s).
const ZEROED_ALIGN: usize = 16;

impl Buffer {
    fn layout(capacity: usize) -> Layout {
        Layout::from_size_align(capacity.max(1) + SLOT_ALIGN, ZEROED_ALIGN)
            .unwrap_or_else(|error| panic!("a frame slot of {capacity} bytes: {error}"))
    }

    fn new(capacity: usize) -> Buffer {
        let layout = Self::layout(capacity);
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let offset = base.align_offset(SLOT_ALIGN);
        // SAFETY: `offset` < SLOT_ALIGN, and SLOT_ALIGN bytes more than
        // `capacity` were allocated, so the slot lies within the allocation.
        let pointer = unsafe { base.add(offset) };
        Buffer {
            base,
            pointer,
            capacity,
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `Buffer::new` with this very layout.
        unsafe { dealloc(self.base, Self::layout(self.capacity)) }
    }
}

struct Slot {
    /// Made when the slot is first written (a pool grows into its slots).
    buffer: std::sync::OnceLock<Buffer>,
    /// Written only by the producer while it holds the slot for writing.
    meta: UnsafeCell<Option<FrameMeta>>,
}

#[derive(Default)]
struct State {
    newest: Option<usize>,
    leases: Vec<u32>,
    writing: Option<usize>,
    /// Frames published.
    published: u64,
    /// The newest seq a reader has leased (for [`Delivery::Every`]).
    taken: Option<u64>,
    closed: bool,
    /// Slots in use: the pool grows (up to [`MAX_SLOTS`]) while readers
    /// hold every one, within `max_pinned_bytes`.
    active: usize,
    /// Bytes of slots readers may hold before frames are skipped.
    max_pinned_bytes: usize,
    /// Whether the pool said it reached `max_pinned_bytes`.
    warned: bool,
    /// Whether a reader was told so (see [`FramePool::take_cap_notice`]).
    noticed: bool,
    /// Why the source ended, when it was not a clean end.
    error: Option<String>,
}

struct Inner {
    slots: Box<[Slot]>,
    capacity: usize,
    state: Mutex<State>,
    changed: Condvar,
    delivery: Delivery,
    skipped: AtomicU64,
}

// SAFETY: a slot's buffer and meta are written only by the producer while
// the state marks the slot as being written, which it does only when the
// slot is neither the newest nor leased; readers only read slots they lease
// (the newest at the time), so no write ever overlaps a read. The state
// itself is behind the mutex.
unsafe impl Sync for Inner {}
// SAFETY: the raw buffer pointers are owned by the pool and freed once.
unsafe impl Send for Inner {}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A frame stream's pool of slots. Cloning shares it.
#[derive(Clone)]
pub struct FramePool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FramePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePool")
            .field("slots", &self.slots())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// The most slots a pool has (it starts with fewer and grows).
pub const MAX_SLOTS: usize = 64;

/// The bytes of slots readers may hold before a stream skips frames, by
/// default (or the pool's first slots, if more).
pub const DEFAULT_MAX_PINNED_BYTES: usize = 1 << 30;

impl FramePool {
    /// A pool of `slots` (at least 2) slots of `capacity` bytes each, that
    /// grows while readers hold every slot (see [`FramePool::begin`]).
    pub fn new(slots: usize, capacity: usize, delivery: Delivery) -> FramePool {
        let active = slots.clamp(2, MAX_SLOTS);
        let slots: Box<[Slot]> = (0..MAX_SLOTS)
            .map(|_| Slot {
                buffer: std::sync::OnceLock::new(),
                meta: UnsafeCell::new(None),
            })
            .collect();
        let state = State {
            leases: vec![0; slots.len()],
            active,
            max_pinned_bytes: DEFAULT_MAX_PINNED_BYTES.max(active.saturating_mul(capacity)),
            ..State::default()
        };
        FramePool {
            inner: Arc::new(Inner {
                slots,
                capacity,
                state: Mutex::new(state),
                changed: Condvar::new(),
                delivery,
                skipped: AtomicU64::new(0),
            }),
        }
    }

    /// Bytes each slot holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Sets the bytes of slots readers may hold before frames are skipped
    /// (at least the pool's first slots).
    pub fn set_max_pinned_bytes(&self, bytes: usize) {
        let mut state = self.inner.lock();
        state.max_pinned_bytes = bytes.max(state.active.saturating_mul(self.inner.capacity));
    }

    /// Once the stream has skipped frames for `max_pinned_bytes`, the
    /// warning for its reader (once; `None` before and after).
    pub fn take_cap_notice(&self) -> Option<String> {
        let mut state = self.inner.lock();
        if !state.warned || state.noticed {
            return None;
        }
        state.noticed = true;
        Some(format!(
            "Readers hold every slot of this frame stream ({} slots) and its max_pinned_bytes ({}) is reached: frames are skipped until one is let go. Copy the frames you keep (numpy.array(frame), or read_into your own buffer) rather than holding their arrays.",
            state.active, state.max_pinned_bytes
        ))
    }

    /// The bytes of slots readers may hold before frames are skipped.
    pub fn max_pinned_bytes(&self) -> usize {
        self.inner.lock().max_pinned_bytes
    }

    /// How many slots there are now.
    pub fn slots(&self) -> usize {
        self.inner.lock().active
    }

    /// Frames the producer skipped because every slot was held.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Frames published so far.
    pub fn published(&self) -> u64 {
        self.inner.lock().published
    }

    /// Leases held right now, over all slots.
    pub fn leased(&self) -> u32 {
        self.inner.lock().leases.iter().sum()
    }

    /// Ends the stream: readers waiting for a frame wake up with none.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.changed.notify_all();
    }

    /// Closes the stream because its source failed with `error` (readers
    /// see it through [`FramePool::error`]).
    pub fn fail(&self, error: String) {
        let mut state = self.inner.lock();
        state.error.get_or_insert(error);
        state.closed = true;
        drop(state);
        self.inner.changed.notify_all();
    }

    /// Why the source ended, if it failed rather than ended cleanly.
    pub fn error(&self) -> Option<String> {
        self.inner.lock().error.clone()
    }

    /// Whether the stream ended.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// A free slot to write the next frame into, or `None` (counted as a
    /// skipped frame) when every slot is held or the stream is closed.
    /// With [`Delivery::Every`] it waits (up to `wait`) for a reader to
    /// take the newest frame first.
    pub fn begin(&self, wait: Duration) -> Option<WriteSlot<'_>> {
        let inner = &self.inner;
        let mut state = inner.lock();
        if inner.delivery == Delivery::Every {
            let deadline = Instant::now() + wait;
            while !state.closed
                && state.published > 0
                && state.taken.is_none_or(|taken| taken + 1 < state.published)
            {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                state = inner
                    .changed
                    .wait_timeout(state, deadline - now)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        if state.closed {
            return None;
        }
        let free = (0..state.active)
            .find(|&i| state.leases[i] == 0 && state.newest != Some(i) && state.writing != Some(i))
            .or_else(|| {
                // Every other slot is leased: rewrite the newest if nobody
                // holds it, rather than stall the stream on it (readers
                // wait for the frame being written meanwhile).
                let newest = state.newest.filter(|&i| state.leases[i] == 0)?;
                state.newest = None;
                Some(newest)
            })
            // Readers hold every slot: one more, within max_pinned_bytes.
            .or_else(|| self.grow(&mut state));
        let Some(index) = free else {
            // A live source loses this frame; a file source tries it again.
            if inner.delivery == Delivery::Latest {
                inner.skipped.fetch_add(1, Ordering::Relaxed);
            }
            if !state.warned {
                state.warned = true;
                tracing::warn!(
                    slots = state.active,
                    max_pinned_bytes = state.max_pinned_bytes,
                    "Readers hold every slot of a frame stream and its max_pinned_bytes is reached: frames are skipped until one is let go. Copy the frames you keep (numpy.array(frame), or read_into your own buffer) rather than holding their arrays."
                );
            }
            return None;
        };
        state.writing = Some(index);
        Some(WriteSlot {
            pool: self,
            index,
            published: false,
        })
    }

    /// One more slot, when readers hold every one and what they hold is
    /// within `max_pinned_bytes` (and the pool is under [`MAX_SLOTS`]).
    fn grow(&self, state: &mut State) -> Option<usize> {
        let held = (0..state.active).filter(|&i| state.leases[i] > 0).count();
        let pinned = (held + 1).saturating_mul(self.inner.capacity);
        if state.active >= MAX_SLOTS || pinned > state.max_pinned_bytes {
            return None;
        }
        state.active += 1;
        Some(state.active - 1)
    }

    /// A lease on the newest frame, if one was published.
    pub fn latest(&self) -> Option<Lease> {
        let mut state = self.inner.lock();
        self.lease_newest(&mut state)
    }

    fn lease_newest(&self, state: &mut State) -> Option<Lease> {
        let index = state.newest?;
        state.leases[index] += 1;
        // SAFETY: the slot is leased (and the newest), so the producer does
        // not write its meta; it was written before it was published.
        let meta = unsafe { (*self.inner.slots[index].meta.get()).clone() }?;
        state.taken = Some(state.taken.map_or(meta.seq, |t| t.max(meta.seq)));
        if self.inner.delivery == Delivery::Every {
            // The producer waits for the newest to be taken.
            self.inner.changed.notify_all();
        }
        Some(Lease {
            inner: Arc::clone(&self.inner),
            index,
            meta,
            skipped: 0,
            coverage: None,
        })
    }

    /// A lease on the first frame newer than `seq` (any frame for `None`),
    /// waiting up to `timeout`; `None` on timeout or once the stream ended
    /// with nothing newer.
    pub fn next_after(&self, seq: Option<u64>, timeout: Duration) -> Option<Lease> {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.lock();
        loop {
            let newer = state.newest.is_some() && seq.is_none_or(|seq| state.published > seq + 1);
            if newer {
                return self.lease_newest(&mut state);
            }
            if state.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// A slot the producer is writing; publish it, or drop it to give it back.
pub struct WriteSlot<'a> {
    pool: &'a FramePool,
    index: usize,
    published: bool,
}

impl WriteSlot<'_> {
    /// The slot's whole buffer.
    pub fn buffer(&mut self) -> &mut [u8] {
        let inner = &self.pool.inner;
        let buffer = inner.slots[self.index]
            .buffer
            .get_or_init(|| Buffer::new(inner.capacity));
        // SAFETY: the state marks this slot as being written by this
        // `WriteSlot` alone (see `Inner`), and `&mut self` makes this the
        // only access through it.
        unsafe { std::slice::from_raw_parts_mut(buffer.pointer, buffer.capacity) }
    }

    /// Publishes the frame written as the newest; returns its seq.
    pub fn publish(mut self, layout: FrameLayout, ts_ns: i64) -> u64 {
        let inner = &self.pool.inner;
        let mut state = inner.lock();
        let seq = state.published;
        // SAFETY: as in `buffer`: nobody reads this slot's meta until the
        // state names it the newest, below.
        unsafe {
            *inner.slots[self.index].meta.get() = Some(FrameMeta { layout, ts_ns, seq });
        }
        state.published += 1;
        state.newest = Some(self.index);
        state.writing = None;
        self.published = true;
        drop(state);
        inner.changed.notify_all();
        seq
    }
}

impl Drop for WriteSlot<'_> {
    fn drop(&mut self) {
        if !self.published {
            self.pool.inner.lock().writing = None;
        }
    }
}

/// A reader's hold on one published frame: its slot is not reused while
/// the lease lives. Cloning takes another hold on the same slot.
pub struct Lease {
    inner: Arc<Inner>,
    index: usize,
    meta: FrameMeta,
    /// Frames its reader did not get before this one (set by the reader).
    skipped: u64,
    /// For a mask: the fraction of pixels set (set by its maker).
    coverage: Option<f64>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("slot", &self.index)
            .field("seq", &self.meta.seq)
            .finish()
    }
}

impl Lease {
    /// The frame's description.
    pub fn meta(&self) -> &FrameMeta {
        &self.meta
    }

    /// The frame's bytes (all planes, as laid out).
    pub fn data(&self) -> &[u8] {
        let buffer = self.buffer();
        let len = self.meta.layout.size.min(buffer.capacity);
        // SAFETY: the slot is leased, so the producer does not write it
        // (see `Inner`); the bytes were written before it was published.
        unsafe { std::slice::from_raw_parts(buffer.pointer, len) }
    }

    /// The address of the frame's first byte (for exporting it without a copy).
    pub fn as_ptr(&self) -> *const u8 {
        self.buffer().pointer
    }

    /// The slot's buffer: made before its frame was written.
    fn buffer(&self) -> &Buffer {
        self.inner.slots[self.index]
            .buffer
            .get_or_init(|| Buffer::new(self.inner.capacity))
    }

    /// Frames of its source its reader did not get before this one.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// This lease, for a reader whose previous frame was `last` (`None`:
    /// its first): it records the frames that reader missed in between
    /// (for a first frame, the ones published before it).
    pub fn read_after(mut self, last: Option<u64>) -> Lease {
        let seq = self.meta.seq;
        self.skipped = last.map_or(seq, |last| seq.saturating_sub(last + 1));
        self
    }

    /// For a mask: the fraction of its pixels set.
    pub fn coverage(&self) -> Option<f64> {
        self.coverage
    }

    /// This lease, a mask with `coverage` of its pixels set.
    pub fn with_coverage(mut self, coverage: f64) -> Lease {
        self.coverage = Some(coverage);
        self
    }

    /// A lease on a copy of `frame` in a pool of its own: how a frame that
    /// is not a pool's (one read back from the store) is read like any
    /// other. Its seq, ts and skipped are the frame's.
    pub fn copied_from(frame: &dyn dav2d_core::FrameData) -> Result<Lease, String> {
        let info = frame.info();
        let format = PixelFormat::from_name(&info.format)?;
        let layout = format
            .layout(info.width, info.height)?
            .with_strides(&info.strides)?;
        let bytes = frame.bytes();
        if bytes.len() < layout.size {
            return Err(format!(
                "a {}x{} {format} frame needs {} bytes, this one has {}",
                info.width,
                info.height,
                layout.size,
                bytes.len()
            ));
        }
        let pool = FramePool::new(2, layout.size, Delivery::Latest);
        let mut slot = pool
            .begin(Duration::ZERO)
            .ok_or_else(|| "a new pool has a free slot".to_string())?;
        slot.buffer()[..layout.size].copy_from_slice(&bytes[..layout.size]);
        slot.publish(layout, info.ts_ns);
        let mut lease = pool
            .latest()
            .ok_or_else(|| "a frame just published is the newest".to_string())?;
        lease.meta.seq = info.seq;
        lease.skipped = info.skipped;
        lease.coverage = info.coverage;
        Ok(lease)
    }
}

impl Clone for Lease {
    fn clone(&self) -> Lease {
        self.inner.lock().leases[self.index] += 1;
        Lease {
            inner: Arc::clone(&self.inner),
            index: self.index,
            meta: self.meta.clone(),
            skipped: self.skipped,
            coverage: self.coverage,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.leases[self.index] = state.leases[self.index].saturating_sub(1);
    }
}

impl dav2d_core::FrameData for Lease {
    fn info(&self) -> dav2d_core::FrameInfo {
        let layout = &self.meta.layout;
        let mut strides = [0; 3];
        for (stride, plane) in strides.iter_mut().zip(&layout.planes) {
            *stride = plane.stride;
        }
        dav2d_core::FrameInfo {
            width: layout.width,
            height: layout.height,
            format: std::borrow::Cow::Borrowed(layout.format.as_str()),
            seq: self.meta.seq,
            ts_ns: self.meta.ts_ns,
            size: layout.size,
            skipped: self.skipped,
            strides,
            coverage: self.coverage,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.data()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
