//! The component sections of the config besides the brokers, webhook and
//! persistence: the top-level `http`, `tcp` and `ingest` sections, the
//! `synthetic`, `http`, `tcp` and `frames` kinds of `sources:`, and their
//! conversion into each component's settings (the entries themselves are
//! `entries.rs`, the table of kinds `kinds.rs`).

use dav2d_component::{IntakeConfig, ListenConfig, TlsFiles};
use dav2d_http::HttpConfig;
use dav2d_synthetic::SyntheticConfig;
use dav2d_tcp::TcpConfig;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::kind::{Declared, SourceSection, SourceSetting};
use super::{Config, ConfigError};
use crate::spec::{ComponentSpec, component, listener};
use dav2d_component::Source;

/// A frame source (`kind: frames`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FramesSection {
    /// The component's name.
    pub name: Option<String>,
    /// The frame URL: `synthetic:WxH@RATE?format=...`, `y4m:PATH`, `tcp://ADDR`, `x11::N`.
    pub url: Spanned<String>,
    /// The stream its frames go to (declared `type: frame` if it is not declared).
    pub stream: Spanned<String>,
    /// The token a `tcp://` producer's first line `AUTH <token>` must carry
    /// (default: `http.token`).
    pub token: Option<Spanned<String>>,
}

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
}

/// A `tls` section: the certificate chain and key, PEM files (relative
/// paths are read from the config file's folder).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain, leaf first.
    pub cert: Spanned<String>,
    /// The private key.
    pub key: Spanned<String>,
}

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

/// The `ingest` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// Parser pool size; 0 or absent means one per core.
    pub workers: Option<Spanned<String>>,
    /// Samples for `all`-edge streams that may wait to be applied.
    pub all_queue: Option<Spanned<String>>,
    /// Bodies at least this large are parsed in parallel, e.g. `1MiB`.
    pub parallel_threshold: Option<Spanned<String>>,
    /// Bytes of bodies in flight across every connection (default 64MiB).
    pub body_budget: Option<Spanned<String>>,
}

/// The most parser or offload workers a config may ask for.
pub const MAX_WORKERS: u64 = 1024;
/// The most connections a listener may allow.
pub const MAX_CONNECTIONS: u64 = 1 << 20;
/// The most samples the `all`-edge queue may hold.
pub const MAX_ALL_QUEUE: u64 = 1 << 30;

impl Config {
    /// Checks every source and sink entry.
    pub(crate) fn validate_components(&self) -> Result<(), ConfigError> {
        // Names label metrics and health: two components may not share one.
        let mut named: Vec<(&str, String)> = ["http", "tcp", "persistence"]
            .iter()
            .map(|n| (*n, format!("the top-level `{n}` section")))
            .collect();
        let entries = (self.sources.iter().enumerate())
            .map(|(i, e)| (&e.kind, &e.name, format!("sources[{i}]")))
            .chain(
                (self.sinks.iter().enumerate())
                    .map(|(i, e)| (&e.kind, &e.name, format!("sinks[{i}]"))),
            );
        for (kind, name, field) in entries {
            let Some(name) = name else { continue };
            if let Some((_, first)) = named.iter().find(|(n, _)| *n == name) {
                return Err(self.error_at(
                    kind,
                    format!("{field}.name"),
                    format!(
                        "'{name}' is already the name of {first}; a component's name labels its metrics and health, give each its own"
                    ),
                ));
            }
            named.push((name, field));
        }
        // Each entry resolved as the plan will: every mistake at its line.
        for (i, source) in self.sources.iter().enumerate() {
            let name = source.name.as_deref().unwrap_or(&source.kind.value);
            source
                .section
                .resolve(self, &format!("sources[{i}]"), &source.kind, name)?;
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            let name = sink.name.as_deref().unwrap_or(&sink.kind.value);
            sink.section
                .resolve(self, &format!("sinks[{i}]"), &sink.kind, name)?;
        }
        self.intake()?;
        self.http()?;
        self.tcp()?;
        Ok(())
    }

    /// The intake's settings (the `ingest` section).
    pub fn intake(&self) -> Result<IntakeConfig, ConfigError> {
        let mut config = IntakeConfig {
            workers: self
                .count(&self.ingest.workers, "ingest.workers", 0, MAX_WORKERS)?
                .unwrap_or(0),
            ..IntakeConfig::default()
        };
        if let Some(capacity) =
            self.count(&self.ingest.all_queue, "ingest.all_queue", 1, MAX_ALL_QUEUE)?
        {
            config.all_queue_capacity = capacity;
        }
        if let Some(threshold) =
            self.size(&self.ingest.parallel_threshold, "ingest.parallel_threshold")?
        {
            config.parse.parallel_threshold = threshold;
        }
        if let Some(budget) = self.size(&self.ingest.body_budget, "ingest.body_budget")? {
            config.body_budget = budget.max(1);
        }
        Ok(config)
    }

