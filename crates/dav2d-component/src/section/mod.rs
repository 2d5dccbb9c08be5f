//! What a component's YAML section is to the runtime, and the helpers a
//! section reads its values with: every connector crate owns its section
//! type (serde, each field located), checks it and resolves it into its
//! settings here, so the runtime keeps only one table from `kind:` to
//! section type.
//!
//! A section resolves against a [`SectionContext`]: the config file (every
//! error names it with the line, column and field) and the few top-level
//! settings an entry may default to (the HTTP token, whether persistence
//! is on, the body budget). The units (durations, sizes, addresses, counts,
//! tokens, TLS files, a listener's settings) are read here once for every
//! section.

mod ingest;
mod kind;
mod login;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
pub use serde_saphyr::Spanned;

use crate::{ListenConfig, TlsFiles};

pub use ingest::{IngestSection, MAX_ALL_QUEUE, MAX_WORKERS};
pub use kind::{
    ComponentSpec, Declared, SinkSection, SinkSetting, SourceSection, SourceSetting,
    built_without_kind, component, filters, listener, names_read, route_declares, route_streams,
};
pub use login::{Login, instance_name, split_login};

/// A config error with its place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file (or `<built-in demo>`).
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// The field path, e.g. `nodes[1].input`, or empty.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where a section is read: its file, and the top-level settings an entry
/// may default to.
#[derive(Debug, Clone, Default)]
pub struct SectionContext {
    file: PathBuf,
    /// The top-level `http.token`: the token a listener takes unless its
    /// own section gives one.
    pub token: Option<String>,
    /// Whether the top-level persistence is on (`ack: durable` needs it).
    pub persistence: bool,
    /// The bytes of bodies in flight across every connection
    /// (`ingest.body_budget`).
    pub body_budget: usize,
    /// The largest string, record or buffer value (`limits.value_size`).
    pub value_size: usize,
}

/// The most connections a listener may allow.
pub const MAX_CONNECTIONS: u64 = 1 << 20;
/// The largest size any setting takes (1 TiB).
pub const MAX_BYTES: usize = 1 << 40;

impl SectionContext {
    /// Sections of `file`, with no top-level settings yet.
    pub fn new(file: &Path) -> SectionContext {
        SectionContext {
            file: file.to_path_buf(),
            token: None,
            persistence: false,
            body_budget: crate::IntakeConfig::default().body_budget,
            value_size: dav2d_core::Limits::default().max_value_bytes,
        }
    }

    /// The file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The folder relative paths in the file are read from.
    pub fn folder(&self) -> &Path {
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// An error at what was written (its line and column).
    pub fn error_at<T>(&self, spanned: &Spanned<T>, field: String, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            field,
            message,
        }
    }

