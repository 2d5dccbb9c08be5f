//! Test support shared by the dav2d crates' tests (a dev-dependency only):
//! waiting for a condition with a deadline, never sleeping a fixed time as
//! synchronisation. A wait that times out panics naming what it waited for.

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

#[cfg(test)]
mod tests {
    use super::*;

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
