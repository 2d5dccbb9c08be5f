//! The YAML config: streams, nodes, constraints, sources, sinks and
//! persistence in one file.
//!
//! This module owns the graph's part of the config (`graph` for streams
//! and constraints, `nodes`, `limits`, `python`), the one table from a
//! component's `kind:` to its section type (`kinds`, read by `entries`),
//! and the top-level sections; each connector crate owns its own section
//! type (`dav2d_component::section`). Every error names the file, the
//! line and column, and the field (`nodes[1].input`), and says what was
//! expected.

mod cluster;
mod entries;
mod graph;
mod kinds;
mod limits;
mod nodes;
mod outputs;
mod python;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dav2d_component::section::SectionContext;
use dav2d_http::HttpConfig;
use dav2d_store::PersistenceConfig;
use dav2d_tcp::TcpConfig;
use serde::Deserialize;

pub use cluster::ClusterSection;
pub use dav2d_component::section::{
    ConfigError, Declared, IngestSection, MAX_BYTES, SinkSection, SinkSetting, SourceSection,
    SourceSetting, Spanned,
};
pub use dav2d_http::HttpSection;
pub use dav2d_store::PersistenceSection;
pub use dav2d_tcp::TcpSection;
pub use entries::{SinkEntry, SourceEntry};
pub use graph::{ConstraintConfig, StreamConfig};
pub use kinds::{sink_kinds, source_kinds};
pub use limits::{LimitsSection, set_limit};
pub use nodes::NodeConfig;
pub use python::{PythonLogicFactory, PythonLogicRequest, install_python_logic};

/// The whole config file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Input streams and their validity bounds.
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
    /// Transform nodes.
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// Constraints.
    #[serde(default)]
    pub constraints: Vec<ConstraintConfig>,
    /// Where samples come from, each tagged by `kind`.
    #[serde(default)]
    pub sources: Vec<SourceEntry>,
    /// Where results go besides the HTTP API and persistence, each tagged by `kind`.
    #[serde(default)]
    pub sinks: Vec<SinkEntry>,
    /// How the runner paces itself.
    #[serde(default)]
    pub run: RunConfig,
    /// The HTTP API (on 127.0.0.1:8080 unless configured).
    #[serde(default)]
    pub http: HttpSection,
    /// The TCP NDJSON server (on 127.0.0.1:7070 unless configured).
    #[serde(default)]
    pub tcp: TcpSection,
    /// The parser pool and the admission queue.
    #[serde(default)]
    pub ingest: IngestSection,
    /// Where and how the processed data is kept on disk.
    #[serde(default)]
    pub persistence: PersistenceSection,
    /// What any client can make the engine hold (keys, sizes).
    #[serde(default)]
    pub limits: LimitsSection,
    /// The processor keys at the top level (`model_path`, `processing`): the model of this file's
    /// processor nodes (and of `Dav2dProcessor(config_path=...)`).
    pub model_path: Option<Spanned<String>>,
    /// The top-level processor's `processing:` section.
    pub processing: Option<dav2d_infer::ProcessingSection>,
    /// The same keys as a `processor:` section.
    pub processor: Option<dav2d_infer::ProcessorSection>,
    /// Scale-out over NATS JetStream.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// What `/metrics` exports beyond the counters.
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(skip)]
    file: PathBuf,
}

/// The `metrics:` section: per-key values in `/metrics`, opt-in.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Streams, nodes or constraints whose latest numeric value per key is
    /// exported as `dav2d_value{name,key}`.
    #[serde(default)]
    pub values: Vec<Spanned<String>>,
    /// Keys exported per name, at most (default 100; at most 10,000).
    pub max_keys: Option<Spanned<usize>>,
}

