//! The `sources:` and `sinks:` entries of kind `nats`: read from YAML,
//! checked where they are written, and resolved into [`NatsSourceConfig`]
//! and [`NatsSinkConfig`].

use std::time::Duration;

use dav2d_component::section::{
    ConfigError, Declared, SectionContext, SinkSection, SinkSetting, SourceSection, SourceSetting,
    Spanned, names_read, route_declares,
};
use dav2d_component::{Route, Syntax, TopicTemplate};
use serde::Deserialize;

use dav2d_component::section::split_login;

use crate::{Ack, Auth, JetStreamSource, NatsSinkConfig, NatsSourceConfig, Token, check_url};

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
    /// How long JetStream waits for an acknowledgement before it sends a
    /// message again, e.g. `10s` (the default).
    pub ack_wait: Option<Spanned<String>>,
}

/// A NATS source (`kind: nats` in `sources:`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceSection {
    /// The component's name.
    pub name: Option<String>,
    /// `nats://host:port`.
    pub url: Spanned<String>,
    /// The user given to the server (or in the URL: `nats://user:password@host`);
    /// `${NAME}` reads the environment variable NAME.
    pub username: Option<Spanned<String>>,
    /// Its password (`${NAME}`: from the environment).
    pub password: Option<Spanned<String>>,
    /// A token instead of a user (`${NAME}`: from the environment).
    pub token: Option<Spanned<String>>,
    /// A PEM file of the CAs to trust for TLS (`tls://`; default: the
    /// system's), relative to the config's folder; giving it turns TLS on.
    pub ca: Option<Spanned<String>>,
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
    /// The user given to the server (or in the URL: `nats://user:password@host`);
    /// `${NAME}` reads the environment variable NAME.
    pub username: Option<Spanned<String>>,
    /// Its password (`${NAME}`: from the environment).
    pub password: Option<Spanned<String>>,
    /// A token instead of a user (`${NAME}`: from the environment).
    pub token: Option<Spanned<String>>,
    /// A PEM file of the CAs to trust for TLS (`tls://`; default: the
    /// system's), relative to the config's folder; giving it turns TLS on.
    pub ca: Option<Spanned<String>>,
    /// Nodes and constraints to publish (default: every one).
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// Where updates go (default `dav2d.out.{stream}.{key}`).
    pub subject: Option<Spanned<String>>,
    /// Publish through JetStream with `Nats-Msg-Id` (default false).
    pub jetstream: Option<bool>,
}

/// How long JetStream waits for an acknowledgement by default: longer than
/// applying and (with `ack: durable`) a flush take, short enough that what a
/// crash left unacknowledged comes back soon after a restart.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(10);

/// The connection fields of a section as written.
struct Written<'a> {
    url: &'a Spanned<String>,
    username: &'a Option<Spanned<String>>,
    password: &'a Option<Spanned<String>>,
    token: &'a Option<Spanned<String>>,
    ca: &'a Option<Spanned<String>>,
}

/// Where a section connects: its URL (login taken out), how it
/// authenticates, and TLS.
struct Connection {
    url: String,
    auth: Auth,
    tls: Option<dav2d_component::BrokerTls>,
}

/// The URL of a section (its login taken out) and how it authenticates.
fn connection(
    context: &SectionContext,
    written: Written<'_>,
    prefix: &str,
) -> Result<Connection, ConfigError> {
    let Written {
        url,
        username,
        password,
        token,
        ca,
    } = written;
    let text = url.value.trim();
    check_url(text).map_err(|m| context.error_at(url, format!("{prefix}.url"), m))?;
    let (bare, from_url) = split_login(text);
    let login = context.login(from_url, (username, password), prefix)?;
    let auth = match (login, token) {
        (None, None) => Auth::None,
        (Some(login), None) => Auth::Login(login),
        (None, Some(token)) => {
            Auth::Token(Token(context.secret(token, &format!("{prefix}.token"))?))
        }
        (Some(_), Some(token)) => {
            return Err(context.error_at(
                token,
                format!("{prefix}.token"),
                "give a token or a user and password, not both".to_string(),
            ));
        }
    };
    let tls = context.broker_tls(bare.starts_with("tls://"), ca, prefix)?;
    Ok(Connection {
        url: bare,
        auth,
        tls,
    })
}

