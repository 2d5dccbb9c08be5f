//! The `sources:` entries of kind `synthetic`: read from YAML, checked, and
//! resolved into [`SyntheticConfig`] with its defaults filled in.

use dav2d_component::Source;
use dav2d_component::section::{
    ComponentSpec, ConfigError, Declared, SectionContext, SourceSection, SourceSetting, Spanned,
    component,
};
use serde::Deserialize;

use crate::SyntheticConfig;

/// A synthetic sensor fleet (`kind: synthetic`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSection {
    /// The component's name.
    pub name: Option<String>,
    /// The stream to push to.
    pub stream: Spanned<String>,
    /// Number of devices (keys `dev-000` ...).
    pub devices: Option<usize>,
    /// Samples per device per second.
    pub rate_hz: Option<f64>,
    /// Mean value.
    pub base: Option<f64>,
    /// Noise amplitude.
    pub noise: Option<f64>,
    /// Drift per minute, random walk amplitude.
    pub drift_per_minute: Option<f64>,
    /// Expected overheating episodes per device per hour.
    pub overheat_per_hour: Option<f64>,
    /// Expected silent spells per device per hour.
    pub dropout_per_hour: Option<f64>,
    /// Random seed.
    pub seed: Option<u64>,
    /// Stop sending after this many steps (default: never).
    pub steps: Option<u64>,
}

impl SyntheticSection {
    /// The fleet's settings, defaults filled in.
    pub fn settings(&self) -> SyntheticConfig {
        let defaults = SyntheticConfig::default();
        SyntheticConfig {
            stream: self.stream.value.clone(),
            devices: self.devices.unwrap_or(defaults.devices),
            rate_hz: self.rate_hz.unwrap_or(defaults.rate_hz),
            base: self.base.unwrap_or(defaults.base),
            noise: self.noise.unwrap_or(defaults.noise),
            drift_per_minute: self.drift_per_minute.unwrap_or(defaults.drift_per_minute),
            overheat_per_hour: self.overheat_per_hour.unwrap_or(defaults.overheat_per_hour),
            dropout_per_hour: self.dropout_per_hour.unwrap_or(defaults.dropout_per_hour),
            seed: self.seed.unwrap_or(defaults.seed),
            steps: self.steps,
        }
    }
}

impl SourceSetting for SyntheticConfig {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        let address = format!("{} devices at {} Hz", self.devices, self.rate_hz);
        component(name, "synthetic", address, vec![self.stream.clone()])
    }
}

impl SourceSection for SyntheticSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        let fleet = self.settings();
        fleet
            .validate()
            .map_err(|message| context.error_at(kind, at.to_string(), message))?;
        Ok(Box::new(fleet))
    }

    fn declares(&self, at: &str) -> Vec<Declared<'_>> {
        vec![Declared::stream(&self.stream, at, false)]
    }
}
