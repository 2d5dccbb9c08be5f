//! The HTTP API of dav2d as a component: a [`Source`] that ingests
//! (`POST /upload`, `POST /ingest/{stream}`) through the shared intake, and
//! `POST /config` (a hot reload), the read face (`/state/{name}`, `/window/{name}`, `/frame/{name}`, `/history/{name}`, `/graph`, `/events`,
//! `/metrics`, `/healthz`) with the dashboard on `/`.
//!
//! The key design decision: connections are served by hyper directly on the
//! runtime's I/O threads, and no I/O thread ever waits for the engine lock:
//! small bodies are applied inline only if the engine is free at once, all
//! others (and every read that needs the engine) move to the parser pool or
//! a blocking thread. Oversized bodies are refused from their
//! `Content-Length` before a byte is read, and a body that cannot be JSON
//! from its first bytes.

mod answer;
mod auth;
mod config;
mod config_route;
mod dashboard;
mod events;
mod history;
mod hub;
mod inflating;
mod ingest;
mod preview;
mod read;
mod section;
mod serve;
mod state;

use std::sync::Arc;

use dav2d_component::{Context, Running, ServerTask, Source, StartError};

pub use config::HttpConfig;
pub use section::HttpSection;

/// The HTTP API, built from its [`HttpConfig`] and not yet started.
#[derive(Debug)]
pub struct HttpSource {
    name: String,
    setting: String,
    config: HttpConfig,
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let listener = dav2d_component::Listener::open(
            &context.io,
            &dav2d_component::ListenOptions {
                what: "HTTP",
                component: &self.name,
                setting: &self.setting,
                listen: &self.config.listen,
            },
        )?;
        let address = listener.local_addr().ok();
        let state = state::AppState {
            intake: context.intake.clone(),
            config: Arc::new(self.config),
            health: context.health.clone(),
            events: hub::EventHub::new(
                context.graph().clone(),
                context.intake.metrics().events_dropped.clone(),
            )
            .map_err(StartError::Other)?,
            durability: Arc::clone(&context.durability),
            // The server's own stop signal replaces it once it serves.
            stopping: tokio::sync::watch::channel(false).1,
        };
        tracing::info!(component = %self.name, address = ?address, "HTTP API started.");
        let connections = std::sync::Arc::new(listener.connections());
        Ok(Box::new(
            ServerTask::spawn(context.io, address, |stop| {
                serve::serve(listener, state, stop)
            })
            .with_health(connections),
        ))
    }
}
