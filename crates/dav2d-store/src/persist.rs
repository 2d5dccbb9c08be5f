//! The persister: drains a graph's updates into a store, flushes and
//! checkpoints on a schedule, and stretches that schedule when load would
//! spend more file actions than the day's budget allows.
//!
//! The schedule has three knobs: the flush interval, the checkpoint interval
//! and the segment size. At each flush the persister estimates the file
//! actions per second the configured schedule would spend at the current
//! write rate (flushes, checkpoints with their Parquet roll, and segment
//! rolls), projects that over the rest of the UTC day, and if it exceeds
//! the remaining budget (less a tenth kept in reserve) it stretches all three
//! knobs by the same factor. More load means larger groups, not more file
//! actions. Only when the budget is spent outright does persistence stop
//! (until midnight UTC) and say so, naming the budget, the count and the
//! setting to change; the engine keeps running in memory throughout.
//!
//! Time comes from the graph's clock, so a test can run a simulated day in
//! a few hundred steps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dav2d_core::{SharedGraph, Subscription};

use crate::store::{Restored, Store, StoreError, StoreOptions};
use crate::wal::Fsync;

/// File actions a checkpoint costs: the checkpoint (create, write, fsync,
/// rename, directory fsync), the log roll (create, directory fsync), the
/// Parquet file (create, write, fsync, rename, directory fsync) and at least
/// one segment delete.
pub const CHECKPOINT_ACTIONS: f64 = 13.0;
/// File actions a segment roll by size costs: create and directory fsync
/// now, its delete later.
pub const ROLL_ACTIONS: f64 = 3.0;
/// The share of the day's budget kept in reserve for what the estimate
/// misses (restarts, retries, the last checkpoint when stopping). Once the
/// reserve is reached the schedule plans to spend half of what is left over
/// the rest of the day, so it slows down rather than running dry.
pub const RESERVE_SHARE: f64 = 0.1;

/// The longest flush interval the budget may stretch to before persistence
/// reports that it cannot comply (the durability lag would be too long).
pub const MAX_FLUSH_INTERVAL_NS: i64 = 3_600 * 1_000_000_000;

/// The schedule a persister starts from (before any stretching).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Time between flushes (ns).
    pub flush_interval_ns: i64,
    /// Time between checkpoints (ns).
    pub checkpoint_interval_ns: i64,
    /// Segment size (bytes).
    pub segment_bytes: u64,
}

impl Schedule {
    /// This schedule with every knob stretched by `factor` (≥ 1).
    pub fn stretched(self, factor: f64) -> Schedule {
        let factor = factor.max(1.0);
        Schedule {
            flush_interval_ns: (self.flush_interval_ns as f64 * factor).min(i64::MAX as f64) as i64,
            checkpoint_interval_ns: (self.checkpoint_interval_ns as f64 * factor)
                .min(i64::MAX as f64) as i64,
            segment_bytes: (self.segment_bytes as f64 * factor).min(u64::MAX as f64) as u64,
        }
    }

    /// File actions per ns this schedule spends at `rate` bytes per ns with
    /// `per_flush` actions per flush (nothing when idle: an empty flush or
    /// checkpoint is skipped).
    pub fn demand(&self, rate: f64, per_flush: f64) -> f64 {
        if rate <= 0.0 {
            return 0.0;
        }
        per_flush / self.flush_interval_ns.max(1) as f64
            + CHECKPOINT_ACTIONS / self.checkpoint_interval_ns.max(1) as f64
            + ROLL_ACTIONS * rate / self.segment_bytes.max(1) as f64
    }

    /// The stretch factor (≥ 1) that keeps `day_left_ns` of this schedule's
    /// demand within the `remaining` actions of a daily `budget`, less the
    /// reserve ([`RESERVE_SHARE`]).
    pub fn stretch_for(
        &self,
        rate: f64,
        per_flush: f64,
        remaining: u64,
        budget: u64,
        day_left_ns: i64,
    ) -> f64 {
        let need = self.demand(rate, per_flush) * day_left_ns.max(0) as f64;
        let reserve = RESERVE_SHARE * budget as f64;
        let remaining = remaining as f64;
        let allowed = if remaining > 2.0 * reserve {
            remaining - reserve
        } else {
            remaining / 2.0
        };
        if allowed <= 0.0 {
            return f64::INFINITY;
        }
        (need / allowed).max(1.0)
    }
}

