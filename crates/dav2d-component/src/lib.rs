//! The component model of dav2d: every source and sink is one folder (a
//! crate) implementing [`Source`] or [`Sink`], and every source feeds the
//! engine through the shared [`Intake`].
//!
//! The key design decision: admission (the bounded queue for `all`-edge
//! streams), decoding with the shared wire code, typed rejection and the
//! batched apply live here once, so HTTP, TCP, the synthetic fleet and every
//! later connector refuse the same input for the same reasons, push back the
//! same way ("retry later": HTTP 429, TCP stops reading), and report the
//! same metrics under their own `component` and `kind` labels. Components
//! never depend on each other; the runtime starts them from a plan.

mod broker_health;
mod client_tls;
mod component;
mod durability;
mod health;
mod history;
mod intake;
mod listen;
pub mod metrics;
pub mod section;
mod throttle;
mod topic;

pub use broker_health::BrokerHealth;
pub use client_tls::BrokerTls;
pub use component::{
    AtStop, Context, Delivery, Running, ServerTask, Sink, Source, StartError, ThreadTask, bind,
    built_without, drain,
};
pub use durability::{Durability, SinkSlot};
pub use health::{Gauge, Health, HealthBoard, HealthReport, Pin};
pub use history::{ConfigReloader, HistoryReader, HistoryRow};
pub use intake::{
    Admission, BodyPermit, ClusterReading, ClusterReads, Forward, Forwarded, IngestReport, Intake,
    IntakeConfig, NativeSample, Outcome, body_ceiling,
};
pub use listen::{
    Accepted, Connection, Incoming, ListenConfig, ListenOptions, Listener, OpenConnections,
    TlsFiles, close_gently, close_gently_blocking, token_matches,
};
pub use metrics::{IntakeTotals, Metrics, ReloadLabel, ValueExport};
pub use throttle::Throttle;
pub use topic::{Route, Syntax, TopicTemplate};
