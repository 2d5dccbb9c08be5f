//! The resolved plan of a run: the config plus overrides (CLI flags or
//! Python keywords), built and validated once, and what the runtime starts
//! from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dav2d_component::{IntakeConfig, Sink, Source};
use dav2d_http::HttpConfig;
use dav2d_store::{PersistStats, PersistenceConfig};
use dav2d_tcp::TcpConfig;

use crate::config::{Config, ConfigError, SinkSetting, SourceSetting};

/// A component of the plan with its name and where its settings came from
/// (`sources[2]`, `http`), for errors.
#[derive(Debug)]
pub struct Planned<T> {
    /// The component's name (its metrics label).
    pub name: String,
    /// The config path of its settings.
    pub setting: String,
    /// Its settings.
    pub spec: T,
}

/// Everything a run starts, resolved.
#[derive(Debug, Default)]
pub struct Plan {
    /// The graph to build into the engine before anything starts.
    pub graph: Option<Config>,
    /// The intake's settings.
    pub intake: IntakeConfig,
    /// The HTTP API (the top-level `http` section), if on.
    pub http: Option<HttpConfig>,
    /// The TCP server (the top-level `tcp` section), if on.
    pub tcp: Option<TcpConfig>,
    /// The default store (the top-level `persistence` section), if on.
    pub persistence: Option<PersistenceConfig>,
    /// Further sources, in config order.
    pub sources: Vec<Planned<Box<dyn SourceSetting>>>,
    /// Further sinks, in config order.
    pub sinks: Vec<Planned<Box<dyn SinkSetting>>>,
    /// How often constraint timers are checked; `None` runs no timer.
    pub tick: Option<Duration>,
    /// Workers for offloaded nodes (`None`: [`crate::Workers::default_count`]);
    /// started only when the graph has offloaded nodes.
    pub workers: Option<usize>,
    /// The cluster this instance joins: its sources then forward into the
    /// partitioned stream, and it applies the partitions it owns.
    pub cluster: Option<dav2d_cluster::ClusterConfig>,
    /// The per-key values `/metrics` exports.
    pub values: dav2d_component::ValueExport,
}

/// Overrides of what the config asks for (`None` keeps the config's).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// The HTTP API (`Some(None)` runs none).
    pub http: Option<Option<HttpConfig>>,
    /// The TCP server (`Some(None)` runs none).
    pub tcp: Option<Option<TcpConfig>>,
    /// The default store's directory (`Some(None)` keeps everything in memory).
    pub data: Option<Option<PathBuf>>,
    /// `--cluster URL`: join the cluster on this JetStream server.
    pub cluster: Option<String>,
}

impl Plan {
    /// The plan of `config` with `overrides` applied.
    pub fn new(config: Config, overrides: Overrides) -> Result<Plan, ConfigError> {
        let mut plan = Plan {
            intake: config.intake()?,
            http: config.http()?,
            tcp: config.tcp()?,
            persistence: config.persistence()?,
            tick: Some(config.tick()?),
            workers: config.workers()?,
            cluster: config.cluster(overrides.cluster.as_deref())?,
            values: config.value_export()?,
            ..Plan::default()
        };
        let context = config.sections()?;
        let mut names = vec![
            "http".to_string(),
            "tcp".to_string(),
            "persistence".to_string(),
        ];
        let mut unique = |given: &Option<String>, kind: &str| -> String {
            let name = given.clone().unwrap_or_else(|| {
                let mut n = 1;
                let mut name = kind.to_string();
                while names.contains(&name) {
                    n += 1;
                    name = format!("{kind}-{n}");
                }
                name
            });
            names.push(name.clone());
            name
        };
        for (i, entry) in config.sources.iter().enumerate() {
            let setting = format!("sources[{i}]");
            let name = unique(&entry.name, &entry.kind.value);
            let spec = entry
                .section
                .resolve(&context, &setting, &entry.kind, &name)?;
            plan.sources.push(Planned {
                name,
                setting,
                spec,
            });
        }
        for (i, entry) in config.sinks.iter().enumerate() {
            let setting = format!("sinks[{i}]");
            let name = unique(&entry.name, &entry.kind.value);
            let spec = entry
                .section
                .resolve(&context, &setting, &entry.kind, &name)?;
            plan.sinks.push(Planned {
                name,
                setting,
                spec,
            });
        }
        if let Some(http) = overrides.http {
            plan.http = http;
        }
        if let Some(tcp) = overrides.tcp {
            plan.tcp = tcp;
        }
        match overrides.data {
            Some(None) => {
                // `--data off`: nothing on disk, the listed stores included.
                plan.persistence = None;
                plan.sinks.retain(|sink| !sink.spec.is_store());
            }
            Some(Some(dir)) => {
                plan.persistence
                    .get_or_insert_with(PersistenceConfig::default)
                    .dir = dir;
            }
            None => {}
        }
        plan.graph = Some(config);
        Ok(plan)
    }

    /// Builds the plan's graph into `graph` and checks every name its
    /// components read against it: what `dav2d check` validates and what
    /// [`crate::Runtime::start`] does first.
    pub fn build(&self, graph: &mut dav2d_core::Graph) -> Result<(), ConfigError> {
        match &self.graph {
            Some(config) => config.build(graph),
            None => Ok(()),
        }
    }

    /// The sources to start, in order: the HTTP API, the TCP server, then
    /// the listed ones.
    pub(crate) fn build_sources(&self) -> Vec<Box<dyn Source>> {
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        // First, so every other source forwards from its first sample.
        if let Some(cluster) = &self.cluster {
            sources.push(Box::new(cluster.clone().build()));
        }
        if let Some(http) = &self.http {
            sources.push(Box::new(http.clone().build("http", "http.bind")));
        }
        if let Some(tcp) = &self.tcp {
            sources.push(Box::new(tcp.clone().build("tcp", "tcp.bind")));
        }
        for planned in &self.sources {
            let setting = format!("{}.bind", planned.setting);
            sources.push(planned.spec.build(&planned.name, &setting));
        }
        sources
    }

    /// The sinks to start, in order: the default store, then the listed
    /// ones; and the default store's statistics.
    pub(crate) fn build_sinks(&self) -> (Vec<Box<dyn Sink>>, Option<Arc<PersistStats>>) {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let mut stats = None;
        if let Some(persistence) = &self.persistence {
            let sink = persistence.clone().build("persistence");
            stats = Some(sink.stats());
            sinks.push(Box::new(sink));
        }
        for planned in &self.sinks {
            sinks.push(planned.spec.build(&planned.name));
        }
        (sinks, stats)
    }
}
