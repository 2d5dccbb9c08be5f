//! Constraints: per-key alert state machines with hysteresis, debounce and a
//! deadman timer.
//!
//! A constraint reads one numeric input. Its state per key (`ok`, `tripped`,
//! `stale`) is written to a stream named after the constraint, so it can be
//! subscribed to, persisted and even used as the input of other nodes; every
//! change of state is a [`Transition`].

use std::fmt;
use std::sync::Arc;

/// Which side of the thresholds is the alert side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Trips when the value rises to `trip` or above, resets at `reset` or below.
    #[default]
    Above,
    /// Trips when the value falls to `trip` or below, resets at `reset` or above.
    Below,
}

/// The parameters of a constraint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstraintSpec {
    /// Threshold that trips the alert.
    pub trip: f64,
    /// Threshold that clears it (hysteresis); defaults to `trip`.
    pub reset: Option<f64>,
    /// Which side of the thresholds alerts.
    pub direction: Direction,
    /// How long the trip condition must hold before tripping, in ns.
    pub hold_ns: i64,
    /// A key with no update for this long becomes `stale`, in ns.
    pub stale_after_ns: Option<i64>,
}

impl ConstraintSpec {
    /// A constraint tripping above `trip` with no hysteresis or timers.
    pub fn above(trip: f64) -> Self {
        Self {
            trip,
            reset: None,
            direction: Direction::Above,
            hold_ns: 0,
            stale_after_ns: None,
        }
    }

    /// The reset threshold in effect.
    pub fn reset_threshold(&self) -> f64 {
        self.reset.unwrap_or(self.trip)
    }

    /// Whether the constraint needs the clock (`for` or `stale_after` set).
    pub fn has_timers(&self) -> bool {
        self.hold_ns > 0 || self.stale_after_ns.is_some()
    }

    /// Checks the thresholds and timers, returning what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let reset = self.reset_threshold();
        if !self.trip.is_finite() || !reset.is_finite() {
            return Err(format!(
                "thresholds must be finite, got trip={} reset={reset}",
                self.trip
            ));
        }
        match self.direction {
            Direction::Above if reset > self.trip => Err(format!(
                "an 'above' constraint needs reset <= trip, got trip={} reset={reset}",
                self.trip
            )),
            Direction::Below if reset < self.trip => Err(format!(
                "a 'below' constraint needs reset >= trip, got trip={} reset={reset}",
                self.trip
            )),
            _ if self.hold_ns < 0 => Err("'for' must not be negative".to_string()),
            _ if self.stale_after_ns.is_some_and(|s| s <= 0) => {
                Err("'stale_after' must be positive".to_string())
            }
            _ => Ok(()),
        }
    }

    fn trips(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value >= self.trip,
            Direction::Below => value <= self.trip,
        }
    }

    fn resets(&self, value: f64) -> bool {
        let reset = self.reset_threshold();
        match self.direction {
            Direction::Above => value <= reset && !self.trips(value),
            Direction::Below => value >= reset && !self.trips(value),
        }
    }
}

/// The state of a constraint for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConstraintState {
    /// Within limits.
    #[default]
    Ok,
    /// Alerting.
    Tripped,
    /// No update for longer than `stale_after`.
    Stale,
}

impl ConstraintState {
    /// The state as written to the constraint's stream.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintState::Ok => "ok",
            ConstraintState::Tripped => "tripped",
            ConstraintState::Stale => "stale",
        }
    }

    /// The state written as `name` (see [`ConstraintState::as_str`]).
    pub fn from_name(name: &str) -> Option<ConstraintState> {
        [
            ConstraintState::Ok,
            ConstraintState::Tripped,
            ConstraintState::Stale,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

impl fmt::Display for ConstraintState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of a constraint's state for one key.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The constraint's name.
    pub constraint: Arc<str>,
    /// The key.
    pub key: Arc<str>,
    /// State before.
    pub from: ConstraintState,
    /// State after.
    pub to: ConstraintState,
    /// The input value that caused it (`None` for timer transitions to stale).
    pub value: Option<f64>,
    /// When it happened, in ns since the epoch (engine clock).
    pub at_ns: i64,
    /// What caused it when not a sample or a timer: `reload` (new
    /// parameters applied to a running constraint).
    pub cause: Option<&'static str>,
}

/// Per-key memory of a constraint, including its timers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConstraintKeyState {
    /// Current state.
    pub state: ConstraintState,
    /// Since when the trip condition has held without tripping yet.
    pub holding_since_ns: Option<i64>,
    /// When the input last updated (engine clock).
    pub last_update_ns: i64,
    /// The last input value seen.
    pub last_value: f64,
}

