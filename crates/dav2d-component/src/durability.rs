//! Durable acknowledgements: how a source learns that the samples it
//! applied are on disk, without knowing which sink put them there.
//!
//! A source reads the graph's settled-wave mark after applying a batch (the
//! intake reports it as [`crate::IngestReport::settled`]) and waits until
//! every lossless sink has made everything up to that mark durable
//! ([`Durability::wait_for`]); it may ask for an early flush meanwhile. A
//! lossless sink attaches when it starts, and after each fsync reports the
//! mark it covers ([`Durability::made_durable`]). With no sink attached
//! there is nothing to wait for, and sources say so.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The durability marks of the running lossless sinks.
#[derive(Debug, Default)]
pub struct Durability {
    /// One mark per attached sink (`None` once detached).
    marks: Mutex<Vec<Option<u64>>>,
    flush_wanted: AtomicBool,
    changed: Notify,
}

/// Which attached sink a report is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkSlot(usize);

impl Durability {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<u64>>> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lossless sink starts reporting; everything before `mark` counts as
    /// durable (it was restored from disk or is older than the sink).
    pub fn attach(&self, mark: u64) -> SinkSlot {
        let mut marks = self.lock();
        marks.push(Some(mark));
        SinkSlot(marks.len() - 1)
    }

    /// The sink stopped; waiters no longer wait for it.
    pub fn detach(&self, slot: SinkSlot) {
        if let Some(mark) = self.lock().get_mut(slot.0) {
            *mark = None;
        }
        self.changed.notify_waiters();
    }

    /// The sink made everything up to `mark` durable.
    pub fn made_durable(&self, slot: SinkSlot, mark: u64) {
        let mut marks = self.lock();
        if let Some(Some(current)) = marks.get_mut(slot.0)
            && mark > *current
        {
            *current = mark;
            drop(marks);
            self.changed.notify_waiters();
        }
    }

    /// Whether any lossless sink is attached.
    pub fn has_sink(&self) -> bool {
        self.lock().iter().any(Option::is_some)
    }

    /// The mark every attached sink has made durable (`None`: no sink).
    pub fn durable_through(&self) -> Option<u64> {
        self.lock().iter().flatten().copied().min()
    }

    /// Asks the sinks to flush soon rather than on their schedule.
    pub fn want_flush(&self) {
        self.flush_wanted.store(true, Ordering::Release);
    }

    /// For a sink: whether a flush was asked for since it last looked.
    pub fn take_flush_wanted(&self) -> bool {
        self.flush_wanted.swap(false, Ordering::AcqRel)
    }

    /// Waits until `mark` is durable in every attached sink, up to
    /// `timeout`; false when it did not become durable in time (or no sink
    /// is attached).
    pub async fn wait_for(&self, mark: u64, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                match self.durable_through() {
                    None => return false,
                    Some(durable) if durable >= mark => return true,
                    Some(_) => self.want_flush(),
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}
