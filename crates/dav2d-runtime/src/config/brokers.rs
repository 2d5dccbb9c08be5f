//! The broker connectors' sections (`sources:`/`sinks:` entries of kind
//! `mqtt`), checked where they are written and resolved into the
//! connectors' settings.

use std::time::Duration;

use serde::Deserialize;

use dav2d_component::{Sink, Source};

use super::kind::{Declared, SinkSection, SinkSetting, SourceSection, SourceSetting, names_read};
use super::{Config, ConfigError, Spanned};
use crate::spec::{ComponentSpec, component, filters, route_streams};

/// One subscription of an MQTT source as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MqttSubscriptionSection {
    /// The topic template, e.g. `plant/{key}/temperature`.
    pub topic: Spanned<String>,
    /// The stream, unless the template has `{stream}`.
    pub stream: Option<String>,
}

/// An MQTT source (`kind: mqtt` in `sources:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceSection {
    /// The component's name.
    pub name: Option<String>,
    /// `mqtt://host:port`.
    pub url: Spanned<String>,
    /// The client id (default `dav2d-<name>`).
    pub client_id: Option<String>,
    /// What to subscribe to.
    pub subscriptions: Spanned<Vec<MqttSubscriptionSection>>,
    /// 0 or 1 (default 1).
    pub qos: Option<Spanned<u8>>,
    /// Whether the broker forgets the session at disconnect (default false:
    /// messages sent while dav2d is away wait for it).
    pub clean_session: Option<bool>,
    /// e.g. `30s`.
    pub keep_alive: Option<Spanned<String>>,
    /// Messages received and not applied yet, at most (default 1024).
    pub queue: Option<Spanned<u64>>,
}

/// An MQTT sink (`kind: mqtt` in `sinks:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkSection {
    /// The component's name.
    pub name: Option<String>,
    /// `mqtt://host:port`.
    pub url: Spanned<String>,
    /// The client id (default `dav2d-<name>`).
    pub client_id: Option<String>,
    /// Nodes and constraints to publish (default: every one).
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// Where updates go (default `dav2d/{stream}/{key}`).
    pub topic: Option<Spanned<String>>,
    /// 0 or 1 (default 1).
    pub qos: Option<Spanned<u8>>,
    /// Publish latest values retained (default true).
    pub retain: Option<bool>,
}

impl Config {
    fn qos(&self, qos: &Option<Spanned<u8>>, field: String) -> Result<u8, ConfigError> {
        match qos {
            None => Ok(1),
            Some(q) if q.value <= 1 => Ok(q.value),
            Some(q) => Err(self.error_at(
                q,
                field,
                format!("QoS {} is not taken; give 0 or 1", q.value),
            )),
        }
    }

    fn broker(&self, url: &Spanned<String>, field: String) -> Result<(String, u16), ConfigError> {
        dav2d_mqtt::parse_broker(url.value.trim()).map_err(|m| self.error_at(url, field, m))
    }

    /// The MQTT source entry `section` (at `prefix`), named `name`.
    pub(crate) fn mqtt_source_from(
        &self,
        section: &MqttSourceSection,
        prefix: &str,
        name: &str,
    ) -> Result<dav2d_mqtt::MqttSourceConfig, ConfigError> {
        let mut subscriptions = Vec::new();
        if section.subscriptions.value.is_empty() {
            return Err(self.error_at(
                &section.subscriptions,
                format!("{prefix}.subscriptions"),
                "give at least one subscription: - topic: plant/{key}/temperature, stream: temperature".to_string(),
            ));
        }
        for (i, sub) in section.subscriptions.value.iter().enumerate() {
            let field = format!("{prefix}.subscriptions[{i}].topic");
            let topic = dav2d_mqtt::TopicTemplate::parse(sub.topic.value.trim())
                .map_err(|m| self.error_at(&sub.topic, field.clone(), m))?;
            if !topic.names_stream() && sub.stream.is_none() {
                return Err(self.error_at(
                    &sub.topic,
                    field,
                    "names no stream: put {stream} in the topic or give stream:".to_string(),
                ));
            }
            subscriptions.push(dav2d_component::Route {
                topic,
                stream: sub.stream.clone(),
            });
        }
        let queue = match &section.queue {
            Some(q) if !(1..=1 << 20).contains(&q.value) => {
                return Err(self.error_at(
                    q,
                    format!("{prefix}.queue"),
                    format!("{} is out of range; give 1 to 1048576", q.value),
                ));
            }
            Some(q) => q.value as usize,
            None => 1024,
        };
        Ok(dav2d_mqtt::MqttSourceConfig {
            broker: self.broker(&section.url, format!("{prefix}.url"))?,
            client_id: section
                .client_id
                .clone()
                .unwrap_or_else(|| format!("dav2d-{name}")),
            subscriptions,
            qos: self.qos(&section.qos, format!("{prefix}.qos"))?,
            clean_session: section.clean_session.unwrap_or(false),
            keep_alive: self
                .duration(&section.keep_alive, format!("{prefix}.keep_alive"))?
                .unwrap_or(Duration::from_secs(30))
                .max(Duration::from_secs(1)),
            queue,
        })
    }