/// What a persister reports (read by `/metrics`, `/healthz`, `dav2d.stats()`
/// and the terminal summary).
#[derive(Debug, Default)]
pub struct PersistStats {
    /// Records made durable.
    pub flushed: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// File actions used today.
    pub file_actions_today: AtomicU64,
    /// The daily file-action budget.
    pub budget: AtomicU64,
    /// Records replayed at start.
    pub replayed: AtomicU64,
    /// Whether a checkpoint was loaded at start.
    pub restored: AtomicBool,
    /// Failed flushes or checkpoints (the engine keeps running in memory).
    pub failures: AtomicU64,
    /// The flush interval in force (ns), after stretching.
    pub flush_interval_ns: AtomicU64,
    /// The segment size in force (bytes), after stretching.
    pub segment_bytes: AtomicU64,
    /// The last failure, while persistence is degraded (cleared by a success).
    pub degraded: Mutex<Option<String>>,
    /// Why the budget cannot be kept at this load, while that is so.
    pub over_budget: Mutex<Option<String>>,
    /// Node updates merged into a newer one of the same (name, key) before
    /// they could be logged: history lost to a backlog, so persistence is
    /// reported degraded while this is not zero.
    pub merged: AtomicU64,
}

impl PersistStats {
    /// The problem persistence has now, if any.
    pub fn problem(&self) -> Option<String> {
        const POISONED: &str = "internal error: a persistence thread failed while it reported \
             its status; restart dav2d (the log has the failure)";
        let read = |slot: &Mutex<Option<String>>| match slot.lock() {
            Ok(problem) => problem.clone(),
            Err(_) => Some(POISONED.to_string()),
        };
        read(&self.degraded)
            .or_else(|| read(&self.over_budget))
            .or_else(|| {
                let merged = self.merged.load(Ordering::Relaxed);
                (merged > 0).then(|| {
                    format!(
                        "{merged} node updates were merged into newer ones before they could be logged; persistence cannot keep up with this load (their newest values are kept)"
                    )
                })
            })
    }

    fn set_problem(&self, problem: Option<String>) {
        if let Ok(mut degraded) = self.degraded.lock() {
            *degraded = problem;
        }
    }

    /// Sets or clears the budget problem; true when it changed.
    fn set_over_budget(&self, problem: Option<String>) -> bool {
        match self.over_budget.lock() {
            Ok(mut slot) if *slot != problem => {
                *slot = problem;
                true
            }
            _ => false,
        }
    }
}

/// Drains a graph's updates into a store on a budgeted schedule. Call
/// [`Persister::step`] in a loop; it says how long to wait before the next
/// call.
pub struct Persister {
    store: Store,
    updates: Subscription,
    base: Schedule,
    now: Schedule,
    stats: Arc<PersistStats>,
    per_flush: f64,
    next_flush: i64,
    next_checkpoint: i64,
    rate: f64,
    rate_from: (i64, u64),
    /// The graph's settled-wave counter, when durable marks are kept.
    settled: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// The settled mark everything logged so far covers.
    logged_mark: u64,
    /// The settled mark the last successful flush covered.
    durable_mark: u64,
}

/// How often [`Persister::step`] wants to run at most, to drain updates
/// into the log's buffer between flushes (ns).
pub const DRAIN_INTERVAL_NS: i64 = 20_000_000;

impl Persister {
    /// Opens the store in `dir`, restores `graph` from it, and subscribes
    /// to every node's output (constraint states included) and the raw
    /// `streams` listed. The subscription exists before this returns, so no
    /// update made after it is missed.
    pub fn open(
        dir: &std::path::Path,
        options: StoreOptions,
        schedule: Schedule,
        streams: &[String],
        graph: &SharedGraph,
        stats: Arc<PersistStats>,
    ) -> Result<(Persister, Restored), StoreError> {
        Self::open_as(dir, options, schedule, streams, graph, stats, true)
    }

