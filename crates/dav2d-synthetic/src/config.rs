//! The synthetic fleet's settings and the one function that builds the
//! component from them.

use crate::SyntheticSource;

/// The most devices one synthetic source simulates.
pub const MAX_DEVICES: usize = 1_000_000;

/// A fleet of synthetic devices reporting to one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// The stream to push to.
    pub stream: String,
    /// Number of devices (keys `dev-000` ...).
    pub devices: usize,
    /// Samples per device per second.
    pub rate_hz: f64,
    /// Mean value.
    pub base: f64,
    /// Noise amplitude.
    pub noise: f64,
    /// Drift per minute, random walk amplitude.
    pub drift_per_minute: f64,
    /// Expected overheating episodes per device per hour.
    pub overheat_per_hour: f64,
    /// Expected silent spells per device per hour.
    pub dropout_per_hour: f64,
    /// Random seed.
    pub seed: u64,
    /// Stop sending after this many steps (one sample per device each) and
    /// stay idle until stopped: a bounded run, e.g. for a demo that should
    /// end in a known state. `None` sends until stopped.
    pub steps: Option<u64>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            stream: String::new(),
            devices: 100,
            rate_hz: 100.0,
            base: 60.0,
            noise: 0.5,
            drift_per_minute: 0.0,
            overheat_per_hour: 0.0,
            dropout_per_hour: 0.0,
            seed: 0,
            steps: None,
        }
    }
}

impl SyntheticConfig {
    /// Checks the numbers: at least one device, a rate in (0, 100000] Hz.
    pub fn validate(&self) -> Result<(), String> {
        let rate_ok = self.rate_hz > 0.0 && self.rate_hz <= 100_000.0;
        if !rate_ok || !(1..=MAX_DEVICES).contains(&self.devices) {
            return Err(format!(
                "a synthetic source needs 1 <= devices <= {MAX_DEVICES} and 0 < rate_hz <= 100000, got devices={} rate_hz={}",
                self.devices, self.rate_hz
            ));
        }
        let finite = [
            self.base,
            self.noise,
            self.drift_per_minute,
            self.overheat_per_hour,
            self.dropout_per_hour,
        ];
        if finite.iter().any(|v| !v.is_finite()) {
            return Err("base, noise, drift_per_minute, overheat_per_hour and dropout_per_hour must be finite numbers".to_string());
        }
        Ok(())
    }

    /// The component these settings describe, named `name`.
    pub fn build(self, name: &str) -> SyntheticSource {
        SyntheticSource {
            name: name.to_string(),
            config: self,
        }
    }
}