    /// The MQTT sink entry `section` (at `prefix`), named `name`.
    pub(crate) fn mqtt_sink_from(
        &self,
        section: &MqttSinkSection,
        prefix: &str,
        name: &str,
    ) -> Result<dav2d_mqtt::MqttSinkConfig, ConfigError> {
        let topic = match &section.topic {
            Some(t) => dav2d_mqtt::TopicTemplate::parse(t.value.trim())
                .map_err(|m| self.error_at(t, format!("{prefix}.topic"), m))?,
            None => dav2d_mqtt::TopicTemplate::parse("dav2d/{stream}/{key}").map_err(|m| {
                ConfigError {
                    file: self.file().to_path_buf(),
                    line: 0,
                    column: 0,
                    field: format!("{prefix}.topic"),
                    message: m,
                }
            })?,
        };
        Ok(dav2d_mqtt::MqttSinkConfig {
            broker: self.broker(&section.url, format!("{prefix}.url"))?,
            client_id: section
                .client_id
                .clone()
                .unwrap_or_else(|| format!("dav2d-{name}")),
            names: section.names.iter().map(|n| n.value.clone()).collect(),
            topic,
            qos: self.qos(&section.qos, format!("{prefix}.qos"))?,
            retain: section.retain.unwrap_or(true),
        })
    }
}

/// One subject of a NATS source as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NatsSubjectSection {
    /// The subject template, e.g. `plant.{key}.temperature`.
    pub subject: Spanned<String>,
    /// The stream, unless the template has `{stream}`.
    pub stream: Option<String>,
}

/// Reading through JetStream, as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct JetStreamSection {
    /// The JetStream stream (created over the subjects if missing).
    pub stream: Spanned<String>,
    /// The durable consumer (default `dav2d-<name>`).
    pub durable: Option<String>,
    /// `applied` (default) or `durable` (after the fsync that covers it).
    pub ack: Option<Spanned<String>>,
}

/// A NATS source (`kind: nats` in `sources:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceSection {
    /// The component's name.
    pub name: Option<String>,
    /// `nats://host:port`.
    pub url: Spanned<String>,
    /// What to read.
    pub subjects: Spanned<Vec<NatsSubjectSection>>,
    /// Read through a JetStream durable consumer.
    pub jetstream: Option<JetStreamSection>,
}

/// A NATS sink (`kind: nats` in `sinks:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkSection {
    /// The component's name.
    pub name: Option<String>,
    /// `nats://host:port`.
    pub url: Spanned<String>,
    /// Nodes and constraints to publish (default: every one).
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// Where updates go (default `dav2d.out.{stream}.{key}`).
    pub subject: Option<Spanned<String>>,
    /// Publish through JetStream with `Nats-Msg-Id` (default false).
    pub jetstream: Option<bool>,
}

impl Config {
    fn nats_url(&self, url: &Spanned<String>, field: String) -> Result<String, ConfigError> {
        let text = url.value.trim();
        dav2d_nats::check_url(text).map_err(|m| self.error_at(url, field, m))?;
        Ok(text.to_string())
    }

