//! The NATS source's and sink's settings (resolved from YAML by the
//! runtime), and the functions that build the components from them.

use dav2d_component::{Route, TopicTemplate};

#[cfg(feature = "client")]
use crate::{NatsSink, NatsSource};

/// When a JetStream message is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Once applied to the engine.
    Applied,
    /// Once the persistence sink made it durable (fsync).
    Durable,
}

/// Reading through a JetStream durable consumer instead of core subjects.
#[derive(Clone, Debug, PartialEq)]
pub struct JetStreamSource {
    /// The JetStream stream (created over the subjects if missing).
    pub stream: String,
    /// The durable consumer's name.
    pub durable: String,
    /// When messages are acknowledged.
    pub ack: Ack,
    /// How long JetStream waits for an acknowledgement before it sends a
    /// message again (after a crash: how soon the unacknowledged return).
    pub ack_wait: std::time::Duration,
}

/// The NATS source's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsSourceConfig {
    /// `nats://host:port` or `tls://host:port` (a login is in `auth`, never here).
    pub url: String,
    /// How the client authenticates.
    pub auth: Auth,
    /// TLS to the server (`tls://`, or a `ca` given), if asked for.
    pub tls: Option<dav2d_component::BrokerTls>,
    /// What to read (subject templates in NATS syntax), and where each
    /// subject's messages go.
    pub subjects: Vec<Route>,
    /// Read through JetStream (at least once) rather than core NATS.
    pub jetstream: Option<JetStreamSource>,
}

impl NatsSourceConfig {
    /// The component these settings describe, named `name`.
    #[cfg(feature = "client")]
    pub fn build(self, name: &str) -> NatsSource {
        NatsSource {
            name: name.to_string(),
            config: self,
        }
    }
}

/// The NATS sink's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsSinkConfig {
    /// `nats://host:port` or `tls://host:port` (a login is in `auth`, never here).
    pub url: String,
    /// How the client authenticates.
    pub auth: Auth,
    /// TLS to the server (`tls://`, or a `ca` given), if asked for.
    pub tls: Option<dav2d_component::BrokerTls>,
    /// The nodes and constraints published (empty: every one).
    pub names: Vec<String>,
    /// Where an update goes, e.g. `dav2d.out.{stream}.{key}`.
    pub subject: TopicTemplate,
    /// Publish through JetStream (waiting for its acknowledgement, with
    /// `Nats-Msg-Id` for deduplication) rather than core NATS.
    pub jetstream: bool,
}

impl NatsSinkConfig {
    /// The component these settings describe, named `name`.
    #[cfg(feature = "client")]
    pub fn build(self, name: &str) -> NatsSink {
        NatsSink {
            name: name.to_string(),
            config: self,
        }
    }
}

/// How a NATS client authenticates.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Auth {
    /// Not at all.
    #[default]
    None,
    /// With a user and password.
    Login(dav2d_component::section::Login),
    /// With a token.
    Token(Token),
}

/// A NATS token (never printed).
#[derive(Clone, PartialEq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Checks a NATS URL: `nats://host:port`, or `tls://host:port` for TLS.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or_else(|| {
            format!(
                "'{url}' is not a NATS URL; write nats://127.0.0.1:4222, or tls://host:4222 for TLS"
            )
        })?;
    if rest.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    Ok(())
}
