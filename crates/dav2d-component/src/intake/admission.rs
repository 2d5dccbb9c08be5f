//! Admission: the body budget (bytes of bodies in flight across every
//! connection), the bounded queue of samples for `all`-edge streams, and
//! holding a producer back while a lossless sink is behind. A producer that
//! waits is woken by a notification when room frees up, never by polling.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use dav2d_core::RejectReason;
use tokio::sync::Semaphore;

use super::{Admission, Intake};

/// The unit the body budget counts in, so a permit count fits a `u32`.
pub(super) const BUDGET_UNIT: usize = 1024;

/// A share of the body budget, held while a body is in flight and given
/// back when dropped.
#[derive(Debug)]
pub struct BodyPermit {
    budget: Arc<Semaphore>,
    units: u32,
    /// Units growth leaves free (see [`body_floor`]).
    floor: u32,
    /// `dav2d_body_budget_used_bytes`, kept in step.
    used: prometheus_client::metrics::gauge::Gauge,
}

impl BodyPermit {
    /// Takes `more` bytes on top of what this permit holds, if the budget
    /// has them beyond the part kept for small bodies (never waits).
    pub fn grow(&mut self, more: usize) -> bool {
        let units = units_of(more);
        if self.budget.available_permits() < units as usize + self.floor as usize {
            return false;
        }
        match self.budget.try_acquire_many(units) {
            Ok(permit) => {
                permit.forget();
                self.units = self.units.saturating_add(units);
                self.used.inc_by((units as usize * BUDGET_UNIT) as i64);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back everything this permit holds (a refused body whose bytes
    /// are gone; what is still drained of it is discarded as it comes).
    pub fn release(&mut self) {
        self.budget.add_permits(self.units as usize);
        self.used.dec_by(self.bytes() as i64);
        self.units = 0;
    }

    /// Bytes this permit holds.
    pub fn bytes(&self) -> usize {
        self.units as usize * BUDGET_UNIT
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        self.release();
    }
}

/// The units of a `budget` (bytes) that growing bodies leave free: a
/// sixteenth, so a small POST finds room whatever one connection holds.
pub(super) fn floor_units(budget: usize) -> u32 {
    units_of(budget / 16)
}

/// The bytes of `budget` one body may grow to (all but the sixteenth kept
/// for small bodies): what `http.max_body` must fit in.
pub fn body_ceiling(budget: usize) -> usize {
    budget - (floor_units(budget) as usize * BUDGET_UNIT).min(budget)
}

fn units_of(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX)
}

/// The longest a waiting producer holds back for a lossless sink that is
/// behind; past it the batch is applied and the sink, if it overflows,
/// counts what it merged.
pub(super) const MAX_HOLD_BACK: Duration = Duration::from_secs(30);

/// A counting semaphore that blocking producers wait on (the `all`-edge
/// queue): taking permits waits on a condition variable that every release
/// notifies.
#[derive(Debug)]
pub(super) struct Permits {
    available: Mutex<usize>,
    freed: Condvar,
}

/// Permits taken from [`Permits`], given back when dropped.
#[derive(Debug)]
pub(super) struct QueuePermit<'a> {
    permits: &'a Permits,
    count: usize,
}

impl Permits {
    pub(super) fn new(count: usize) -> Permits {
        Permits {
            available: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.available.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Permits free now.
    pub(super) fn available(&self) -> usize {
        *self.lock()
    }

    /// `count` permits if they are free now.
    pub(super) fn try_acquire(&self, count: usize) -> Option<QueuePermit<'_>> {
        let mut available = self.lock();
        (*available >= count).then(|| {
            *available -= count;
            QueuePermit {
                permits: self,
                count,
            }
        })
    }

    /// `count` permits, waiting until they are free.
    pub(super) fn acquire(&self, count: usize) -> QueuePermit<'_> {
        let mut available = self.lock();
        while *available < count {
            available = self
                .freed
                .wait(available)
                .unwrap_or_else(|p| p.into_inner());
        }
        *available -= count;
        QueuePermit {
            permits: self,
            count,
        }
    }
}

impl Drop for QueuePermit<'_> {
    fn drop(&mut self) {
        *self.permits.lock() += self.count;
        self.permits.freed.notify_all();
    }
}

impl Intake {
    /// A share of the body budget for the first `bytes` of a body (charge
    /// what arrives, not what is announced: give at most a step and grow
    /// the permit as bytes come), or `None` (counted as `body_budget`) when
    /// bodies in flight already hold it. This first share may use the part
    /// of the budget growth leaves free.
    pub fn reserve_body(&self, bytes: usize) -> Option<BodyPermit> {
        let units = units_of(bytes.max(1));
        match self.shared.body_budget.try_acquire_many(units) {
            Ok(permit) => {
                permit.forget();
                let used = self.shared.metrics.body_budget_used.clone();
                used.inc_by((units as usize * BUDGET_UNIT) as i64);
                Some(BodyPermit {
                    budget: Arc::clone(&self.shared.body_budget),
                    units,
                    floor: self.shared.body_floor,
                    used,
                })
            }
            Err(_) => {
                self.reject(RejectReason::BodyBudget, 1);
                None
            }
        }
    }

    /// Honours a lossless sink that is behind: `Wait` holds the caller (up
    /// to [`MAX_HOLD_BACK`]); `Refuse` refuses the `offered` samples, counted
    /// as `sink_behind`. True when the batch may go on.
    pub(super) fn hold_back(&self, offered: usize, admission: Admission) -> bool {
        let pressure = &self.shared.backpressure;
        if !pressure.is_raised() {
            return true;
        }
        match admission {
            Admission::Refuse => {
                self.reject(RejectReason::SinkBehind, offered as u64);
                false
            }
            Admission::Wait => {
                // Woken when the sink catches up (or after the longest hold).
                pressure.wait_lowered(MAX_HOLD_BACK);
                true
            }
        }
    }

    /// The room in the `all`-edge queue a batch of `samples` takes (a
    /// batch larger than the queue takes all of it).
    pub(super) fn permits(&self, samples: usize) -> usize {
        samples.min(self.shared.admission_capacity).max(1)
    }

    /// Takes room in the `all`-edge queue for `samples` good samples,
    /// waiting or refusing as `admission` says; `None` is refused, and the
    /// `offered` samples (good and bad) are counted as overloaded.
    pub(super) fn admit(
        &self,
        needed: bool,
        samples: usize,
        offered: usize,
        admission: Admission,
    ) -> Option<Option<QueuePermit<'_>>> {
        if !needed {
            return Some(None);
        }
        let shared = &self.shared;
        let permits = self.permits(samples);
        let acquired = match admission {
            // Wait for room (woken as batches finish); the caller's peer is
            // not read meanwhile.
            Admission::Wait => Some(shared.admission.acquire(permits)),
            Admission::Refuse => shared.admission.try_acquire(permits),
        };
        match acquired {
            Some(permit) => {
                self.set_queue_depth();
                Some(Some(permit))
            }
            None => {
                self.reject(RejectReason::Overloaded, offered as u64);
                None
            }
        }
    }

    /// Publishes how many samples hold room in the `all`-edge queue.
    pub(super) fn set_queue_depth(&self) {
        let shared = &self.shared;
        shared
            .metrics
            .queue_depth
            .set((shared.admission_capacity - shared.admission.available()) as i64);
    }
}
