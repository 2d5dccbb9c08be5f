//! Test support shared by the dav2d crates' tests (a dev-dependency only):
//! waiting for a condition with a deadline, never sleeping a fixed time as
//! synchronisation (a wait that times out panics naming what it waited
//! for), and reading a gauge out of `/metrics`.

use std::time::{Duration, Instant};

/// How long a wait gives a condition by default: generous, because the
/// debug build on a loaded 2-core machine is slow; a condition that holds
/// returns at once.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Calls `check` until it returns `Some`, and returns that; panics naming
/// `what` after [`DEADLINE`]. Between calls it yields briefly (a poll
/// interval, not a timing: nothing depends on how long it is).
pub fn wait_until<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_until_within(what, DEADLINE, check)
}

/// [`wait_until`] with its own deadline.
pub fn wait_until_within<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `condition` comes to hold within `deadline`, for a caller that
/// reports an unmet condition itself (with what is still missing).
pub fn holds_within(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `condition` holds (see [`wait_until`]).
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    wait_until(what, || condition().then_some(()));
}

/// The value of the gauge `name` in the Prometheus text `metrics` (its
/// line `name{labels} value`); 0 when there is none. Panics on a value
/// that is not a whole number, naming the line.
pub fn gauge_in(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (_, value) = rest.split_once("} ")?;
            Some(
                value
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("gauge line {line:?}: {e}")),
            )
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_is_read_by_its_whole_name() {
        let metrics = "# TYPE dav2d_cluster_partitions_owned gauge\n\
                       dav2d_cluster_partitions_owned_max{kind=\"cluster\"} 9\n\
                       dav2d_cluster_partitions_owned{component=\"cluster\",kind=\"cluster\"} 4\n";
        assert_eq!(gauge_in(metrics, "dav2d_cluster_partitions_owned"), 4);
        assert_eq!(gauge_in(metrics, "dav2d_cluster_members"), 0);
    }

    #[test]
    fn a_condition_that_holds_returns_its_value_and_one_that_never_does_panics() {
        let mut calls = 0;
        let value = wait_until("the third call", || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(value, 3);
        let never = std::panic::catch_unwind(|| {
            wait_until_within("nothing", Duration::from_millis(20), || None::<()>)
        });
        assert!(never.is_err());
    }
}
