//! The broker connectors' sections (`sources:`/`sinks:` entries of kind
//! `mqtt`), checked where they are written and resolved into the
//! connectors' settings.

use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigError, Spanned};

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
            subscriptions.push(dav2d_mqtt::Subscription {
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
