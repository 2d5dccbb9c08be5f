//! The `http` section (the top-level one, and `sources:` entries of kind
//! `http`): read from YAML, checked where it is written, and resolved into
//! [`HttpConfig`].

use dav2d_component::Source;
use dav2d_component::section::{
    ComponentSpec, ConfigError, ListenSection, SectionContext, SourceSection, SourceSetting,
    Spanned, TlsSection, listener,
};
use serde::Deserialize;

use crate::HttpConfig;

/// The `http` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// The component's name, in a `sources:`/`sinks:` entry (its metrics label).
    pub name: Option<String>,
    /// Set false to run without the HTTP API.
    pub enabled: Option<bool>,
    /// Address to bind, e.g. `127.0.0.1:8080`.
    pub bind: Option<Spanned<String>>,
    /// Largest body accepted, e.g. `64MiB` or a number of bytes.
    pub max_body: Option<Spanned<String>>,
    /// Bearer token required by every endpoint but `/healthz`.
    pub token: Option<Spanned<String>>,
    /// Time allowed for request headers, e.g. `10s`.
    pub header_timeout: Option<Spanned<String>>,
    /// Time allowed for a request body, e.g. `30s`.
    pub body_timeout: Option<Spanned<String>>,
    /// Connections open at once (default 1024).
    pub max_connections: Option<Spanned<String>>,
    /// Serve HTTPS: `{cert: path, key: path}` (PEM).
    pub tls: Option<TlsSection>,
    /// Host names besides IP literals and `localhost` a request may name
    /// without a token.
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins whose pages may call this server from a browser, e.g.
    /// `https://dashboard.example` (every other cross-site request is refused).
    pub allowed_origins: Option<Vec<String>>,
}

impl HttpSection {
    /// The server's settings; `prefix` is where the section is written
    /// (`http`, `sources[1]`). The top-level section has no token to
    /// default to; an entry's token defaults to the top-level one.
    pub fn resolve(
        &self,
        context: &SectionContext,
        prefix: &str,
    ) -> Result<HttpConfig, ConfigError> {
        let defaults = HttpConfig::default();
        let token = context.token_or_default(&self.token, &format!("{prefix}.token"))?;
        let written = ListenSection {
            bind: &self.bind,
            max_connections: &self.max_connections,
            tls: &self.tls,
        };
        let listen = context.listen(written, token, prefix, &defaults.listen)?;
        let config = HttpConfig {
            listen,
            max_body: context
                .size(&self.max_body, &format!("{prefix}.max_body"))?
                .unwrap_or(defaults.max_body),
            header_timeout: context
                .duration(&self.header_timeout, format!("{prefix}.header_timeout"))?
                .unwrap_or(defaults.header_timeout),
            body_timeout: context
                .duration(&self.body_timeout, format!("{prefix}.body_timeout"))?
                .unwrap_or(defaults.body_timeout),
            allowed_hosts: self.allowed_hosts.clone().unwrap_or_default(),
            allowed_origins: self.allowed_origins.clone().unwrap_or_default(),
        };
        let budget = context.body_budget;
        let ceiling = dav2d_component::body_ceiling(budget);
        if config.max_body > ceiling
            && let Some(max_body) = &self.max_body
        {
            return Err(context.error_at(
                max_body,
                format!("{prefix}.max_body"),
                format!(
                    "max_body ({}) is larger than one body may hold of ingest.body_budget ({budget}: all but the sixteenth kept for small bodies, {ceiling}): no such body could ever be accepted; raise the budget or lower max_body",
                    config.max_body
                ),
            ));
        }
        Ok(config)
    }
}

impl SourceSetting for HttpConfig {
    fn build(&self, name: &str, setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name, setting))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        listener(name, "http", self.listen.bind, &self.listen.token)
    }
}

impl SourceSection for HttpSection {
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
        Ok(Box::new(HttpSection::resolve(self, context, at)?))
    }
}