    /// The NATS source entry `section` (at `prefix`), named `name`.
    pub(crate) fn nats_source_from(
        &self,
        section: &NatsSourceSection,
        prefix: &str,
        name: &str,
    ) -> Result<dav2d_nats::NatsSourceConfig, ConfigError> {
        if section.subjects.value.is_empty() {
            return Err(self.error_at(
                &section.subjects,
                format!("{prefix}.subjects"),
                "give at least one subject: - subject: plant.{key}.temperature, stream: temperature".to_string(),
            ));
        }
        let mut subjects = Vec::new();
        for (i, s) in section.subjects.value.iter().enumerate() {
            let field = format!("{prefix}.subjects[{i}].subject");
            let subject = dav2d_component::TopicTemplate::parse_as(
                s.subject.value.trim(),
                dav2d_component::Syntax::Nats,
            )
            .map_err(|m| self.error_at(&s.subject, field.clone(), m))?;
            if !subject.names_stream() && s.stream.is_none() {
                return Err(self.error_at(
                    &s.subject,
                    field,
                    "names no stream: put {stream} in the subject or give stream:".to_string(),
                ));
            }
            subjects.push(dav2d_component::Route {
                topic: subject,
                stream: s.stream.clone(),
            });
        }
        let jetstream = match &section.jetstream {
            None => None,
            Some(js) => Some(dav2d_nats::JetStreamSource {
                stream: js.stream.value.clone(),
                durable: js
                    .durable
                    .clone()
                    .unwrap_or_else(|| format!("dav2d-{name}")),
                ack: match &js.ack {
                    None => dav2d_nats::Ack::Applied,
                    Some(a) => match a.value.as_str() {
                        "applied" => dav2d_nats::Ack::Applied,
                        "durable" if self.persistence()?.is_none() => {
                            return Err(self.error_at(
                                a,
                                format!("{prefix}.jetstream.ack"),
                                "ack: durable waits for persistence, which is off; turn persistence on or use ack: applied".to_string(),
                            ));
                        }
                        "durable" => dav2d_nats::Ack::Durable,
                        other => {
                            return Err(self.error_at(
                                a,
                                format!("{prefix}.jetstream.ack"),
                                format!("'{other}' is not applied or durable"),
                            ));
                        }
                    },
                },
            }),
        };
        Ok(dav2d_nats::NatsSourceConfig {
            url: self.nats_url(&section.url, format!("{prefix}.url"))?,
            subjects,
            jetstream,
        })
    }

    /// The NATS sink entry `section` (at `prefix`).
    pub(crate) fn nats_sink_from(
        &self,
        section: &NatsSinkSection,
        prefix: &str,
    ) -> Result<dav2d_nats::NatsSinkConfig, ConfigError> {
        let written = section.subject.as_ref();
        let subject = dav2d_component::TopicTemplate::parse_as(
            written.map_or("dav2d.out.{stream}.{key}", |s| s.value.trim()),
            dav2d_component::Syntax::Nats,
        )
        .map_err(|m| match written {
            Some(s) => self.error_at(s, format!("{prefix}.subject"), m),
            None => self.error_at(&section.url, format!("{prefix}.subject"), m),
        })?;
        Ok(dav2d_nats::NatsSinkConfig {
            url: self.nats_url(&section.url, format!("{prefix}.url"))?,
            names: section.names.iter().map(|n| n.value.clone()).collect(),
            subject,
            jetstream: section.jetstream.unwrap_or(false),
        })
    }
}

/// The `cluster:` section: scale-out over NATS JetStream.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `nats://host:port` of the JetStream server (or `--cluster URL`).
    pub url: Option<Spanned<String>>,
    /// Partitions of the key space, the same on every instance (default 16).
    pub partitions: Option<Spanned<u32>>,
    /// This instance's name (default: the host name and process id).
    pub instance: Option<String>,
    /// A partition whose owner stops renewing is taken over after this
    /// long, e.g. `10s` (the default).
    pub lease_ttl: Option<Spanned<String>>,
    /// How often an owner checkpoints each partition it applies, e.g. `10s`
    /// (the default); `0s` turns checkpoints off (a new owner replays the
    /// partition from its first message).
    pub checkpoint_every: Option<Spanned<String>>,
    /// Copies JetStream keeps of the input stream and the buckets (default
    /// 1; 3 on a three-server JetStream cluster).
    pub replicas: Option<Spanned<usize>>,
    /// How often owners publish their changed keys' latest readings for
    /// reads on other instances, e.g. `1s` (the default).
    pub publish_every: Option<Spanned<String>>,
}

