//! The `sinks:` entries of kind `webhook`: read from YAML, checked where
//! they are written, and resolved into [`WebhookConfig`].

use dav2d_component::Sink;
use dav2d_component::section::{
    ComponentSpec, ConfigError, SectionContext, SinkSection, SinkSetting, Spanned, component,
    names_read,
};
use serde::Deserialize;

use crate::{Format, WebhookConfig, check_url};

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

impl WebhookSinkSection {
    /// The sink's settings; `prefix` is where it is written.
    pub fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
    ) -> Result<WebhookConfig, ConfigError> {
        let url = self.url.value.trim();
        check_url(url).map_err(|m| context.error_at(&self.url, format!("{prefix}.url"), m))?;
        let mut config = WebhookConfig::new(url);
        config.names = self.names.iter().map(|n| n.value.clone()).collect();
        if let Some(format) = &self.format {
            config.format = Format::from_name(format.value.trim()).ok_or_else(|| {
                context.error_at(
                    format,
                    format!("{prefix}.format"),
                    format!(
                        "unknown format '{}'; expected json or alertmanager",
                        format.value
                    ),
                )
            })?;
        }
        if let Some(queue) = &self.queue {
            config.queue = context.within(queue, format!("{prefix}.queue"), 1, 1 << 20)?;
        }
        if let Some(tries) = &self.tries {
            config.tries = context.within(tries, format!("{prefix}.tries"), 1, 100)?;
        }
        if let Some(timeout) = context.duration(&self.timeout, format!("{prefix}.timeout"))? {
            config.timeout = timeout.max(std::time::Duration::from_millis(10));
        }
        Ok(config)
    }
}

impl SinkSetting for WebhookConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        component(name, "webhook", self.url.clone(), self.names.clone())
    }
}

impl SinkSection for WebhookSinkSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError> {
        Ok(Box::new(self.settings(context, at)?))
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        names_read(&self.names, at)
    }
}
