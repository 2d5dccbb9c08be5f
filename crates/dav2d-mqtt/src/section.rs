//! The `sources:` and `sinks:` entries of kind `mqtt`: read from YAML,
//! checked where they are written, and resolved into [`MqttSourceConfig`]
//! and [`MqttSinkConfig`].

use std::time::Duration;

use dav2d_component::section::{
    ConfigError, Declared, SectionContext, SinkSection, SinkSetting, SourceSection, SourceSetting,
    Spanned, names_read, route_declares,
};
use dav2d_component::{Route, TopicTemplate};
use serde::Deserialize;

use dav2d_component::BrokerTls;
use dav2d_component::section::{Login, instance_name, split_login};

use crate::{MqttSinkConfig, MqttSourceConfig, parse_broker};

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
    /// The user given to the broker (or in the URL: `mqtt://user:password@host`);
    /// `${NAME}` reads the environment variable NAME.
    pub username: Option<Spanned<String>>,
    /// Its password (`${NAME}`: from the environment).
    pub password: Option<Spanned<String>>,
    /// With `mqtts://`: a PEM file of the CAs to trust (default: the
    /// system's), relative to the config's folder.
    pub ca: Option<Spanned<String>>,
    /// The client id (default: `dav2d-<name>` for a persistent session,
    /// which must stay the same; `dav2d-<name>-<host>-<pid>` otherwise, so
    /// two instances do not take each other's connection); `${NAME}` reads
    /// the environment.
    pub client_id: Option<Spanned<String>>,
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
    /// The largest message taken, e.g. `4MiB` (default: `limits.value_size`
    /// plus 64 KiB).
    pub max_message: Option<Spanned<String>>,
}

/// An MQTT sink (`kind: mqtt` in `sinks:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkSection {
    /// The component's name.
    pub name: Option<String>,
    /// `mqtt://host:port`.
    pub url: Spanned<String>,
    /// The user given to the broker (or in the URL: `mqtt://user:password@host`);
    /// `${NAME}` reads the environment variable NAME.
    pub username: Option<Spanned<String>>,
    /// Its password (`${NAME}`: from the environment).
    pub password: Option<Spanned<String>>,
    /// With `mqtts://`: a PEM file of the CAs to trust (default: the
    /// system's), relative to the config's folder.
    pub ca: Option<Spanned<String>>,
    /// The client id (default: `dav2d-<name>` for a persistent session,
    /// which must stay the same; `dav2d-<name>-<host>-<pid>` otherwise, so
    /// two instances do not take each other's connection); `${NAME}` reads
    /// the environment.
    pub client_id: Option<Spanned<String>>,
    /// Nodes and constraints to publish (default: every one).
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// Where updates go (default `dav2d/{stream}/{key}`).
    pub topic: Option<Spanned<String>>,
    /// 0 or 1 (default 1).
    pub qos: Option<Spanned<u8>>,
    /// Publish latest values retained (default true).
    pub retain: Option<bool>,
    /// The largest update published, e.g. `4MiB` (default: `limits.value_size`
    /// plus 64 KiB).
    pub max_message: Option<Spanned<String>>,
}

fn qos(
    context: &SectionContext,
    qos: &Option<Spanned<u8>>,
    field: String,
) -> Result<u8, ConfigError> {
    match qos {
        None => Ok(1),
        Some(q) if q.value <= 1 => Ok(q.value),
        Some(q) => Err(context.error_at(
            q,
            field,
            format!("QoS {} is not taken; give 0 or 1", q.value),
        )),
    }
}

/// A `max_message` as written, or its default: a value's size limit plus
/// room for the rest of a sample (its key, time and JSON).
fn max_message(
    context: &SectionContext,
    written: &Option<Spanned<String>>,
    field: &str,
) -> Result<usize, ConfigError> {
    let default = context.value_size.saturating_add(64 << 10);
    let bytes = context.size(written, field)?.unwrap_or(default);
    match written {
        Some(text) if bytes == 0 || bytes > crate::config::MQTT_MAX_PACKET => Err(context
            .error_at(
                text,
                field.to_string(),
                format!(
                    "{bytes} is out of range; give 1 to {} (what MQTT can carry)",
                    crate::config::MQTT_MAX_PACKET
                ),
            )),
        _ => Ok(bytes.min(crate::config::MQTT_MAX_PACKET)),
    }
}

/// Where a section connects, and as whom.
struct Connection {
    broker: (String, u16),
    login: Option<Login>,
    tls: Option<BrokerTls>,
    client_id: String,
}

/// The broker of `url`, the login (from the URL or the fields) and the
/// client id (`persistent`: a session the broker keeps, so the id stays).
fn connection(
    context: &SectionContext,
    written: Written<'_>,
    prefix: &str,
    name: &str,
    persistent: bool,
) -> Result<Connection, ConfigError> {
    let (url, from_url) = split_login(written.url.value.trim());
    let (host, port, tls) = parse_broker(&url)
        .map_err(|m| context.error_at(written.url, format!("{prefix}.url"), m))?;
    let tls = context.broker_tls(tls, written.ca, prefix)?;
    if tls.is_none()
        && let Some(ca) = written.ca
    {
        return Err(context.error_at(
            ca,
            format!("{prefix}.ca"),
            "a CA file is for TLS: write the URL as mqtts://host:8883".to_string(),
        ));
    }
    let login = context.login(from_url, (written.username, written.password), prefix)?;
    let client_id = match written.client_id {
        Some(id) => context.secret(id, &format!("{prefix}.client_id"))?,
        None if persistent => format!("dav2d-{name}"),
        None => format!("dav2d-{name}-{}", instance_name()),
    };
    Ok(Connection {
        broker: (host, port),
        login,
        tls,
        client_id,
    })
}