impl ConstraintKeyState {
    /// Applies a new input value at `now_ns`, returning the new state if it changed.
    pub fn on_value(
        &mut self,
        spec: &ConstraintSpec,
        value: f64,
        now_ns: i64,
    ) -> Option<ConstraintState> {
        self.last_update_ns = now_ns;
        self.last_value = value;
        let before = self.state;
        if self.state == ConstraintState::Stale {
            self.state = ConstraintState::Ok;
        }
        match self.state {
            ConstraintState::Ok | ConstraintState::Stale => {
                if spec.trips(value) {
                    let since = *self.holding_since_ns.get_or_insert(now_ns);
                    if now_ns - since >= spec.hold_ns {
                        self.state = ConstraintState::Tripped;
                        self.holding_since_ns = None;
                    }
                } else {
                    self.holding_since_ns = None;
                }
            }
            ConstraintState::Tripped => {
                if spec.resets(value) {
                    self.state = ConstraintState::Ok;
                }
            }
        }
        (self.state != before).then_some(self.state)
    }

    /// Applies the passage of time (debounce and deadman), returning the new
    /// state if it changed.
    pub fn on_tick(&mut self, spec: &ConstraintSpec, now_ns: i64) -> Option<ConstraintState> {
        if let Some(stale_after) = spec.stale_after_ns
            && self.state != ConstraintState::Stale
            && now_ns - self.last_update_ns >= stale_after
        {
            self.state = ConstraintState::Stale;
            self.holding_since_ns = None;
            return Some(self.state);
        }
        if self.state == ConstraintState::Ok
            && let Some(since) = self.holding_since_ns
            && now_ns - since >= spec.hold_ns
        {
            self.state = ConstraintState::Tripped;
            self.holding_since_ns = None;
            return Some(self.state);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    /// Feeds `(time_ms, Some(value) | None for a tick)` and checks the state
    /// after each step.
    fn check(spec: ConstraintSpec, steps: &[(i64, Option<f64>, ConstraintState)]) {
        let mut key = ConstraintKeyState::default();
        for (i, &(at_ms, value, expected)) in steps.iter().enumerate() {
            match value {
                Some(v) => {
                    key.on_value(&spec, v, at_ms * MS);
                }
                None => {
                    key.on_tick(&spec, at_ms * MS);
                }
            }
            assert_eq!(
                key.state, expected,
                "step {i}: at {at_ms} ms value {value:?}"
            );
        }
    }

    use ConstraintState::{Ok, Stale, Tripped};

    #[test]
    fn hysteresis_holds_between_thresholds() {
        let spec = ConstraintSpec {
            reset: Some(75.0),
            ..ConstraintSpec::above(80.0)
        };
        check(
            spec,
            &[
                (0, Some(70.0), Ok),
                (1, Some(80.0), Tripped),
                (2, Some(77.0), Tripped),
                (3, Some(75.0), Ok),
                (4, Some(79.0), Ok),
            ],
        );
    }

    #[test]
    fn below_direction_mirrors_above() {
        let spec = ConstraintSpec {
            reset: Some(15.0),
            direction: Direction::Below,
            ..ConstraintSpec::above(10.0)
        };
        check(
            spec,
            &[
                (0, Some(20.0), Ok),
                (1, Some(10.0), Tripped),
                (2, Some(12.0), Tripped),
                (3, Some(16.0), Ok),
            ],
        );
    }

    #[test]
    fn hold_requires_the_condition_to_last() {
        let spec = ConstraintSpec {
            hold_ns: 100 * MS,
            ..ConstraintSpec::above(80.0)
        };
        check(
            spec,
            &[
                (0, Some(90.0), Ok),
                (50, Some(90.0), Ok),
                (60, Some(70.0), Ok),
                (70, Some(90.0), Ok),
                (169, None, Ok),
                (170, None, Tripped),
            ],
        );
    }

    #[test]
    fn stale_after_fires_on_silence_and_clears_on_data() {
        let spec = ConstraintSpec {
            stale_after_ns: Some(1000 * MS),
            ..ConstraintSpec::above(80.0)
        };
        check(
            spec,
            &[
                (0, Some(10.0), Ok),
                (999, None, Ok),
                (1000, None, Stale),
                (1100, Some(10.0), Ok),
                (1200, Some(90.0), Tripped),
            ],
        );
    }

    #[test]
    fn invalid_thresholds_are_explained() {
        let spec = ConstraintSpec {
            reset: Some(90.0),
            ..ConstraintSpec::above(80.0)
        };
        let error = spec.validate().err().unwrap_or_default();
        assert!(error.contains("reset <= trip"), "{error}");
    }
}
