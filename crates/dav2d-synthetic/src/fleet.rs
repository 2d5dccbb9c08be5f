//! The synthetic sensor fleet: devices reporting a temperature with noise,
//! slow drift, occasional overheating episodes and silent spells.
//!
//! It is deterministic for a given seed, so demos and tests repeat.

use crate::config::SyntheticConfig;

struct Device {
    drift: f64,
    overheat_elapsed_s: f64,
    overheat_length_s: f64,
    overheat_peak: f64,
    silent_left_s: f64,
}

/// A fleet of synthetic devices; each [`SyntheticFleet::step`] yields one
/// sample per reporting device.
pub struct SyntheticFleet {
    config: SyntheticConfig,
    keys: Vec<String>,
    devices: Vec<Device>,
    rng: fastrand::Rng,
}

impl SyntheticFleet {
    /// A fleet as configured.
    pub fn new(config: &SyntheticConfig) -> Self {
        let width = config.devices.saturating_sub(1).to_string().len().max(3);
        let keys = (0..config.devices)
            .map(|i| format!("dev-{i:0width$}"))
            .collect();
        let devices = (0..config.devices)
            .map(|_| Device {
                drift: 0.0,
                overheat_elapsed_s: 0.0,
                overheat_length_s: 0.0,
                overheat_peak: 0.0,
                silent_left_s: 0.0,
            })
            .collect();
        Self {
            config: config.clone(),
            keys,
            devices,
            rng: fastrand::Rng::with_seed(config.seed),
        }
    }

    /// The stream the fleet reports to.
    pub fn stream(&self) -> &str {
        &self.config.stream
    }

    /// How many steps it sends before it idles (`None`: until stopped).
    pub fn steps(&self) -> Option<u64> {
        self.config.steps
    }

    /// The period between two steps, in seconds.
    pub fn period_s(&self) -> f64 {
        1.0 / self.config.rate_hz
    }

    /// The key of device `index`.
    pub fn key(&self, index: usize) -> &str {
        &self.keys[index]
    }

    /// Advances every device by one period and fills `devices` (indices, see
    /// [`SyntheticFleet::key`]) and `values` with the samples of the devices
    /// that report.
    pub fn step(&mut self, devices: &mut Vec<usize>, values: &mut Vec<f64>) {
        devices.clear();
        values.clear();
        let dt = self.period_s();
        let config = &self.config;
        let drift_step = config.drift_per_minute * (dt / 60.0).sqrt();
        let overheat_p = config.overheat_per_hour * dt / 3600.0;
        let dropout_p = config.dropout_per_hour * dt / 3600.0;
        for (index, device) in self.devices.iter_mut().enumerate() {
            let rng = &mut self.rng;
            if device.silent_left_s > 0.0 {
                device.silent_left_s -= dt;
                continue;
            }
            if rng.f64() < dropout_p {
                device.silent_left_s = 2.0 + rng.f64() * 4.0;
                continue;
            }
            device.drift = (device.drift + (rng.f64() - 0.5) * 2.0 * drift_step).clamp(-10.0, 10.0);
            if device.overheat_length_s == 0.0 && rng.f64() < overheat_p {
                device.overheat_length_s = 3.0 + rng.f64() * 7.0;
                device.overheat_elapsed_s = 0.0;
                device.overheat_peak = 25.0 + rng.f64() * 20.0;
            }
            let mut heat = 0.0;
            if device.overheat_length_s > 0.0 {
                // A triangle: ramp up for half the episode, then cool down.
                let phase = device.overheat_elapsed_s / device.overheat_length_s;
                heat = device.overheat_peak * (1.0 - (2.0 * phase - 1.0).abs());
                device.overheat_elapsed_s += dt;
                if device.overheat_elapsed_s >= device.overheat_length_s {
                    device.overheat_length_s = 0.0;
                }
            }
            let noise = (rng.f64() + rng.f64() + rng.f64() - 1.5) * config.noise;
            devices.push(index);
            values.push(config.base + device.drift + heat + noise);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_fleet_reports_every_device_and_sometimes_overheats() {
        let config = SyntheticConfig {
            stream: "temperature".into(),
            devices: 100,
            rate_hz: 100.0,
            base: 60.0,
            noise: 0.8,
            drift_per_minute: 1.5,
            overheat_per_hour: 120.0,
            dropout_per_hour: 30.0,
            seed: 7,
            steps: None,
        };
        let mut fleet = SyntheticFleet::new(&config);
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        let mut hottest = f64::MIN;
        let mut reported = 0;
        for _ in 0..6000 {
            fleet.step(&mut keys, &mut values);
            reported += keys.len();
            hottest = values.iter().copied().fold(hottest, f64::max);
        }
        assert!(reported > 6000 * 90, "most devices report: {reported}");
        assert!(
            hottest > 80.0,
            "in a simulated minute some device overheats: {hottest}"
        );
    }
}
