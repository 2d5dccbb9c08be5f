//! The HTTP API of dav2d as a component: a [`Source`] that ingests
//! (`POST /upload`, `POST /ingest/{stream}`) through the shared intake, and
//! the read face (`/state/{name}`, `/graph`, `/events`, `/metrics`,
//! `/healthz`).
//!
//! The key design decision: connections are served by hyper directly on the
//! runtime's I/O threads, and no I/O thread ever waits for the engine lock:
//! small bodies are applied inline only if the engine is free at once, all
//! others (and every read that needs the engine) move to the parser pool or
//! a blocking thread. Oversized bodies are refused from their
//! `Content-Length` before a byte is read, and a body that cannot be JSON
//! from its first bytes.

mod auth;
mod config;
mod events;
mod ingest;
mod read;
mod serve;

use std::sync::Arc;

use dav2d_component::{Context, Running, ServerTask, Source, StartError};

pub use config::HttpConfig;

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
        let tls = match &self.config.tls {
            Some(files) => Some(files.acceptor().map_err(|error| {
                StartError::Other(format!(
                    "{}.tls: {error}",
                    self.setting.trim_end_matches(".bind")
                ))
            })?),
            None => None,
        };
        let bound = dav2d_component::bind(&context.io, "HTTP", &self.setting, self.config.bind)?;
        if !self.config.bind.ip().is_loopback() {
            if self.config.token.is_none() {
                tracing::warn!(
                    component = %self.name,
                    address = %self.config.bind,
                    "The HTTP API listens beyond loopback without a token: anyone who can reach it can read and write; set http.token."
                );
            }
            if tls.is_none() {
                tracing::warn!(
                    component = %self.name,
                    address = %self.config.bind,
                    "The HTTP API listens beyond loopback without TLS: requests and tokens cross the network in clear text; set http.tls."
                );
            }
        }
        let listener =
            dav2d_component::Listener::new(bound, tls, self.config.max_connections, "HTTP");
        let address = listener.local_addr().ok();
        let state = serve::AppState {
            intake: context.intake.clone(),
            config: Arc::new(self.config),
            health: context.health.clone(),
            events: events::EventHub::new(context.graph().clone()).map_err(StartError::Other)?,
            durability: Arc::clone(&context.durability),
        };
        tracing::info!(component = %self.name, address = ?address, "HTTP API started.");
        Ok(Box::new(ServerTask::spawn(context.io, address, |stop| {
            serve::serve(listener, state, stop)
        })))
    }
}