impl Config {
    /// The per-key values `/metrics` exports; a key count out of range is
    /// an error at its line (the names are checked against the built graph,
    /// with the rest of what the config reads: `outputs.rs`).
    pub fn value_export(&self) -> Result<dav2d_component::ValueExport, ConfigError> {
        let max_keys = match &self.metrics.max_keys {
            Some(n) if !(1..=10_000).contains(&n.value) => {
                return Err(self.error_at(
                    n,
                    "metrics.max_keys".to_string(),
                    format!(
                        "{} is out of range; give 1 to 10000 (each key is a time series)",
                        n.value
                    ),
                ));
            }
            Some(n) => n.value,
            None => 100,
        };
        Ok(dav2d_component::ValueExport {
            names: self
                .metrics
                .values
                .iter()
                .map(|n| n.value.clone())
                .collect(),
            max_keys,
        })
    }
}

/// How the runner paces constraint timers.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// How often `for` and `stale_after` timers are checked, e.g. `50ms`.
    pub tick: Option<Spanned<String>>,
    /// Workers running offloaded nodes (default: one per core, at most 4;
    /// at most [`crate::Workers::MAX`]).
    pub workers: Option<Spanned<String>>,
}

pub use dav2d_core::{MAX_DURATION, parse_span};

/// The built-in demo config.
pub const DEMO_CONFIG: &str = include_str!("../demo.yaml");