    /// The HTTP API this config asks for (`None` when disabled).
    pub fn http(&self) -> Result<Option<HttpConfig>, ConfigError> {
        match self.http.enabled {
            Some(false) => Ok(None),
            _ => self.http_from(&self.http, "http").map(Some),
        }
    }

    /// The TCP server this config asks for (`None` when disabled).
    pub fn tcp(&self) -> Result<Option<TcpConfig>, ConfigError> {
        match self.tcp.enabled {
            Some(false) => Ok(None),
            _ => self.tcp_from(&self.tcp, "tcp").map(Some),
        }
    }

    pub(crate) fn http_from(
        &self,
        section: &HttpSection,
        prefix: &str,
    ) -> Result<HttpConfig, ConfigError> {
        let defaults = HttpConfig::default();
        let token = match &section.token {
            Some(token) => self.token(token, &format!("{prefix}.token"))?,
            None => None,
        };
        let listen = self.listen_from(
            (&section.bind, &section.max_connections, &section.tls),
            token,
            prefix,
            &defaults.listen,
        )?;
        let config = HttpConfig {
            listen,
            max_body: self
                .size(&section.max_body, &format!("{prefix}.max_body"))?
                .unwrap_or(defaults.max_body),
            header_timeout: self
                .duration(&section.header_timeout, format!("{prefix}.header_timeout"))?
                .unwrap_or(defaults.header_timeout),
            body_timeout: self
                .duration(&section.body_timeout, format!("{prefix}.body_timeout"))?
                .unwrap_or(defaults.body_timeout),
            allowed_hosts: section.allowed_hosts.clone().unwrap_or_default(),
        };
        let budget = self.intake()?.body_budget;
        if config.max_body > budget
            && let Some(max_body) = &section.max_body
        {
            return Err(self.error_at(
                max_body,
                format!("{prefix}.max_body"),
                format!(
                    "max_body ({}) is larger than ingest.body_budget ({budget}): no such body could ever be accepted; raise the budget or lower max_body",
                    config.max_body
                ),
            ));
        }
        Ok(config)
    }

    /// A token, refused when empty (it would turn auth off).
    fn token(&self, token: &Spanned<String>, field: &str) -> Result<Option<String>, ConfigError> {
        if token.value.trim().is_empty() {
            return Err(self.error_at(
                token,
                field.to_string(),
                "an empty token would turn auth off; remove `token` to run without one, or set a secret"
                    .to_string(),
            ));
        }
        Ok(Some(token.value.clone()))
    }

    /// A listener's `max_connections`.
    fn connections(
        &self,
        value: &Option<Spanned<String>>,
        prefix: &str,
    ) -> Result<Option<usize>, ConfigError> {
        self.count(
            value,
            &format!("{prefix}.max_connections"),
            1,
            MAX_CONNECTIONS,
        )
    }

