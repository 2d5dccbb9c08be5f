//! NATS for dav2d: a [`NatsSource`] reading core subjects or a JetStream
//! durable consumer, and a [`NatsSink`] publishing node outputs and
//! constraint transitions.
//!
//! The key design decision: a JetStream message is acknowledged only after
//! it was applied, and with `ack: durable` only after the persistence sink
//! made the wave that applied it durable (the shared [`Durability`] marks),
//! so a crash redelivers exactly what was not yet safe. Published outputs
//! carry `Nats-Msg-Id: <name>/<key>/<seq>`, so a JetStream stream drops the
//! duplicates a republish after a restart would make. Reconnection is the
//! client's own (async-nats retries forever with backoff); the connector
//! reports connected/disconnected and the last error as its health.
//!
//! [`Durability`]: dav2d_component::Durability

mod config;
mod section;
#[cfg(feature = "client")]
mod setting;
#[cfg(feature = "client")]
mod sink;
#[cfg(feature = "client")]
mod source;

pub use config::{Ack, Auth, JetStreamSource, NatsSinkConfig, NatsSourceConfig, Token, check_url};
pub use dav2d_component::Route;
pub use section::{
    DEFAULT_ACK_WAIT, JetStreamSection, NatsSinkSection, NatsSourceSection, NatsSubjectSection,
};
#[cfg(feature = "client")]
pub use sink::NatsSink;
#[cfg(feature = "client")]
pub use source::NatsSource;