    /// As [`Persister::open`], beside a graph that already runs (a store a
    /// hot reload started): nothing is restored into the graph, and its
    /// live state is checkpointed at once ([`Store::open_beside`]); what it
    /// restored is nothing.
    pub fn open_beside(
        dir: &std::path::Path,
        options: StoreOptions,
        schedule: Schedule,
        streams: &[String],
        graph: &SharedGraph,
        stats: Arc<PersistStats>,
    ) -> Result<(Persister, Restored), StoreError> {
        Self::open_as(dir, options, schedule, streams, graph, stats, false)
    }

    fn open_as(
        dir: &std::path::Path,
        options: StoreOptions,
        schedule: Schedule,
        streams: &[String],
        graph: &SharedGraph,
        stats: Arc<PersistStats>,
        restore: bool,
    ) -> Result<(Persister, Restored), StoreError> {
        let fsync = options.wal.fsync;
        let backlog = options.backlog.max(1);
        let pixels = options.pixels.clone();
        let mut locked = graph.lock();
        let nodes: Vec<String> = locked.nodes().into_iter().map(|n| n.name).collect();
        for name in &pixels {
            if locked.stream_id(name).is_none() && !nodes.contains(name) {
                return Err(StoreError::Names(format!(
                    "persistence.pixels names '{name}', which is neither a stream nor a node of the graph"
                )));
            }
        }
        let clock = Arc::clone(locked.clock());
        let (store, restored) = if restore {
            let opened = Store::open(dir, options, clock, &mut locked)?;
            // Readers see the restored state at once, not after the next sample.
            locked.run_wave();
            opened
        } else {
            (
                Store::open_beside(dir, options, clock)?,
                Restored::default(),
            )
        };
        stats
            .replayed
            .store(restored.replayed as u64, Ordering::Relaxed);
        stats.restored.store(restored.checkpoint, Ordering::Relaxed);
        let mut names = nodes;
        // A raw stream whose pixels are kept is logged like those listed.
        let raw_pixels = pixels.iter().filter(|name| !names.contains(name));
        let raw_pixels: Vec<String> = raw_pixels.cloned().collect();
        for stream in streams.iter().chain(&raw_pixels) {
            if names.contains(stream) {
                continue;
            }
            if locked.stream_id(stream).is_none() {
                return Err(StoreError::Names(format!(
                    "persistence.streams names '{stream}', which is not a stream of the graph"
                )));
            }
            names.push(stream.clone());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let updates = locked
            .subscribe_many(&names, dav2d_core::SubscriptionMode::Lossless, backlog)
            .map_err(|error| StoreError::Names(error.to_string()))?;
        drop(locked);
        let mut persister =
            Persister::new(store, updates, schedule, fsync, stats).with_marks(graph);
        if !restore {
            // The store holds another state than the graph's: record it now.
            persister.next_checkpoint = persister.store.ledger().now_ns();
        }
        Ok((persister, restored))
    }

    /// A persister writing `updates` (a subscription to the names to keep)
    /// into `store` on `schedule`, reporting into `stats`.
    pub fn new(
        mut store: Store,
        updates: Subscription,
        schedule: Schedule,
        fsync: Fsync,
        stats: Arc<PersistStats>,
    ) -> Persister {
        let now = store.ledger().now_ns();
        store.set_segment_bytes(schedule.segment_bytes);
        stats
            .budget
            .store(store.ledger().budget(), Ordering::Relaxed);
        stats
            .flush_interval_ns
            .store(schedule.flush_interval_ns.max(0) as u64, Ordering::Relaxed);
        stats
            .segment_bytes
            .store(schedule.segment_bytes, Ordering::Relaxed);
        let logged = store.logged_bytes();
        let replayed = store.logged_since_checkpoint();
        Persister {
            store,
            updates,
            base: schedule,
            now: schedule,
            stats,
            per_flush: if fsync == Fsync::Off { 1.0 } else { 2.0 },
            next_flush: now.saturating_add(schedule.flush_interval_ns),
            // A start that replayed a log checkpoints at once, so that log is
            // not replayed again by the next start.
            next_checkpoint: if replayed > 0 {
                now
            } else {
                now.saturating_add(schedule.checkpoint_interval_ns)
            },
            rate: 0.0,
            rate_from: (now, logged),
            settled: None,
            logged_mark: 0,
            durable_mark: 0,
        }
    }

    /// Keeps durable marks against `graph`'s settled waves (see
    /// [`Persister::durable_mark`]).
    pub fn with_marks(mut self, graph: &SharedGraph) -> Persister {
        let counter = graph.lock().settled_counter();
        let now = counter.load(Ordering::Acquire);
        self.logged_mark = now;
        self.durable_mark = now;
        self.settled = Some(counter);
        self
    }

    /// The graph's settled-wave mark the last successful flush covers: every
    /// update of a wave up to it is on disk.
    pub fn durable_mark(&self) -> u64 {
        self.durable_mark
    }

    /// Flushes the log, moving the durable mark up to what was logged.
    fn flush(&mut self) -> Result<usize, StoreError> {
        let mark = self.logged_mark;
        let flushed = self.store.flush()?;
        self.durable_mark = mark;
        self.stats
            .flushed
            .fetch_add(flushed as u64, Ordering::Relaxed);
        Ok(flushed)
    }

    /// The schedule in force now (after stretching).
    pub fn schedule(&self) -> Schedule {
        self.now
    }

    /// The store.
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    fn drain(&mut self) -> Result<(), StoreError> {
        // Read before draining empty: every update of a wave up to `mark`
        // was offered before it was stored, so the loop below logs it.
        let mark = self
            .settled
            .as_ref()
            .map(|settled| settled.load(Ordering::Acquire));
        while let Some(update) = self.updates.try_next() {
            self.store.log(&update)?;
        }
        if let Some(mark) = mark {
            self.logged_mark = mark;
        }
        let merged = self.updates.conflated();
        let before = self.stats.merged.swap(merged, Ordering::Relaxed);
        if merged > before {
            tracing::warn!(
                merged = merged - before,
                "Node updates merged before they could be logged: persistence is behind."
            );
        }
        Ok(())
    }

    fn report(&self, result: Result<(), StoreError>, what: &str) {
        match result {
            Ok(()) => self.stats.set_problem(None),
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.set_problem(Some(error.to_string()));
                tracing::error!(%error, "{what} failed; the engine keeps running in memory and it is retried.");
            }
        }
    }

