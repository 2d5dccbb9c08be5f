//! A log line at most once per period: what a component that may see the
//! same problem thousands of times a second (an oversized message, a
//! refused update) logs with, saying how many it held back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one log line through per period and counts the rest.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged
    /// now; `None` (and one more held back) otherwise.
    pub fn ready(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < self.every) {
            *held += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;
    use std::time::Duration;

    #[test]
    fn one_line_per_period_and_the_rest_counted() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!(throttle.ready(), None);
        assert_eq!(throttle.ready(), None);
        let open = Throttle::new(Duration::ZERO);
        assert_eq!(open.ready(), Some(0));
        assert_eq!(open.ready(), Some(0));
    }
}