impl JetStreamSection {
    fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
        name: &str,
    ) -> Result<JetStreamSource, ConfigError> {
        let ack = match &self.ack {
            None => Ack::Applied,
            Some(a) => match a.value.as_str() {
                "applied" => Ack::Applied,
                "durable" if !context.persistence => {
                    return Err(context.error_at(
                        a,
                        format!("{prefix}.jetstream.ack"),
                        "ack: durable waits for persistence, which is off; turn persistence on or use ack: applied".to_string(),
                    ));
                }
                "durable" => Ack::Durable,
                other => {
                    return Err(context.error_at(
                        a,
                        format!("{prefix}.jetstream.ack"),
                        format!("'{other}' is not applied or durable"),
                    ));
                }
            },
        };
        let field = format!("{prefix}.jetstream.ack_wait");
        let ack_wait = match (
            &self.ack_wait,
            context.duration(&self.ack_wait, field.clone())?,
        ) {
            (Some(written), Some(wait)) if wait < Duration::from_secs(1) => {
                return Err(context.error_at(
                    written,
                    field,
                    "ack_wait must be at least 1s: a message still being applied would be sent again".to_string(),
                ));
            }
            (_, wait) => wait.unwrap_or(DEFAULT_ACK_WAIT),
        };
        Ok(JetStreamSource {
            stream: self.stream.value.clone(),
            durable: (self.durable.clone()).unwrap_or_else(|| format!("dav2d-{name}")),
            ack,
            ack_wait,
        })
    }
}

impl NatsSourceSection {
    /// The source's settings; `prefix` is where it is written, `name` its name.
    pub fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
        name: &str,
    ) -> Result<NatsSourceConfig, ConfigError> {
        if self.subjects.value.is_empty() {
            return Err(context.error_at(
                &self.subjects,
                format!("{prefix}.subjects"),
                "give at least one subject: - subject: plant.{key}.temperature, stream: temperature".to_string(),
            ));
        }
        let mut subjects = Vec::new();
        for (i, s) in self.subjects.value.iter().enumerate() {
            let field = format!("{prefix}.subjects[{i}].subject");
            let subject = TopicTemplate::parse_as(s.subject.value.trim(), Syntax::Nats)
                .map_err(|m| context.error_at(&s.subject, field.clone(), m))?;
            if !subject.names_stream() && s.stream.is_none() {
                return Err(context.error_at(
                    &s.subject,
                    field,
                    "names no stream: put {stream} in the subject or give stream:".to_string(),
                ));
            }
            subjects.push(Route {
                topic: subject,
                stream: s.stream.clone(),
            });
        }
        let jetstream = match &self.jetstream {
            None => None,
            Some(js) => Some(js.settings(context, prefix, name)?),
        };
        let written = Written {
            url: &self.url,
            username: &self.username,
            password: &self.password,
            token: &self.token,
            ca: &self.ca,
        };
        let Connection { url, auth, tls } = connection(context, written, prefix)?;
        Ok(NatsSourceConfig {
            url,
            auth,
            tls,
            subjects,
            jetstream,
        })
    }
}

impl NatsSinkSection {
    /// The sink's settings; `prefix` is where it is written.
    pub fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
    ) -> Result<NatsSinkConfig, ConfigError> {
        let written = self.subject.as_ref();
        let subject = TopicTemplate::parse_as(
            written.map_or("dav2d.out.{stream}.{key}", |s| s.value.trim()),
            Syntax::Nats,
        )
        .map_err(|m| {
            context.error_at(written.unwrap_or(&self.url), format!("{prefix}.subject"), m)
        })?;
        let written = Written {
            url: &self.url,
            username: &self.username,
            password: &self.password,
            token: &self.token,
            ca: &self.ca,
        };
        let Connection { url, auth, tls } = connection(context, written, prefix)?;
        Ok(NatsSinkConfig {
            url,
            auth,
            tls,
            names: self.names.iter().map(|n| n.value.clone()).collect(),
            subject,
            jetstream: self.jetstream.unwrap_or(false),
        })
    }
}

impl SourceSection for NatsSourceSection {
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
                context, at, kind, "NATS", "nats",
            ))
        };
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

impl SinkSection for NatsSinkSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[cfg_attr(feature = "client", allow(unused_variables))]
    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError> {
        #[cfg(feature = "client")]
        return Ok(Box::new(self.settings(context, at)?));
        #[cfg(not(feature = "client"))]
        return {
            self.settings(context, at)?;
            Err(dav2d_component::section::built_without_kind(
                context, at, kind, "NATS", "nats",
            ))
        };
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        names_read(&self.names, at)
    }
}