    /// Re-plans the schedule from the write rate and what is left of the
    /// day's budget. Returns false when the budget is spent. Reports (and
    /// clears) the case where keeping within the budget would stretch the
    /// flush interval past [`MAX_FLUSH_INTERVAL_NS`].
    fn plan(&mut self, now: i64) -> bool {
        let logged = self.store.logged_bytes();
        let (since, bytes) = self.rate_from;
        if now > since {
            let instant = (logged - bytes) as f64 / (now - since) as f64;
            // Rising load is believed at once, falling load slowly.
            self.rate = if instant > self.rate {
                instant
            } else {
                0.75 * self.rate + 0.25 * instant
            };
            self.rate_from = (now, logged);
        }
        let ledger = self.store.ledger();
        let remaining = ledger.remaining_today();
        let budget = ledger.budget();
        let day_left = ledger.day_left_ns();
        if (remaining as f64) < self.per_flush {
            let used = budget.saturating_sub(remaining);
            let problem = format!(
                "the daily file-action budget is spent: {used} of {budget} used today \
                 (persistence.max_file_actions_per_day); updates are held in memory and \
                 written after midnight UTC. Raise persistence.max_file_actions_per_day \
                 or persist fewer streams"
            );
            if self.stats.set_over_budget(Some(problem.clone())) {
                tracing::error!("{problem}");
            }
            return false;
        }
        let stretch = self
            .base
            .stretch_for(self.rate, self.per_flush, remaining, budget, day_left);
        let planned = self.base.stretched(stretch);
        if planned.segment_bytes != self.now.segment_bytes {
            self.store.set_segment_bytes(planned.segment_bytes);
        }
        if stretch > 1.0 && self.now.flush_interval_ns != planned.flush_interval_ns {
            tracing::debug!(
                stretch,
                flush_interval_ms = planned.flush_interval_ns / 1_000_000,
                segment_mib = planned.segment_bytes >> 20,
                "The persistence schedule is stretched to keep within the file-action budget."
            );
        }
        let problem = (planned.flush_interval_ns > MAX_FLUSH_INTERVAL_NS).then(|| {
            format!(
                "cannot keep within the daily file-action budget at this load: {} of {budget} \
                 used today (persistence.max_file_actions_per_day) and keeping within it \
                 means flushing only every {} min, so a crash could lose that much. Raise \
                 persistence.max_file_actions_per_day or persist fewer streams",
                budget.saturating_sub(remaining),
                planned.flush_interval_ns / 60_000_000_000
            )
        });
        if self.stats.set_over_budget(problem.clone()) {
            match problem {
                Some(problem) => tracing::error!("{problem}"),
                None => tracing::info!("Persistence keeps within its file-action budget again."),
            }
        }
        self.now = planned;
        self.stats
            .flush_interval_ns
            .store(planned.flush_interval_ns.max(0) as u64, Ordering::Relaxed);
        self.stats
            .segment_bytes
            .store(planned.segment_bytes, Ordering::Relaxed);
        true
    }

