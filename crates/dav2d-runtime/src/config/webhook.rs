//! The webhook sink's section (`sinks:` entries of kind `webhook`), checked
//! where it is written and resolved into the sink's settings.

use serde::Deserialize;

use dav2d_component::Sink;

use super::kind::{SinkSection, SinkSetting};
use super::{Config, ConfigError, Spanned};
use crate::spec::{ComponentSpec, component};

/// A webhook sink (`kind: webhook` in `sinks:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkSection {
    /// The component's name.
    pub name: Option<String>,
    /// `http://host:port/path` of the receiver.
    pub url: Spanned<String>,
    /// Constraints whose transitions are sent (default: every one).
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// `json` (dav2d's body, the default) or `alertmanager`.
    pub format: Option<Spanned<String>>,
    /// Transitions waiting to be sent, at most (default 1024).
    pub queue: Option<Spanned<usize>>,
    /// Tries per transition (default 5).
    pub tries: Option<Spanned<u32>>,
    /// How long one try may take, e.g. `5s` (the default).
    pub timeout: Option<Spanned<String>>,
}

impl Config {
    pub(crate) fn webhook_sink_from(
        &self,
        section: &WebhookSinkSection,
        prefix: &str,
    ) -> Result<dav2d_webhook::WebhookConfig, ConfigError> {
        let url = section.url.value.trim();
        dav2d_webhook::check_url(url)
            .map_err(|m| self.error_at(&section.url, format!("{prefix}.url"), m))?;
        let mut config = dav2d_webhook::WebhookConfig::new(url);
        config.names = section.names.iter().map(|n| n.value.clone()).collect();
        if let Some(format) = &section.format {
            config.format =
                dav2d_webhook::Format::from_name(format.value.trim()).ok_or_else(|| {
                    self.error_at(
                        format,
                        format!("{prefix}.format"),
                        format!(
                            "unknown format '{}'; expected json or alertmanager",
                            format.value
                        ),
                    )
                })?;
        }
        if let Some(queue) = &section.queue {
            if !(1..=1 << 20).contains(&queue.value) {
                return Err(self.error_at(
                    queue,
                    format!("{prefix}.queue"),
                    format!("{} is out of range; give 1 to 1048576", queue.value),
                ));
            }
            config.queue = queue.value;
        }
        if let Some(tries) = &section.tries {
            if !(1..=100).contains(&tries.value) {
                return Err(self.error_at(
                    tries,
                    format!("{prefix}.tries"),
                    format!("{} is out of range; give 1 to 100", tries.value),
                ));
            }
            config.tries = tries.value;
        }
        if let Some(timeout) = self.duration(&section.timeout, format!("{prefix}.timeout"))? {
            config.timeout = timeout.max(std::time::Duration::from_millis(10));
        }
        Ok(config)
    }
}

impl SinkSetting for dav2d_webhook::WebhookConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: self.url.clone(),
            ..component(name, "webhook", self.names.clone())
        }
    }
}

impl SinkSection for WebhookSinkSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError> {
        Ok(Box::new(config.webhook_sink_from(self, at)?))
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        super::kind::names_read(&self.names, at)
    }
}
