//! The TCP source of dav2d: NDJSON samples one per line, or `DV2B` binary
//! units, on many connections, through the shared intake.
//!
//! The key design decision: a connection's complete lines are applied
//! before the next read, so a full `all`-edge queue stops the reads and TCP
//! flow control pushes back on the sender; memory per connection is bounded
//! by `max_line` plus one read buffer. Auth (`AUTH <token>` as the first
//! line), TLS, the connection limit and the idle and partial-message
//! timeouts are described in `source.rs`.

mod config;
pub mod framing;
mod section;
mod source;

use std::sync::Arc;

use dav2d_component::{Context, Running, ServerTask, Source, StartError};

pub use config::TcpConfig;
pub use section::TcpSection;
pub use source::{BINARY_MAGIC, UNIT_SAMPLES};

/// The TCP source, built from its [`TcpConfig`] and not yet started.
#[derive(Debug)]
pub struct TcpSource {
    name: String,
    setting: String,
    config: TcpConfig,
}

impl Source for TcpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let listener = dav2d_component::Listener::open(
            &context.io,
            &dav2d_component::ListenOptions {
                what: "TCP",
                component: &self.name,
                setting: &self.setting,
                listen: &self.config.listen,
            },
        )?;
        let address = listener.local_addr().ok();
        tracing::info!(component = %self.name, address = ?address, "TCP source started.");
        let (config, intake) = (Arc::new(self.config), context.intake.clone());
        let durability = Arc::clone(&context.durability);
        let connections = std::sync::Arc::new(listener.connections());
        Ok(Box::new(
            ServerTask::spawn(context.io, address, |stop| {
                source::serve(listener, config, intake, durability, stop)
            })
            .with_health(connections),
        ))
    }
}
