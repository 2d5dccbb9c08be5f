//! MQTT for dav2d: a [`MqttSource`] that subscribes to topic filters and
//! applies each message to the stream and key its topic names, and a
//! [`MqttSink`] that publishes node outputs and constraint transitions.
//!
//! The key design decision: a QoS 1 message is acknowledged to the broker
//! only after the intake applied it (manual acks), from the one thread that
//! applies messages in arrival order; the event loop never waits for the
//! engine, but a full hand-over queue stops it reading, so the broker holds
//! what dav2d cannot take yet. rumqttc does not restore subscriptions after
//! a reconnect with a clean session, so the source subscribes again at
//! every `CONNACK`.

mod config;
mod section;
#[cfg(feature = "client")]
mod setting;
#[cfg(feature = "client")]
mod sink;
#[cfg(feature = "client")]
mod source;

pub use config::{MqttSinkConfig, MqttSourceConfig, parse_broker};
pub use dav2d_component::Route;
pub use dav2d_component::TopicTemplate;
pub use section::{MqttSinkSection, MqttSourceSection, MqttSubscriptionSection};
#[cfg(feature = "client")]
pub use sink::MqttSink;
#[cfg(feature = "client")]
pub use source::MqttSource;