    /// A count within `[least, most]`, located when it is not.
    pub(crate) fn count(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
        least: u64,
        most: u64,
    ) -> Result<Option<usize>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        match text.value.trim().parse::<u64>() {
            Ok(number) if (least..=most).contains(&number) => Ok(usize::try_from(number).ok()),
            _ => Err(self.error_at(
                text,
                field.to_string(),
                format!(
                    "'{}' is out of range; give a whole number from {least} to {most}",
                    text.value
                ),
            )),
        }
    }

    /// The TLS files of a `tls` section, read now so a bad certificate is
    /// refused by `check` as it would be by `run`.
    fn tls(
        &self,
        section: &Option<TlsSection>,
        prefix: &str,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let Some(section) = section else {
            return Ok(None);
        };
        let folder = self.file().parent().unwrap_or(std::path::Path::new("."));
        let files = TlsFiles {
            cert: folder.join(section.cert.value.trim()),
            key: folder.join(section.key.value.trim()),
        };
        files
            .acceptor()
            .map_err(|message| self.error_at(&section.cert, format!("{prefix}.cert"), message))?;
        Ok(Some(files))
    }

    /// The frame source a `kind: frames` entry describes (its name is set
    /// by the plan).
    pub(crate) fn frames_from(
        &self,
        section: &FramesSection,
        prefix: &str,
    ) -> Result<dav2d_frames::FrameSource, ConfigError> {
        let url = section.url.value.trim();
        dav2d_frames::FrameUrl::parse(url)
            .map_err(|message| self.error_at(&section.url, format!("{prefix}.url"), message))?;
        let token = match &section.token {
            Some(token) => self.token(token, &format!("{prefix}.token"))?,
            None => self.http_from(&self.http, "http")?.listen.token,
        };
        Ok(dav2d_frames::FrameSource {
            name: String::new(),
            url: url.to_string(),
            stream: section.stream.value.clone(),
            token,
        })
    }

    pub(crate) fn tcp_from(
        &self,
        section: &TcpSection,
        prefix: &str,
    ) -> Result<TcpConfig, ConfigError> {
        let defaults = TcpConfig::default();
        let token = match &section.token {
            Some(token) => self.token(token, &format!("{prefix}.token"))?,
            None => self.http_from(&self.http, "http")?.listen.token,
        };
        let max_line = self
            .size(&section.max_line, &format!("{prefix}.max_line"))?
            .unwrap_or(defaults.max_line);
        if max_line > u32::MAX as usize
            && let Some(text) = &section.max_line
        {
            return Err(self.error_at(
                text,
                format!("{prefix}.max_line"),
                format!("{max_line} is more than a binary unit can carry (4 GiB - 1)"),
            ));
        }
        let listen = self.listen_from(
            (&section.bind, &section.max_connections, &section.tls),
            token,
            prefix,
            &defaults.listen,
        )?;
        Ok(TcpConfig {
            listen,
            max_line,
            idle_timeout: self
                .duration(&section.idle_timeout, format!("{prefix}.idle_timeout"))?
                .unwrap_or(defaults.idle_timeout),
            partial_timeout: self
                .duration(
                    &section.partial_timeout,
                    format!("{prefix}.partial_timeout"),
                )?
                .unwrap_or(defaults.partial_timeout),
        })
    }

    /// The one reading of a listener's settings (`bind`, `max_connections`,
    /// `tls`, and the token its section resolved), for HTTP and TCP alike.
    fn listen_from(
        &self,
        (bind, max_connections, tls): (
            &Option<Spanned<String>>,
            &Option<Spanned<String>>,
            &Option<TlsSection>,
        ),
        token: Option<String>,
        prefix: &str,
        defaults: &ListenConfig,
    ) -> Result<ListenConfig, ConfigError> {
        Ok(ListenConfig {
            bind: self
                .address(bind, &format!("{prefix}.bind"))?
                .unwrap_or(defaults.bind),
            token,
            tls: self.tls(tls, &format!("{prefix}.tls"))?,
            max_connections: self
                .connections(max_connections, prefix)?
                .unwrap_or(defaults.max_connections),
        })
    }
}

impl SyntheticSection {
    /// The fleet's settings, defaults filled in.
    pub fn settings(&self) -> SyntheticConfig {
        synthetic(self)
    }
}

/// A synthetic section's settings, defaults filled in.
pub(crate) fn synthetic(section: &SyntheticSection) -> SyntheticConfig {
    let defaults = SyntheticConfig::default();
    SyntheticConfig {
        stream: section.stream.value.clone(),
        devices: section.devices.unwrap_or(defaults.devices),
        rate_hz: section.rate_hz.unwrap_or(defaults.rate_hz),
        base: section.base.unwrap_or(defaults.base),
        noise: section.noise.unwrap_or(defaults.noise),
        drift_per_minute: section
            .drift_per_minute
            .unwrap_or(defaults.drift_per_minute),
        overheat_per_hour: section
            .overheat_per_hour
            .unwrap_or(defaults.overheat_per_hour),
        dropout_per_hour: section
            .dropout_per_hour
            .unwrap_or(defaults.dropout_per_hour),
        seed: section.seed.unwrap_or(defaults.seed),
        steps: section.steps,
    }
}

// The kinds of this file, as the table in `kinds.rs` reads them.

impl SourceSetting for SyntheticConfig {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: format!("{} devices at {} Hz", self.devices, self.rate_hz),
            ..component(name, "synthetic", vec![self.stream.clone()])
        }
    }
}

impl SourceSection for SyntheticSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        config: &Config,
        at: &str,
        kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        let fleet = synthetic(self);
        fleet
            .validate()
            .map_err(|message| config.error_at(kind, at.to_string(), message))?;
        Ok(Box::new(fleet))
    }

    fn declares(&self, at: &str) -> Vec<Declared<'_>> {
        vec![Declared {
            stream: &self.stream.value,
            written: &self.stream,
            field: format!("{at}.stream"),
            frames: false,
        }]
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
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        Ok(Box::new(config.http_from(self, at)?))
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
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        Ok(Box::new(config.tcp_from(self, at)?))
    }
}

impl SourceSetting for dav2d_frames::FrameSource {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(dav2d_frames::FrameSource {
            name: name.to_string(),
            ..self.clone()
        })
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: self.url.clone(),
            ..component(name, "frames", vec![self.stream.clone()])
        }
    }
}

impl SourceSection for FramesSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        Ok(Box::new(config.frames_from(self, at)?))
    }

    fn declares(&self, at: &str) -> Vec<Declared<'_>> {
        vec![Declared {
            stream: &self.stream.value,
            written: &self.stream,
            field: format!("{at}.stream"),
            frames: true,
        }]
    }
}
