//! The resolved plan of a run: the config plus overrides (CLI flags or
//! Python keywords), built and validated once, and what the runtime starts
//! from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dav2d_component::{IntakeConfig, Sink, Source};
use dav2d_http::HttpConfig;
use dav2d_store::{PersistStats, PersistenceConfig};
use dav2d_synthetic::SyntheticConfig;
use dav2d_tcp::TcpConfig;

use crate::config::{Config, ConfigError, SinkSpec, SourceSpec, components::synthetic};

/// A source the plan starts.
#[derive(Clone, Debug)]
pub enum SourcePlan {
    /// The synthetic sensor fleet.
    Synthetic(SyntheticConfig),
    /// An HTTP listener (the API).
    Http(HttpConfig),
    /// A TCP listener.
    Tcp(TcpConfig),
    /// A frame source feeding a stream.
    Frames(dav2d_frames::FrameSource),
    /// An MQTT subscriber.
    Mqtt(dav2d_mqtt::MqttSourceConfig),
    /// A NATS subscriber.
    Nats(dav2d_nats::NatsSourceConfig),
}

/// A sink the plan starts.
#[derive(Clone, Debug)]
pub enum SinkPlan {
    /// A store.
    Persistence(PersistenceConfig),
    /// An MQTT publisher.
    Mqtt(dav2d_mqtt::MqttSinkConfig),
    /// A NATS publisher.
    Nats(dav2d_nats::NatsSinkConfig),
    /// Constraint transitions POSTed to a URL.
    Webhook(dav2d_webhook::WebhookConfig),
}

/// A component of the plan with its name and where its settings came from
/// (`sources[2]`, `http`), for errors.
#[derive(Clone, Debug)]
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
    pub sources: Vec<Planned<SourcePlan>>,
    /// Further sinks, in config order.
    pub sinks: Vec<Planned<SinkPlan>>,
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
            let spec = match &entry.spec {
                SourceSpec::Synthetic(section) => SourcePlan::Synthetic(synthetic(section)),
                SourceSpec::Http(section) => SourcePlan::Http(config.http_from(section, &setting)?),
                SourceSpec::Tcp(section) => SourcePlan::Tcp(config.tcp_from(section, &setting)?),
                SourceSpec::Frames(section) => {
                    SourcePlan::Frames(config.frames_from(section, &setting)?)
                }
                SourceSpec::Mqtt(section) => {
                    SourcePlan::Mqtt(config.mqtt_source_from(section, &setting, &name)?)
                }
                SourceSpec::Nats(section) => {
                    SourcePlan::Nats(config.nats_source_from(section, &setting, &name)?)
                }
            };
            plan.sources.push(Planned {
                name,
                setting,
                spec,
            });
        }
        for (i, entry) in config.sinks.iter().enumerate() {
            let setting = format!("sinks[{i}]");
            let name = unique(&entry.name, &entry.kind.value);
            let spec = match &entry.spec {
                SinkSpec::Persistence(section) => {
                    SinkPlan::Persistence(config.persistence_from(section, &setting)?)
                }
                SinkSpec::Mqtt(section) => {
                    SinkPlan::Mqtt(config.mqtt_sink_from(section, &setting, &name)?)
                }
                SinkSpec::Nats(section) => {
                    SinkPlan::Nats(config.nats_sink_from(section, &setting)?)
                }
                SinkSpec::Webhook(section) => {
                    SinkPlan::Webhook(config.webhook_sink_from(section, &setting)?)
                }
            };
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
                plan.sinks
                    .retain(|sink| !matches!(sink.spec, SinkPlan::Persistence(_)));
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
            sources.push(match &planned.spec {
                SourcePlan::Synthetic(config) => Box::new(config.clone().build(&planned.name)),
                SourcePlan::Http(config) => Box::new(config.clone().build(&planned.name, &setting)),
                SourcePlan::Tcp(config) => Box::new(config.clone().build(&planned.name, &setting)),
                SourcePlan::Frames(source) => Box::new(dav2d_frames::FrameSource {
                    name: planned.name.clone(),
                    ..source.clone()
                }),
                SourcePlan::Mqtt(config) => Box::new(config.clone().build(&planned.name)),
                SourcePlan::Nats(config) => Box::new(config.clone().build(&planned.name)),
            });
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
            sinks.push(match &planned.spec {
                SinkPlan::Persistence(config) => Box::new(config.clone().build(&planned.name)),
                SinkPlan::Mqtt(config) => Box::new(config.clone().build(&planned.name)),
                SinkPlan::Nats(config) => Box::new(config.clone().build(&planned.name)),
                SinkPlan::Webhook(config) => Box::new(config.clone().build(&planned.name)),
            });
        }
        (sinks, stats)
    }
}