impl Config {
    /// The cluster this instance joins, if the file (or `url`, from the
    /// command line) asks for one.
    pub fn cluster(
        &self,
        url: Option<&str>,
    ) -> Result<Option<dav2d_cluster::ClusterConfig>, ConfigError> {
        let section = &self.cluster;
        let url = match (url, &section.url) {
            (Some(url), _) => url.to_string(),
            (None, Some(written)) => self.nats_url(written, "cluster.url".to_string())?,
            (None, None) => return Ok(None),
        };
        dav2d_nats::check_url(&url).map_err(|m| ConfigError {
            file: self.file().to_path_buf(),
            line: 0,
            column: 0,
            field: "--cluster".to_string(),
            message: m,
        })?;
        let partitions = match &section.partitions {
            Some(p) if !(1..=4096).contains(&p.value) => {
                return Err(self.error_at(
                    p,
                    "cluster.partitions".to_string(),
                    format!(
                        "{} is out of range; give 1 to 4096 (the same on every instance)",
                        p.value
                    ),
                ));
            }
            Some(p) => p.value,
            None => 16,
        };
        let lease_ttl = self
            .duration(&section.lease_ttl, "cluster.lease_ttl".to_string())?
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(300));
        let checkpoint_every = self
            .duration(
                &section.checkpoint_every,
                "cluster.checkpoint_every".to_string(),
            )?
            .unwrap_or(Duration::from_secs(10));
        let publish_every = self
            .duration(&section.publish_every, "cluster.publish_every".to_string())?
            .unwrap_or(Duration::from_secs(1));
        let replicas = match &section.replicas {
            Some(r) if !(1..=5).contains(&r.value) => {
                return Err(self.error_at(
                    r,
                    "cluster.replicas".to_string(),
                    format!("{} is out of range; JetStream keeps 1 to 5 copies", r.value),
                ));
            }
            Some(r) => r.value,
            None => 1,
        };
        let instance = section.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "dav2d".to_string());
            format!("{host}-{}", std::process::id())
        });
        Ok(Some(dav2d_cluster::ClusterConfig {
            url,
            partitions,
            instance,
            lease_ttl,
            checkpoint_every,
            replicas,
            publish_every,
        }))
    }
}

// The broker kinds, as the table in `kinds.rs` reads them.

impl SourceSetting for dav2d_mqtt::MqttSourceConfig {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: format!(
                "mqtt://{}:{} [{}]",
                self.broker.0,
                self.broker.1,
                filters(&self.subscriptions)
            ),
            ..component(name, "mqtt", route_streams(&self.subscriptions))
        }
    }
}

impl SourceSection for MqttSourceSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        Ok(Box::new(config.mqtt_source_from(self, at, name)?))
    }

    fn declares(&self, at: &str) -> Vec<Declared<'_>> {
        let routes = self.subscriptions.value.iter();
        route_declares(
            routes.map(|s| (&s.topic, s.stream.as_deref())),
            at,
            "subscriptions",
        )
    }
}

impl SourceSetting for dav2d_nats::NatsSourceConfig {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: format!("{} [{}]", self.url, filters(&self.subjects)),
            ..component(name, "nats", route_streams(&self.subjects))
        }
    }
}

impl SourceSection for NatsSourceSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        Ok(Box::new(config.nats_source_from(self, at, name)?))
    }

    fn declares(&self, at: &str) -> Vec<Declared<'_>> {
        let routes = self.subjects.value.iter();
        route_declares(
            routes.map(|s| (&s.subject, s.stream.as_deref())),
            at,
            "subjects",
        )
    }
}

impl SinkSetting for dav2d_mqtt::MqttSinkConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: format!("mqtt://{}:{}", self.broker.0, self.broker.1),
            ..component(name, "mqtt", self.names.clone())
        }
    }
}

impl SinkSection for MqttSinkSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError> {
        Ok(Box::new(config.mqtt_sink_from(self, at, name)?))
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        names_read(&self.names, at)
    }
}

impl SinkSetting for dav2d_nats::NatsSinkConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            address: self.url.clone(),
            ..component(name, "nats", self.names.clone())
        }
    }
}

impl SinkSection for NatsSinkSection {
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
        Ok(Box::new(config.nats_sink_from(self, at)?))
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        names_read(&self.names, at)
    }
}

/// The streams a broker source's routes name with `stream:` (a template's
/// `{stream}` names them per message), each located at its route.
fn route_declares<'a>(
    routes: impl Iterator<Item = (&'a Spanned<String>, Option<&'a str>)>,
    at: &str,
    list: &str,
) -> Vec<Declared<'a>> {
    (routes.enumerate())
        .filter_map(|(j, (written, stream))| {
            Some(Declared {
                stream: stream?,
                written,
                field: format!("{at}.{list}[{j}].stream"),
                frames: false,
            })
        })
        .collect()
}