    /// One round: moves new updates into the log's buffer, flushes when the
    /// flush is due, checkpoints when that is due (or `stopping`, which
    /// also flushes and checkpoints whatever is left). Returns ns until the
    /// next flush or checkpoint is due; call again sooner (every
    /// [`DRAIN_INTERVAL_NS`]) to keep draining updates.
    pub fn step(&mut self, graph: &SharedGraph, stopping: bool) -> i64 {
        let drained = self.drain();
        if drained.is_err() {
            self.report(drained, "Logging updates");
        }
        let now = self.store.ledger().now_ns();
        if now >= self.next_flush || stopping {
            if self.plan(now) {
                let flushed = self.flush();
                self.report(flushed.map(|_| ()), "A flush");
                self.next_flush = now.saturating_add(self.now.flush_interval_ns);
            } else {
                let day_left = self.store.ledger().day_left_ns();
                self.next_flush = now.saturating_add(day_left.min(60_000_000_000));
            }
        }
        let checkpoint_due = now >= self.next_checkpoint || stopping;
        if checkpoint_due
            && self.store.logged_since_checkpoint() > 0
            && self.budget_allows_checkpoint()
        {
            let result = self.checkpoint(graph);
            if result.is_ok() {
                self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            self.report(result, "A checkpoint");
            self.next_checkpoint = now.saturating_add(self.now.checkpoint_interval_ns);
        } else if checkpoint_due {
            self.next_checkpoint = now.saturating_add(self.now.checkpoint_interval_ns);
        }
        let used = self.store.ledger().used_today();
        self.stats.file_actions_today.store(used, Ordering::Relaxed);
        if stopping && self.store.pending() > 0 {
            tracing::error!(
                records = self.store.pending(),
                "Stopping with records not persisted (see the errors above)."
            );
        }
        self.next_flush
            .min(self.next_checkpoint)
            .saturating_sub(now)
            .max(0)
    }

    /// Updates delivered to the persister's subscription and not yet logged
    /// (the runner drains every [`DRAIN_INTERVAL_NS`] so this stays small).
    pub fn undrained(&self) -> usize {
        self.updates.pending()
    }

    /// Moves every delivered update into the log and flushes now, whatever
    /// the schedule (still within the budget: nothing is written when it
    /// is spent). Returns how many records became durable.
    pub fn flush_now(&mut self) -> Result<usize, StoreError> {
        self.drain()?;
        if (self.store.ledger().remaining_today() as f64) < self.per_flush {
            return Ok(0);
        }
        self.flush()
    }

    fn budget_allows_checkpoint(&mut self) -> bool {
        self.store.ledger().remaining_today() as f64 >= CHECKPOINT_ACTIONS
    }

    fn checkpoint(&mut self, graph: &SharedGraph) -> Result<(), StoreError> {
        let pending = {
            let locked = graph.lock();
            self.drain()?;
            self.flush()?;
            self.store.begin_checkpoint(&locked)?
        };
        self.store.finish_checkpoint(pending)
    }
}
