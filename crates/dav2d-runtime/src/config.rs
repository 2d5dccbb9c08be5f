//! The YAML config: streams, nodes, constraints and sources in one file.
//!
//! This module owns the config's DTOs and converts them by hand into core
//! types, so the engine stays free of serde. Every error names the file, the
//! line and column, and the field (`nodes[1].input`), and says what was
//! expected. Later sections (`http`, `persistence`, `processing`) join the
//! same file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dav2d_core::{
    Bounds, Builtin, BuiltinError, BuiltinParams, ConstraintSpec, Direction, EdgePolicy, Graph,
    GraphError, InputSpec, LogicSpec, NodeSpec,
};
use serde::Deserialize;
use serde_saphyr::Spanned;

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
    /// Where samples come from.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
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
    #[serde(skip)]
    file: PathBuf,
}

/// An input stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Name.
    pub name: Spanned<String>,
    /// Smallest valid value.
    pub min: Option<f64>,
    /// Largest valid value.
    pub max: Option<f64>,
    /// Reject NaN and infinities.
    #[serde(default)]
    pub finite_only: bool,
    /// Samples kept per key at least.
    pub history: Option<usize>,
}

/// A node: a built-in transform over one input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name (also the output stream's name).
    pub name: Spanned<String>,
    /// `moving_average`, `ewma`, `min`, `max`, `sum`, `rate`, `delta`, `clamp` or `scale`.
    pub kind: Spanned<String>,
    /// The input stream or node.
    pub input: Spanned<String>,
    /// Window length (moving_average, min, max, sum).
    pub n: Option<usize>,
    /// Weight of the newest sample (ewma).
    pub alpha: Option<f64>,
    /// Lower limit (clamp).
    pub lo: Option<f64>,
    /// Upper limit (clamp).
    pub hi: Option<f64>,
    /// Factor (scale).
    pub a: Option<f64>,
    /// Offset (scale).
    pub b: Option<f64>,
    /// `latest` (default) or `all`.
    pub policy: Option<Spanned<String>>,
    /// Higher runs first among independent nodes.
    #[serde(default)]
    pub priority: i32,
    /// Changes smaller than this wake no children.
    pub deadband: Option<f64>,
}

/// A constraint over one input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintConfig {
    /// Name (also the state stream's name).
    pub name: Spanned<String>,
    /// The input stream or node.
    pub input: Spanned<String>,
    /// Threshold that trips.
    pub trip: f64,
    /// Threshold that resets (defaults to `trip`).
    pub reset: Option<f64>,
    /// `above` (default) or `below`.
    pub direction: Option<Spanned<String>>,
    /// How long the trip condition must hold, e.g. `500ms`.
    #[serde(rename = "for")]
    pub hold: Option<Spanned<String>>,
    /// Silence after which a key is `stale`, e.g. `5s`.
    pub stale_after: Option<Spanned<String>>,
    /// `latest` (default) or `all`.
    pub policy: Option<Spanned<String>>,
    /// Priority.
    #[serde(default)]
    pub priority: i32,
}

/// A source of samples.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `synthetic` (more kinds come with the ingestion work).
    pub kind: Spanned<String>,
    /// The stream to push to.
    pub stream: Spanned<String>,
    /// Number of devices (keys `dev-000` ...).
    #[serde(default = "default_devices")]
    pub devices: usize,
    /// Samples per device per second.
    #[serde(default = "default_rate")]
    pub rate_hz: f64,
    /// Mean value.
    #[serde(default = "default_base")]
    pub base: f64,
    /// Noise amplitude.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// Drift per minute, random walk amplitude.
    #[serde(default)]
    pub drift_per_minute: f64,
    /// Expected overheating episodes per device per hour.
    #[serde(default)]
    pub overheat_per_hour: f64,
    /// Expected silent spells per device per hour.
    #[serde(default)]
    pub dropout_per_hour: f64,
    /// Random seed.
    #[serde(default)]
    pub seed: u64,
}

fn default_devices() -> usize {
    100
}
fn default_rate() -> f64 {
    100.0
}
fn default_base() -> f64 {
    60.0
}
fn default_noise() -> f64 {
    0.5
}