    /// An error about `field` where nothing was written (a default).
    pub fn error_in(&self, field: String, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            field,
            message,
        }
    }

    /// A duration such as `500ms`, `2s`, `1m` or a number of seconds.
    pub fn duration(
        &self,
        value: &Option<Spanned<String>>,
        field: String,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        read_duration(&text.value)
            .map(Some)
            .map_err(|message| self.error_at(text, field, message))
    }

    /// A size such as `1048576`, `512KiB` or `64MiB`.
    pub fn size(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<usize>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        parse_size(&text.value)
            .map(Some)
            .map_err(|message| self.error_at(text, field.to_string(), message))
    }

    /// An address such as `127.0.0.1:8080`.
    pub fn address(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        text.value.trim().parse().map(Some).map_err(|error| {
            self.error_at(
                text,
                field.to_string(),
                format!(
                    "'{}' is not an address ({error}); write e.g. 127.0.0.1:8080",
                    text.value
                ),
            )
        })
    }

    /// A count within `[least, most]`, located when it is not.
    pub fn count(
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

    /// A whole number written as one (`queue: 1024`), within `[least, most]`.
    pub fn within<T>(
        &self,
        value: &Spanned<T>,
        field: String,
        least: T,
        most: T,
    ) -> Result<T, ConfigError>
    where
        T: PartialOrd + Copy + fmt::Display,
    {
        if value.value < least || value.value > most {
            return Err(self.error_at(
                value,
                field,
                format!("{} is out of range; give {least} to {most}", value.value),
            ));
        }
        Ok(value.value)
    }

    /// A token (`${NAME}`: from the environment), refused when empty (it
    /// would turn auth off) or not printable ASCII (it travels in an HTTP
    /// header and a TCP line, where no client could send it).
    pub fn token(&self, token: &Spanned<String>, field: &str) -> Result<String, ConfigError> {
        let value = self.secret(token, field)?;
        if value.trim().is_empty() {
            return Err(self.error_at(
                token,
                field.to_string(),
                "an empty token would turn auth off; remove `token` to run without one, or set a secret"
                    .to_string(),
            ));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.error_at(
                token,
                field.to_string(),
                "a token is printable ASCII without spaces (it is sent in an HTTP header and a TCP line); use letters, digits and punctuation".to_string(),
            ));
        }
        Ok(value)
    }

    /// A section's own token, or the top-level one.
    pub fn token_or_default(
        &self,
        token: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<String>, ConfigError> {
        match token {
            Some(token) => self.token(token, field).map(Some),
            None => Ok(self.token.clone()),
        }
    }

    /// The TLS files of a `tls` section, read now so a bad certificate is
    /// refused by `check` as it would be by `run`.
    pub fn tls(
        &self,
        section: &Option<TlsSection>,
        prefix: &str,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let Some(section) = section else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: self.folder().join(section.cert.value.trim()),
            key: self.folder().join(section.key.value.trim()),
        };
        files
            .acceptor()
            .map_err(|message| self.error_at(&section.cert, format!("{prefix}.cert"), message))?;
        Ok(Some(files))
    }

    /// The one reading of a listener's settings (`bind`, `max_connections`,
    /// `tls`, and the token its section resolved), for every listener.
    pub fn listen(
        &self,
        section: ListenSection<'_>,
        token: Option<String>,
        prefix: &str,
        defaults: &ListenConfig,
    ) -> Result<ListenConfig, ConfigError> {
        Ok(ListenConfig {
            bind: self
                .address(section.bind, &format!("{prefix}.bind"))?
                .unwrap_or(defaults.bind),
            token,
            tls: self.tls(section.tls, &format!("{prefix}.tls"))?,
            max_connections: self
                .count(
                    section.max_connections,
                    &format!("{prefix}.max_connections"),
                    1,
                    MAX_CONNECTIONS,
                )?
                .unwrap_or(defaults.max_connections),
        })
    }
}

/// A listener's fields as its section wrote them.
#[derive(Debug, Clone, Copy)]
pub struct ListenSection<'a> {
    /// `bind:`.
    pub bind: &'a Option<Spanned<String>>,
    /// `max_connections:`.
    pub max_connections: &'a Option<Spanned<String>>,
    /// `tls:`.
    pub tls: &'a Option<TlsSection>,
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

/// A duration: a number of seconds, or `500ms`, `2s`, `1m` (at most
/// [`dav2d_core::MAX_DURATION`]).
pub fn read_duration(text: &str) -> Result<Duration, String> {
    let max = dav2d_core::MAX_DURATION;
    let duration = match text.trim().parse::<f64>() {
        Ok(seconds) if seconds >= 0.0 && seconds <= max.as_secs_f64() => {
            Duration::from_secs_f64(seconds)
        }
        Ok(seconds) if seconds > max.as_secs_f64() => Duration::MAX,
        Ok(seconds) => return Err(format!("a duration must be >= 0, got {seconds}")),
        Err(_) => humantime::parse_duration(text.trim()).map_err(|error| {
            format!("'{text}' is not a duration ({error}); write e.g. 500ms, 2s or 1m")
        })?,
    };
    if duration > max {
        return Err(format!(
            "'{text}' is longer than the longest duration dav2d takes (100 years); write a shorter one"
        ));
    }
    Ok(duration)
}

/// A size such as `1048576`, `512KiB`, `64MiB`, `1GB`, at most [`MAX_BYTES`].
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size; write e.g. 1048576, 512KiB or 64MiB"))?;
    if unit.starts_with('.') {
        return Err(format!(
            "'{text}' is not a whole number; write e.g. 1048576, 512KiB or 64MiB"
        ));
    }
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}'; use KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(factor)
        .filter(|bytes| *bytes <= MAX_BYTES)
        .ok_or_else(|| format!("'{text}' is larger than the largest size dav2d takes (1TiB)"))
}
