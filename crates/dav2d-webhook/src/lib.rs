//! Alerts that leave the box: a [`WebhookSink`] that POSTs every constraint
//! transition as JSON to a URL, either dav2d's own body (the JSON of an
//! `/events` transition) or a ready-made Prometheus Alertmanager body
//! (`POST /api/v2/alerts`).
//!
//! The key design decision: the graph subscription is the sink's bounded
//! queue. Transitions wait there while a POST is retried with backoff; past
//! its capacity the subscription keeps the newest per key and counts what it
//! conflated, so a receiver that is down never makes the engine hold more
//! memory, and every transition that could not be delivered is counted.

mod body;
mod config;
mod section;
mod sink;

pub use body::{Format, body};
pub use config::{WebhookConfig, check_url};
pub use section::WebhookSinkSection;
pub use sink::WebhookSink;
