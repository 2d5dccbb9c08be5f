//! The file-action ledger: every create, write batch, fsync, rename and
//! delete the store makes is counted against a daily budget.
//!
//! The system dav2d replaces hit a limit of 160,000 file actions a day
//! because each request set off its own cascade of file operations; the
//! store batches instead, and this ledger is how it knows where it stands.

use std::fmt;
use std::sync::Arc;

use dav2d_core::Clock;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// The kinds of file action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAction {
    /// Creating a file.
    Create,
    /// One write call (a whole group of records).
    Write,
    /// An fsync of a file or a directory.
    Fsync,
    /// A rename.
    Rename,
    /// A delete (or truncate).
    Delete,
}

impl FileAction {
    const ALL: [FileAction; 5] = [
        FileAction::Create,
        FileAction::Write,
        FileAction::Fsync,
        FileAction::Rename,
        FileAction::Delete,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The action's name, for metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Create => "create",
            FileAction::Write => "write",
            FileAction::Fsync => "fsync",
            FileAction::Rename => "rename",
            FileAction::Delete => "delete",
        }
    }
}

impl fmt::Display for FileAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One day's file-action counts, as a checkpoint keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerDay {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// Counts by kind: create, write, fsync, rename, delete.
    pub counts: [u64; 5],
}

impl LedgerDay {
    /// All actions that day.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The counts by kind.
    pub fn by_kind(&self) -> Vec<(FileAction, u64)> {
        FileAction::ALL
            .iter()
            .map(|&k| (k, self.counts[k.index()]))
            .collect()
    }
}

/// Counts file actions per UTC day against a budget.
pub struct Ledger {
    clock: Arc<dyn Clock>,
    budget: u64,
    day: i64,
    counts: [u64; 5],
    total: u64,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("budget", &self.budget)
            .field("day", &self.day)
            .field("counts", &self.counts)
            .finish()
    }
}

impl Ledger {
    /// The default daily budget (`persistence.max_file_actions_per_day`).
    pub const DEFAULT_BUDGET: u64 = 160_000;

    /// A ledger with `budget` actions per day, reading the day from `clock`.
    pub fn new(budget: u64, clock: Arc<dyn Clock>) -> Self {
        let day = clock.now_ns().div_euclid(DAY_NS);
        Self {
            clock,
            budget,
            day,
            counts: [0; 5],
            total: 0,
        }
    }

    fn roll(&mut self) {
        let day = self.clock.now_ns().div_euclid(DAY_NS);
        if day != self.day {
            self.day = day;
            self.counts = [0; 5];
        }
    }

    /// Today's counts, to keep in a checkpoint.
    pub fn snapshot(&mut self) -> LedgerDay {
        self.roll();
        LedgerDay {
            day: self.day,
            counts: self.counts,
        }
    }

    /// Adds the counts a checkpoint kept, if they are from today (a restart
    /// does not get a fresh budget). Actions after that checkpoint and
    /// before the restart are not known; the budget's reserve covers them.
    pub fn restore(&mut self, kept: LedgerDay) {
        self.roll();
        if kept.day == self.day {
            for (count, kept) in self.counts.iter_mut().zip(kept.counts) {
                *count += kept;
            }
        }
    }

    /// Counts `n` actions of `kind`.
    pub fn record(&mut self, kind: FileAction, n: u64) {
        self.roll();
        self.counts[kind.index()] += n;
        self.total += n;
    }

    /// Actions used today.
    pub fn used_today(&mut self) -> u64 {
        self.roll();
        self.counts.iter().sum()
    }

    /// Actions left today.
    pub fn remaining_today(&mut self) -> u64 {
        self.budget.saturating_sub(self.used_today())
    }

    /// Today's actions by kind.
    pub fn by_kind(&mut self) -> Vec<(FileAction, u64)> {
        self.roll();
        FileAction::ALL
            .iter()
            .map(|&k| (k, self.counts[k.index()]))
            .collect()
    }

    /// Every action counted since the ledger was made.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The daily budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The shortest interval between flushes that keeps the rest of today
    /// within the budget, when each flush costs `actions_per_flush` file
    /// actions: the store stretches its flush interval to this when load
    /// (or a small budget) would otherwise overspend. `None` when the budget
    /// is already spent.
    pub fn min_flush_interval_ns(&mut self, actions_per_flush: u64) -> Option<i64> {
        let remaining = self.remaining_today();
        if remaining < actions_per_flush.max(1) {
            return None;
        }
        let flushes = remaining / actions_per_flush.max(1);
        Some(self.day_left_ns() / flushes as i64)
    }

    /// The time now on the ledger's clock (ns since the epoch).
    pub fn now_ns(&self) -> i64 {
        self.clock.now_ns()
    }

    /// Nanoseconds left in the current UTC day.
    pub fn day_left_ns(&self) -> i64 {
        DAY_NS - self.clock.now_ns().rem_euclid(DAY_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dav2d_core::ManualClock;

    #[test]
    fn counts_reset_at_midnight_utc() {
        let clock = ManualClock::new(DAY_NS * 100 + DAY_NS - 10);
        let mut ledger = Ledger::new(10, Arc::new(clock.clone()));
        ledger.record(FileAction::Write, 3);
        ledger.record(FileAction::Fsync, 4);
        assert_eq!((ledger.used_today(), ledger.remaining_today()), (7, 3));
        assert_eq!(ledger.day_left_ns(), 10);
        clock.advance(10);
        assert_eq!((ledger.used_today(), ledger.remaining_today()), (0, 10));
        assert_eq!(ledger.total(), 7);
    }

    #[test]
    fn the_flush_interval_stretches_to_fit_the_budget() {
        // Noon UTC: half a day left, 160,000 actions, 2 per flush.
        let clock = ManualClock::new(DAY_NS * 10 + DAY_NS / 2);
        let mut ledger = Ledger::new(160_000, Arc::new(clock.clone()));
        let interval = ledger.min_flush_interval_ns(2).unwrap();
        assert_eq!(
            interval,
            (DAY_NS / 2) / 80_000,
            "80,000 flushes over 12 hours"
        );
        // Having spent most of the budget, the interval grows.
        ledger.record(FileAction::Write, 150_000);
        assert_eq!(
            ledger.min_flush_interval_ns(2).unwrap(),
            (DAY_NS / 2) / 5_000
        );
        ledger.record(FileAction::Fsync, 10_000);
        assert_eq!(
            ledger.min_flush_interval_ns(2),
            None,
            "spent: no flush fits"
        );
    }
}