/// How the runner paces constraint timers.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// How often `for` and `stale_after` timers are checked, e.g. `50ms`.
    pub tick: Option<Spanned<String>>,
}

/// The `http` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Set false to run without the HTTP API.
    pub enabled: Option<bool>,
    /// Address to bind, e.g. `127.0.0.1:8080`.
    pub bind: Option<Spanned<String>>,
    /// Largest body accepted, e.g. `64MiB` or a number of bytes.
    pub max_body: Option<Spanned<String>>,
    /// Bearer token required by every endpoint but `/healthz`.
    pub token: Option<String>,
    /// Time allowed for request headers, e.g. `10s`.
    pub header_timeout: Option<Spanned<String>>,
    /// Time allowed for a request body, e.g. `30s`.
    pub body_timeout: Option<Spanned<String>>,
}

/// The `tcp` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    /// Set false to run without the TCP server.
    pub enabled: Option<bool>,
    /// Address to bind, e.g. `127.0.0.1:7070`.
    pub bind: Option<Spanned<String>>,
    /// Longest line or frame, e.g. `1MiB`.
    pub max_line: Option<Spanned<String>>,
}

/// The `ingest` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// Parser pool size; 0 or absent means one per core.
    pub workers: Option<usize>,
    /// Samples for `all`-edge streams that may wait to be applied.
    pub all_queue: Option<usize>,
    /// Bodies at least this large are parsed in parallel, e.g. `1MiB`.
    pub parallel_threshold: Option<Spanned<String>>,
}

/// The `persistence` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PersistenceSection {
    /// Set false to keep everything in memory only.
    pub enabled: Option<bool>,
    /// The store's directory (default `./dav2d-data`).
    pub dir: Option<String>,
    /// How often logged updates are made durable, e.g. `1s`.
    pub flush_interval: Option<Spanned<String>>,
    /// How often the whole state is checkpointed, e.g. `1m`.
    pub checkpoint_interval: Option<Spanned<String>>,
    /// `always`, `batch` (default) or `off`.
    pub fsync: Option<Spanned<String>>,
    /// File actions allowed per UTC day (default 160000).
    pub max_file_actions_per_day: Option<u64>,
    /// Roll log segments at this size, e.g. `64MiB` (grown with load to
    /// keep within the budget).
    pub segment_size: Option<Spanned<String>>,
    /// Delete Parquet history older than this, e.g. `30d` (default: keep).
    pub retention: Option<Spanned<String>>,
    /// Raw input streams to persist too (node outputs and constraint states always are).
    #[serde(default)]
    pub streams: Vec<String>,
}

/// Resolved persistence settings.
#[derive(Clone, Debug)]
pub struct PersistenceConfig {
    /// The store's directory.
    pub dir: std::path::PathBuf,
    /// How often logged updates are made durable (stretched to fit the budget).
    pub flush_interval: Duration,
    /// How often the whole state is checkpointed.
    pub checkpoint_interval: Duration,
    /// The store's settings.
    pub store: dav2d_store::StoreOptions,
    /// Raw input streams persisted besides node outputs and constraint states.
    pub streams: Vec<String>,
}