/// The connection fields of a section as written.
struct Written<'a> {
    url: &'a Spanned<String>,
    username: &'a Option<Spanned<String>>,
    password: &'a Option<Spanned<String>>,
    ca: &'a Option<Spanned<String>>,
    client_id: &'a Option<Spanned<String>>,
}

impl MqttSourceSection {
    /// The source's settings; `prefix` is where it is written, `name` its name.
    pub fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
        name: &str,
    ) -> Result<MqttSourceConfig, ConfigError> {
        if self.subscriptions.value.is_empty() {
            return Err(context.error_at(
                &self.subscriptions,
                format!("{prefix}.subscriptions"),
                "give at least one subscription: - topic: plant/{key}/temperature, stream: temperature".to_string(),
            ));
        }
        let mut subscriptions = Vec::new();
        for (i, sub) in self.subscriptions.value.iter().enumerate() {
            let field = format!("{prefix}.subscriptions[{i}].topic");
            let topic = TopicTemplate::parse(sub.topic.value.trim())
                .map_err(|m| context.error_at(&sub.topic, field.clone(), m))?;
            if !topic.names_stream() && sub.stream.is_none() {
                return Err(context.error_at(
                    &sub.topic,
                    field,
                    "names no stream: put {stream} in the topic or give stream:".to_string(),
                ));
            }
            subscriptions.push(Route {
                topic,
                stream: sub.stream.clone(),
            });
        }
        let queue = match &self.queue {
            Some(q) => context.within(q, format!("{prefix}.queue"), 1, 1 << 20)? as usize,
            None => 1024,
        };
        let clean_session = self.clean_session.unwrap_or(false);
        let written = Written {
            url: &self.url,
            username: &self.username,
            password: &self.password,
            ca: &self.ca,
            client_id: &self.client_id,
        };
        let connection = connection(context, written, prefix, name, !clean_session)?;
        Ok(MqttSourceConfig {
            broker: connection.broker,
            login: connection.login,
            tls: connection.tls,
            client_id: connection.client_id,
            subscriptions,
            qos: qos(context, &self.qos, format!("{prefix}.qos"))?,
            clean_session,
            keep_alive: context
                .duration(&self.keep_alive, format!("{prefix}.keep_alive"))?
                .unwrap_or(Duration::from_secs(30))
                .max(Duration::from_secs(1)),
            queue,
            max_message: max_message(context, &self.max_message, &format!("{prefix}.max_message"))?,
        })
    }
}

impl MqttSinkSection {
    /// The sink's settings; `prefix` is where it is written, `name` its name.
    pub fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
        name: &str,
    ) -> Result<MqttSinkConfig, ConfigError> {
        let field = format!("{prefix}.topic");
        let topic = match &self.topic {
            Some(t) => {
                TopicTemplate::parse(t.value.trim()).map_err(|m| context.error_at(t, field, m))?
            }
            None => TopicTemplate::parse("dav2d/{stream}/{key}")
                .map_err(|m| context.error_in(field, m))?,
        };
        let written = Written {
            url: &self.url,
            username: &self.username,
            password: &self.password,
            ca: &self.ca,
            client_id: &self.client_id,
        };
        let connection = connection(context, written, prefix, name, false)?;
        Ok(MqttSinkConfig {
            broker: connection.broker,
            login: connection.login,
            tls: connection.tls,
            client_id: connection.client_id,
            names: self.names.iter().map(|n| n.value.clone()).collect(),
            topic,
            qos: qos(context, &self.qos, format!("{prefix}.qos"))?,
            retain: self.retain.unwrap_or(true),
            max_message: max_message(context, &self.max_message, &format!("{prefix}.max_message"))?,
        })
    }
}

impl SourceSection for MqttSourceSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[cfg_attr(feature = "client", allow(unused_variables))]
    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        #[cfg(feature = "client")]
        return Ok(Box::new(self.settings(context, at, name)?));
        #[cfg(not(feature = "client"))]
        return {
            self.settings(context, at, name)?;
            Err(dav2d_component::section::built_without_kind(
                context, at, kind, "MQTT", "mqtt",
            ))
        };
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

impl SinkSection for MqttSinkSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[cfg_attr(feature = "client", allow(unused_variables))]
    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError> {
        #[cfg(feature = "client")]
        return Ok(Box::new(self.settings(context, at, name)?));
        #[cfg(not(feature = "client"))]
        return {
            self.settings(context, at, name)?;
            Err(dav2d_component::section::built_without_kind(
                context, at, kind, "MQTT", "mqtt",
            ))
        };
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        names_read(&self.names, at)
    }
}