impl Config {
    /// Reads and parses a config file. A missing file is an error naming it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read the config file: {error}"),
        })?;
        Self::parse(&text, path)
    }

    /// The built-in demo.
    pub fn demo() -> Result<Config, ConfigError> {
        Self::parse(DEMO_CONFIG, Path::new("<built-in demo>"))
    }

    /// Parses config text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = serde_saphyr::from_str(text).map_err(|error| {
            let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
            let (field, message) = explain(text, line, &first_line(&error.to_string()));
            ConfigError {
                file: file.to_path_buf(),
                line,
                column,
                field,
                message,
            }
        })?;
        config.file = file.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    /// The file this config came from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Where this file's values are read (its units and errors), with no
    /// top-level settings.
    pub(crate) fn place(&self) -> SectionContext {
        SectionContext::new(&self.file)
    }

    /// Where this file's `sources:` and `sinks:` entries are read: with the
    /// top-level settings an entry defaults to (the HTTP token, whether
    /// persistence is on, the body budget).
    pub fn sections(&self) -> Result<SectionContext, ConfigError> {
        let mut context = self.top()?;
        context.token = self.http.resolve(&context, "http")?.listen.token;
        context.persistence = self.persistence()?.is_some();
        context.value_size = self.limits()?.max_value_bytes;
        Ok(context)
    }

    /// Where the top-level `http` and `tcp` sections are read: with the body
    /// budget, and no token to default to.
    fn top(&self) -> Result<SectionContext, ConfigError> {
        let mut context = self.place();
        context.body_budget = self.intake()?.body_budget;
        Ok(context)
    }

    /// The intake's settings (the `ingest` section).
    pub fn intake(&self) -> Result<dav2d_component::IntakeConfig, ConfigError> {
        self.ingest.resolve(&self.place())
    }

    /// The HTTP API this config asks for (`None` when disabled).
    pub fn http(&self) -> Result<Option<HttpConfig>, ConfigError> {
        match self.http.enabled {
            Some(false) => Ok(None),
            _ => self.http.resolve(&self.top()?, "http").map(Some),
        }
    }

    /// The TCP server this config asks for (`None` when disabled); its token
    /// defaults to the HTTP one.
    pub fn tcp(&self) -> Result<Option<TcpConfig>, ConfigError> {
        match self.tcp.enabled {
            Some(false) => Ok(None),
            _ => self.tcp.resolve(&self.sections()?, "tcp").map(Some),
        }
    }

    /// The persistence this config asks for (`None` when disabled).
    pub fn persistence(&self) -> Result<Option<PersistenceConfig>, ConfigError> {
        if self.persistence.enabled == Some(false) {
            return Ok(None);
        }
        (self.persistence.settings(&self.place(), "persistence")).map(Some)
    }

    pub(crate) fn error_at<T>(
        &self,
        spanned: &Spanned<T>,
        field: String,
        message: String,
    ) -> ConfigError {
        self.place().error_at(spanned, field, message)
    }

    pub(crate) fn duration(
        &self,
        value: &Option<Spanned<String>>,
        field: String,
    ) -> Result<Option<Duration>, ConfigError> {
        self.place().duration(value, field)
    }

    pub(crate) fn count(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
        least: u64,
        most: u64,
    ) -> Result<Option<usize>, ConfigError> {
        self.place().count(value, field, least, most)
    }

    /// A processor setting's error, located in this file.
    pub(crate) fn setting_error(&self, error: dav2d_infer::SettingError) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: error.line,
            column: error.column,
            field: error.field,
            message: error.message,
        }
    }

    /// The directory relative model paths are resolved against.
    pub(crate) fn base_dir(&self) -> &Path {
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// The file's own processor (`model_path`/`processing` at the top
    /// level, or a `processor:` section), if it has one.
    pub fn default_processor(&self) -> Result<Option<dav2d_infer::ProcessorConfig>, ConfigError> {
        let top = dav2d_infer::ProcessorSection {
            model_path: self.model_path.clone(),
            processing: self.processing.clone().unwrap_or_default(),
        };
        match (&self.processor, top.is_set() || self.processing.is_some()) {
            (Some(_), true) => Err(ConfigError {
                file: self.file.clone(),
                line: self.model_path.as_ref().map_or(0, |m| m.referenced.line()),
                column: self.model_path.as_ref().map_or(0, |m| m.referenced.column()),
                field: "model_path".to_string(),
                message: "give the processor once: either model_path/processing at the top level or a processor: section".to_string(),
            }),
            (Some(section), false) => section
                .resolve(self.base_dir(), "processor.")
                .map(Some)
                .map_err(|e| self.setting_error(e)),
            (None, true) => top
                .resolve(self.base_dir(), "")
                .map(Some)
                .map_err(|e| self.setting_error(e)),
            (None, false) => Ok(None),
        }
    }

    /// The settings of processor node `i`: its own `processor:` mapping, or
    /// the file's processor; the model file must exist.
    pub(crate) fn processor_settings(
        &self,
        i: usize,
        node: &NodeConfig,
    ) -> Result<dav2d_infer::ProcessorConfig, ConfigError> {
        let config = match &node.processor {
            Some(section) => section
                .resolve(self.base_dir(), &format!("nodes[{i}].processor."))
                .map_err(|e| self.setting_error(e))?,
            None => self.default_processor()?.ok_or_else(|| {
                self.error_at(
                    &node.name,
                    format!("nodes[{i}].processor"),
                    "a processor node needs processor: {model_path: ..., processing: {...}}, or the file's top-level model_path".to_string(),
                )
            })?,
        };
        if node.offload == Some(false) {
            return Err(self.error_at(
                &node.name,
                format!("nodes[{i}].offload"),
                "a processor node is always offloaded (a model never holds the engine); remove offload: false".to_string(),
            ));
        }
        if !dav2d_frames::resize::AVAILABLE {
            return Err(self.error_at(
                &node.kind,
                format!("nodes[{i}].kind"),
                dav2d_frames::resize::refused(),
            ));
        }
        if let Err(message) = dav2d_infer::check_model(&config.model_path) {
            let field = format!("nodes[{i}].processor.model_path");
            return Err(
                match node.processor.as_ref().and_then(|p| p.model_path.as_ref()) {
                    Some(written) => self.error_at(written, field, message),
                    None => self.error_at(&node.name, field, message),
                },
            );
        }
        Ok(config)
    }

    /// Checks everything that does not need a graph.
    fn validate(&self) -> Result<(), ConfigError> {
        for (i, stream) in self.streams.iter().enumerate() {
            self.value_type(i, stream)?;
            if let (Some(min), Some(max)) = (stream.min, stream.max)
                && min > max
            {
                return Err(self.error_at(
                    &stream.name,
                    format!("streams[{i}].min"),
                    format!("min ({min}) is greater than max ({max})"),
                ));
            }
        }
        if let Some(processor) = self.default_processor()? {
            // The file's own processor is loaded by its nodes and by
            // `Dav2dProcessor(config_path=...)`: its model must exist.
            dav2d_infer::check_model(&processor.model_path).map_err(|message| {
                let field = match self.processor {
                    Some(_) => "processor.model_path",
                    None => "model_path",
                };
                match self
                    .model_path
                    .as_ref()
                    .or(self.processor.as_ref().and_then(|p| p.model_path.as_ref()))
                {
                    Some(written) => self.error_at(written, field.to_string(), message),
                    None => ConfigError {
                        file: self.file.clone(),
                        line: 0,
                        column: 0,
                        field: field.to_string(),
                        message,
                    },
                }
            })?;
        }
        self.cluster(None)?;
        self.value_export()?;
        for (i, node) in self.nodes.iter().enumerate() {
            self.node_fields(i, node)?;
            if node.kind.value == "processor" {
                self.processor_settings(i, node)?;
            } else if dav2d_frames::nodes::FRAME_NODES.contains(&node.kind.value.as_str()) {
                self.frame_node(i, node)?;
            } else if node.kind.value != "python" {
                // A python node's function is found when the graph is built.
                self.python_fields(i, node, false)?;
                self.builtin_node(i, node, self.node_window(i, node)?)?;
            }
            self.policy(&node.policy, format!("nodes[{i}].policy"))?;
        }
        for (i, constraint) in self.constraints.iter().enumerate() {
            self.constraint_spec(i, constraint)?;
            self.policy(&constraint.policy, format!("constraints[{i}].policy"))?;
        }
        self.validate_components()?;
        self.limits()?;
        self.workers()?;
        self.tick()?;
        self.persistence()?;
        Ok(())
    }

    /// The offload workers `run.workers` asks for.
    pub fn workers(&self) -> Result<Option<usize>, ConfigError> {
        self.count(
            &self.run.workers,
            "run.workers",
            1,
            crate::Workers::MAX as u64,
        )
    }

    /// How often the runner checks constraint timers (default 50 ms).
    pub fn tick(&self) -> Result<Duration, ConfigError> {
        Ok(self
            .duration(&self.run.tick, "run.tick".to_string())?
            .unwrap_or(Duration::from_millis(50))
            .max(Duration::from_millis(1)))
    }
}