/// The built-in demo config.
pub const DEMO_CONFIG: &str = include_str!("demo.yaml");

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
            ConfigError {
                file: file.to_path_buf(),
                line,
                column,
                field: String::new(),
                message: first_line(&error.to_string()),
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

    fn error_at<T>(&self, spanned: &Spanned<T>, field: String, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            field,
            message,
        }
    }

    /// Checks everything that does not need a graph.
    fn validate(&self) -> Result<(), ConfigError> {
        for (i, stream) in self.streams.iter().enumerate() {
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
        for (i, node) in self.nodes.iter().enumerate() {
            self.builtin(i, node)?;
            self.policy(&node.policy, format!("nodes[{i}].policy"))?;
        }
        for (i, constraint) in self.constraints.iter().enumerate() {
            self.constraint_spec(i, constraint)?;
            self.policy(&constraint.policy, format!("constraints[{i}].policy"))?;
        }
        for (i, source) in self.sources.iter().enumerate() {
            if source.kind.value != "synthetic" {
                return Err(self.error_at(
                    &source.kind,
                    format!("sources[{i}].kind"),
                    format!(
                        "unknown source kind '{}'; expected: synthetic",
                        source.kind.value
                    ),
                ));
            }
            if !(source.rate_hz > 0.0 && source.rate_hz <= 100_000.0) || source.devices == 0 {
                return Err(self.error_at(
                    &source.kind,
                    format!("sources[{i}]"),
                    format!(
                        "a synthetic source needs devices >= 1 and 0 < rate_hz <= 100000, got devices={} rate_hz={}",
                        source.devices, source.rate_hz
                    ),
                ));
            }
        }
        self.tick()?;
        self.ingest()?;
        self.persistence()?;
        Ok(())
    }

    fn policy(
        &self,
        policy: &Option<Spanned<String>>,
        field: String,
    ) -> Result<EdgePolicy, ConfigError> {
        match policy {
            None => Ok(EdgePolicy::Latest),
            Some(p) if p.value == "latest" => Ok(EdgePolicy::Latest),
            Some(p) if p.value == "all" => Ok(EdgePolicy::All),
            Some(p) => Err(self.error_at(
                p,
                field,
                format!("unknown policy '{}'; expected latest or all", p.value),
            )),
        }
    }

    fn duration(
        &self,
        value: &Option<Spanned<String>>,
        field: String,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        let parsed = match text.value.trim().parse::<f64>() {
            Ok(seconds) if seconds >= 0.0 && seconds.is_finite() => {
                Ok(Duration::from_secs_f64(seconds))
            }
            Ok(seconds) => Err(format!("a duration must be >= 0, got {seconds}")),
            Err(_) => humantime::parse_duration(text.value.trim()).map_err(|error| {
                format!(
                    "'{}' is not a duration ({error}); write e.g. 500ms, 2s or 1m",
                    text.value
                )
            }),
        };
        parsed
            .map(Some)
            .map_err(|message| self.error_at(text, field, message))
    }

    fn size(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<usize>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        parse_size(&text.value)
            .map(Some)
            .map_err(|message| self.error_at(text, field.to_string(), message))
    }

    fn address(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<std::net::SocketAddr>, ConfigError> {
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

    /// The ingest servers this config asks for (`None` when both are disabled).
    pub fn ingest(&self) -> Result<Option<dav2d_ingest::IngestConfig>, ConfigError> {
        let mut config = dav2d_ingest::IngestConfig::default();
        let defaults = dav2d_ingest::HttpConfig::default();
        config.http = match self.http.enabled {
            Some(false) => None,
            _ => Some(dav2d_ingest::HttpConfig {
                bind: self
                    .address(&self.http.bind, "http.bind")?
                    .unwrap_or(defaults.bind),
                max_body: self
                    .size(&self.http.max_body, "http.max_body")?
                    .unwrap_or(defaults.max_body),
                token: self.http.token.clone().filter(|t| !t.is_empty()),
                header_timeout: self
                    .duration(&self.http.header_timeout, "http.header_timeout".to_string())?
                    .unwrap_or(defaults.header_timeout),
                body_timeout: self
                    .duration(&self.http.body_timeout, "http.body_timeout".to_string())?
                    .unwrap_or(defaults.body_timeout),
            }),
        };
        let tcp_defaults = dav2d_ingest::TcpConfig::default();
        config.tcp = match self.tcp.enabled {
            Some(false) => None,
            _ => Some(dav2d_ingest::TcpConfig {
                bind: self
                    .address(&self.tcp.bind, "tcp.bind")?
                    .unwrap_or(tcp_defaults.bind),
                max_line: self
                    .size(&self.tcp.max_line, "tcp.max_line")?
                    .unwrap_or(tcp_defaults.max_line),
            }),
        };
        config.workers = self.ingest.workers.unwrap_or(0);
        if let Some(capacity) = self.ingest.all_queue {
            config.all_queue_capacity = capacity.max(1);
        }
        if let Some(threshold) =
            self.size(&self.ingest.parallel_threshold, "ingest.parallel_threshold")?
        {
            config.parse.parallel_threshold = threshold;
        }
        Ok((config.http.is_some() || config.tcp.is_some()).then_some(config))
    }

    /// The persistence this config asks for (`None` when disabled).
    pub fn persistence(&self) -> Result<Option<PersistenceConfig>, ConfigError> {
        let section = &self.persistence;
        if section.enabled == Some(false) {
            return Ok(None);
        }
        let fsync = match &section.fsync {
            None => dav2d_store::Fsync::Batch,
            Some(text) => match text.value.as_str() {
                "always" => dav2d_store::Fsync::Always,
                "batch" => dav2d_store::Fsync::Batch,
                "off" => dav2d_store::Fsync::Off,
                other => {
                    return Err(self.error_at(
                        text,
                        "persistence.fsync".to_string(),
                        format!("unknown fsync policy '{other}'; expected always, batch or off"),
                    ));
                }
            },
        };
        let mut store = dav2d_store::StoreOptions::default();
        store.wal.fsync = fsync;
        if let Some(size) = self.size(&section.segment_size, "persistence.segment_size")? {
            store.wal.segment_bytes = size.max(4096) as u64;
        }
        if let Some(budget) = section.max_file_actions_per_day {
            store.max_file_actions_per_day = budget;
        }
        store.retention_ns = self
            .duration(&section.retention, "persistence.retention".to_string())?
            .map(|d| d.as_nanos().min(i64::MAX as u128) as i64);
        Ok(Some(PersistenceConfig {
            dir: section.dir.as_deref().unwrap_or("dav2d-data").into(),
            flush_interval: self
                .duration(
                    &section.flush_interval,
                    "persistence.flush_interval".to_string(),
                )?
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(1)),
            checkpoint_interval: self
                .duration(
                    &section.checkpoint_interval,
                    "persistence.checkpoint_interval".to_string(),
                )?
                .unwrap_or(Duration::from_secs(60))
                .max(Duration::from_millis(10)),
            store,
            streams: section.streams.clone(),
        }))
    }

    /// How often the runner checks constraint timers (default 50 ms).
    pub fn tick(&self) -> Result<Duration, ConfigError> {
        Ok(self
            .duration(&self.run.tick, "run.tick".to_string())?
            .unwrap_or(Duration::from_millis(50))
            .max(Duration::from_millis(1)))
    }

    fn builtin(&self, i: usize, node: &NodeConfig) -> Result<Builtin, ConfigError> {
        let params = BuiltinParams {
            n: node.n,
            alpha: node.alpha,
            lo: node.lo,
            hi: node.hi,
            a: node.a,
            b: node.b,
        };
        Builtin::from_name(&node.kind.value, &params).map_err(|error| {
            let field = match &error {
                BuiltinError::UnknownKind(_) => format!("nodes[{i}].kind"),
                BuiltinError::Missing { param, .. } => format!("nodes[{i}].{param}"),
                BuiltinError::Invalid(_) => format!("nodes[{i}]"),
            };
            self.error_at(&node.kind, field, error.to_string())
        })
    }

    fn constraint_spec(
        &self,
        i: usize,
        constraint: &ConstraintConfig,
    ) -> Result<ConstraintSpec, ConfigError> {
        let direction = match &constraint.direction {
            None => Direction::Above,
            Some(d) if d.value == "above" => Direction::Above,
            Some(d) if d.value == "below" => Direction::Below,
            Some(d) => {
                return Err(self.error_at(
                    d,
                    format!("constraints[{i}].direction"),
                    format!("unknown direction '{}'; expected above or below", d.value),
                ));
            }
        };
        let as_ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let spec = ConstraintSpec {
            trip: constraint.trip,
            reset: constraint.reset,
            direction,
            hold_ns: self
                .duration(&constraint.hold, format!("constraints[{i}].for"))?
                .map_or(0, as_ns),
            stale_after_ns: self
                .duration(
                    &constraint.stale_after,
                    format!("constraints[{i}].stale_after"),
                )?
                .map(as_ns),
        };
        spec.validate().map_err(|message| {
            self.error_at(&constraint.name, format!("constraints[{i}]"), message)
        })?;
        Ok(spec)
    }

    /// Declares the streams and registers the nodes and constraints into
    /// `graph`. Graph errors (cycles, unknown inputs, duplicates) are mapped
    /// back to the line that caused them.
    pub fn build(&self, graph: &mut Graph) -> Result<(), ConfigError> {
        for (i, stream) in self.streams.iter().enumerate() {
            let bounds = Bounds {
                min: stream.min,
                max: stream.max,
                finite_only: stream.finite_only,
            };
            graph
                .declare_stream(&stream.name.value, bounds, stream.history)
                .map_err(|error| {
                    self.error_at(
                        &stream.name,
                        format!("streams[{i}].name"),
                        error.to_string(),
                    )
                })?;
        }
        for (i, source) in self.sources.iter().enumerate() {
            if graph.stream_id(&source.stream.value).is_none() {
                graph
                    .declare_stream(&source.stream.value, Bounds::default(), None)
                    .map_err(|error| {
                        self.error_at(
                            &source.stream,
                            format!("sources[{i}].stream"),
                            error.to_string(),
                        )
                    })?;
            }
        }
        let mut specs = Vec::with_capacity(self.nodes.len() + self.constraints.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let builtin = self.builtin(i, node)?;
            let policy = self.policy(&node.policy, format!("nodes[{i}].policy"))?;
            let mut spec =
                NodeSpec::builtin(node.name.value.clone(), node.input.value.clone(), builtin)
                    .with_policy(policy)
                    .with_priority(node.priority);
            spec.deadband = node.deadband;
            specs.push(spec);
        }
        for (i, constraint) in self.constraints.iter().enumerate() {
            let spec = self.constraint_spec(i, constraint)?;
            let policy = self.policy(&constraint.policy, format!("constraints[{i}].policy"))?;
            specs.push(NodeSpec {
                name: constraint.name.value.clone(),
                inputs: vec![InputSpec {
                    name: constraint.input.value.clone(),
                    window: 1,
                    policy,
                }],
                logic: LogicSpec::Constraint(spec),
                priority: constraint.priority,
                deadband: None,
            });
        }
        graph
            .register_all(specs)
            .map(|_| ())
            .map_err(|error| self.locate(error))
    }

    /// Finds where in the file a graph error comes from.
    fn locate(&self, error: GraphError) -> ConfigError {
        let message = error.to_string();
        let by_name = |name: &str| -> Option<ConfigError> {
            if let Some((i, node)) = self
                .nodes
                .iter()
                .enumerate()
                .find(|(_, n)| n.name.value == name)
            {
                return Some(self.error_at(
                    &node.name,
                    format!("nodes[{i}].name"),
                    message.clone(),
                ));
            }
            self.constraints
                .iter()
                .enumerate()
                .find(|(_, c)| c.name.value == name)
                .map(|(i, c)| {
                    self.error_at(&c.name, format!("constraints[{i}].name"), message.clone())
                })
        };
        let by_input = |node: &str, input: &str| -> Option<ConfigError> {
            if let Some((i, n)) = self
                .nodes
                .iter()
                .enumerate()
                .find(|(_, n)| n.name.value == node && n.input.value == input)
            {
                return Some(self.error_at(&n.input, format!("nodes[{i}].input"), message.clone()));
            }
            self.constraints
                .iter()
                .enumerate()
                .find(|(_, c)| c.name.value == node && c.input.value == input)
                .map(|(i, c)| {
                    self.error_at(&c.input, format!("constraints[{i}].input"), message.clone())
                })
        };
        let located = match &error {
            GraphError::UnknownInput { node, input, .. } => by_input(node, input),
            GraphError::ZeroWindow { node, input } => by_input(node, input),
            GraphError::Cycle { path } => path.first().and_then(|name| by_name(name)),
            GraphError::DuplicateName { name, .. } => {
                // Point at the second definition.
                let names = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (&n.name, format!("nodes[{i}].name")))
                    .chain(
                        self.constraints
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (&c.name, format!("constraints[{i}].name"))),
                    );
                let mut matching = names.filter(|(n, _)| &n.value == name).collect::<Vec<_>>();
                matching
                    .pop()
                    .map(|(n, field)| self.error_at(n, field, message.clone()))
            }
            GraphError::Invalid { node, .. } | GraphError::UnknownName { name: node, .. } => {
                by_name(node)
            }
        };
        located.unwrap_or_else(|| ConfigError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
        })
    }
}

/// A size such as `1048576`, `512KiB`, `64MiB`, `1GB`.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size; write e.g. 1048576, 512KiB or 64MiB"))?;
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
        .ok_or_else(|| format!("'{text}' is too large"))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().to_string()
}
