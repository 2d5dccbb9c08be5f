//! The MQTT source's and sink's settings (resolved from YAML by the
//! runtime), and the functions that build the components from them.

use std::time::Duration;

#[cfg(feature = "client")]
use crate::{MqttSink, MqttSource};
use dav2d_component::section::Login;
use dav2d_component::{BrokerTls, Route, TopicTemplate};

/// The MQTT source's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSourceConfig {
    /// The broker, `host:port`.
    pub broker: (String, u16),
    /// The user and password given to the broker, if any.
    pub login: Option<Login>,
    /// TLS to the broker (`mqtts://`), if asked for.
    pub tls: Option<BrokerTls>,
    /// The client id (a session the broker keeps when `clean_session` is false).
    pub client_id: String,
    /// What to subscribe to, and where each topic's messages go.
    pub subscriptions: Vec<Route>,
    /// 0 (at most once) or 1 (at least once: acknowledged after apply).
    pub qos: u8,
    /// Whether the broker forgets the session (and what it queued) at disconnect.
    pub clean_session: bool,
    /// The MQTT keep-alive.
    pub keep_alive: Duration,
    /// Messages received and not yet applied, at most; past it the client
    /// stops reading and the broker holds them.
    pub queue: usize,
    /// The largest message payload taken, in bytes; a larger one is refused,
    /// counted and acknowledged.
    pub max_message: usize,
}

impl MqttSourceConfig {
    /// The component these settings describe, named `name`.
    #[cfg(feature = "client")]
    pub fn build(self, name: &str) -> MqttSource {
        MqttSource {
            name: name.to_string(),
            config: self,
        }
    }
}

/// The MQTT sink's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSinkConfig {
    /// The broker, `host:port`.
    pub broker: (String, u16),
    /// The user and password given to the broker, if any.
    pub login: Option<Login>,
    /// TLS to the broker (`mqtts://`), if asked for.
    pub tls: Option<BrokerTls>,
    /// The client id.
    pub client_id: String,
    /// The nodes and constraints published (empty: every one).
    pub names: Vec<String>,
    /// Where an update of (name, key) goes, e.g. `dav2d/{stream}/{key}`.
    pub topic: TopicTemplate,
    /// 0 or 1.
    pub qos: u8,
    /// Updates are published retained (a constraint's with its new state).
    pub retain: bool,
    /// The largest update payload published, in bytes; a larger one is
    /// skipped, counted and logged.
    pub max_message: usize,
}

impl MqttSinkConfig {
    /// The component these settings describe, named `name`.
    #[cfg(feature = "client")]
    pub fn build(self, name: &str) -> MqttSink {
        MqttSink {
            name: name.to_string(),
            config: self,
        }
    }
}

/// `mqtt://host:port` (port 1883 if left out) or `mqtts://host:port` (TLS,
/// port 8883 if left out) as (host, port, whether TLS).
pub fn parse_broker(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (rest, false, 1883)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (rest, true, 8883)
    } else {
        return Err(format!(
            "'{url}' is not an MQTT URL; write mqtt://127.0.0.1:1883, or mqtts://host:8883 for TLS"
        ));
    };
    if rest.contains('@') {
        return Err(format!(
            "'{url}' carries a login here; it is read by the section (mqtt://user:password@host:port)"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("'{port}' in '{url}' is not a port"))?,
        ),
        None => (rest, default_port),
    };
    if host.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    Ok((host.to_string(), port, tls))
}

/// The largest packet MQTT can carry (its remaining length, 256 MiB - 1):
/// the client reads any message the broker sends, so one over `max_message`
/// can be refused and acknowledged instead of breaking the connection again
/// and again (the broker's `message_size_limit` bounds what it accepts).
pub(crate) const MQTT_MAX_PACKET: usize = 268_435_455;