/// The first line of a parser error, without the parser's own location
/// prefix (`error: line 2 column 5: `): the location is printed once, ours.
/// A YAML reader's message made to say which field it is about (the key
/// written on the error's line) and, for an unknown field, the closest
/// valid one.
fn explain(text: &str, line: u64, message: &str) -> (String, String) {
    let key = (line > 0)
        .then(|| text.lines().nth(line as usize - 1))
        .flatten()
        .and_then(|written| {
            written
                .trim_start()
                .trim_start_matches("- ")
                .split_once(':')
        })
        .map(|(key, _)| key.trim().to_string())
        .filter(|key| !key.is_empty() && !key.contains(' '));
    // serde: "unknown field `windw`, expected one of `a`, `b`" (or "expected `a`").
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((unknown, expected)) = rest.split_once("`, expected ")
    {
        let list = expected.strip_prefix("one of ").unwrap_or(expected);
        let valid: Vec<&str> = list
            .split(',')
            .map(|name| name.trim().trim_matches('`'))
            .filter(|name| !name.is_empty())
            .collect();
        let hint = match dav2d_core::closest(unknown, valid.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? "),
            None => String::new(),
        };
        return (
            key.unwrap_or_default(),
            format!(
                "unknown field `{unknown}`; {hint}valid here: {}",
                valid.join(", ")
            ),
        );
    }
    let value = (line > 0)
        .then(|| text.lines().nth(line as usize - 1))
        .flatten()
        .and_then(|written| written.split_once(':'))
        .map(|(_, value)| value.trim())
        .unwrap_or_default();
    let message = match message {
        "invalid u64" | "invalid usize" | "invalid u32" => {
            format!("expected a whole number >= 0, got '{value}'")
        }
        "invalid i64" | "invalid i32" => format!("expected a whole number, got '{value}'"),
        "invalid floating point" | "invalid f64" => format!("expected a number, got '{value}'"),
        other => other.to_string(),
    };
    match key {
        Some(key) => (key, message),
        None => (String::new(), message),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((location, message)) if location.contains(" column ") => message.to_string(),
        _ => line.to_string(),
    }
}
