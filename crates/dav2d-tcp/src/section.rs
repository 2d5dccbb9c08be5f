//! The `tcp` section (the top-level one, and `sources:` entries of kind
//! `tcp`): read from YAML, checked where it is written, and resolved into
//! [`TcpConfig`].

use dav2d_component::Source;
use dav2d_component::section::{
    ComponentSpec, ConfigError, ListenSection, SectionContext, SourceSection, SourceSetting,
    Spanned, TlsSection, listener,
};
use serde::Deserialize;

use crate::TcpConfig;

/// The `tcp` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    /// The component's name, in a `sources:`/`sinks:` entry (its metrics label).
    pub name: Option<String>,
    /// Set false to run without the TCP server.
    pub enabled: Option<bool>,
    /// Address to bind, e.g. `127.0.0.1:7070`.
    pub bind: Option<Spanned<String>>,
    /// Longest line or frame, e.g. `1MiB`.
    pub max_line: Option<Spanned<String>>,
    /// Connections open at once (default 1024).
    pub max_connections: Option<Spanned<String>>,
    /// Close a connection that sends nothing this long (default 5m).
    pub idle_timeout: Option<Spanned<String>>,
    /// Close a connection that leaves a line unfinished this long (default 30s).
    pub partial_timeout: Option<Spanned<String>>,
    /// The token a connection's first line `AUTH <token>` must carry
    /// (default: `http.token`).
    pub token: Option<Spanned<String>>,
    /// Serve TLS: `{cert: path, key: path}` (PEM).
    pub tls: Option<TlsSection>,
}

impl TcpSection {
    /// The server's settings; `prefix` is where the section is written
    /// (`tcp`, `sources[1]`).
    pub fn resolve(
        &self,
        context: &SectionContext,
        prefix: &str,
    ) -> Result<TcpConfig, ConfigError> {
        let defaults = TcpConfig::default();
        let token = context.token_or_default(&self.token, &format!("{prefix}.token"))?;
        let max_line = context
            .size(&self.max_line, &format!("{prefix}.max_line"))?
            .unwrap_or(defaults.max_line);
        if max_line > u32::MAX as usize
            && let Some(text) = &self.max_line
        {
            return Err(context.error_at(
                text,
                format!("{prefix}.max_line"),
                format!("{max_line} is more than a binary unit can carry (4 GiB - 1)"),
            ));
        }
        let written = ListenSection {
            bind: &self.bind,
            max_connections: &self.max_connections,
            tls: &self.tls,
        };
        Ok(TcpConfig {
            listen: context.listen(written, token, prefix, &defaults.listen)?,
            max_line,
            idle_timeout: context
                .duration(&self.idle_timeout, format!("{prefix}.idle_timeout"))?
                .unwrap_or(defaults.idle_timeout),
            partial_timeout: context
                .duration(&self.partial_timeout, format!("{prefix}.partial_timeout"))?
                .unwrap_or(defaults.partial_timeout),
        })
    }
}

impl SourceSetting for TcpConfig {
    fn build(&self, name: &str, setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name, setting))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        listener(name, "tcp", self.listen.bind, &self.listen.token)
    }
}

impl SourceSection for TcpSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        Ok(Box::new(TcpSection::resolve(self, context, at)?))
    }
}
