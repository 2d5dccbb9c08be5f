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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dav2d_component::{Context, Running, Source, StartError};
use tokio::sync::watch;

pub use config::HttpConfig;

/// The HTTP API, built from its [`HttpConfig`] and not yet started.
#[derive(Debug)]
pub struct HttpSource {
    name: String,
    setting: String,
    config: HttpConfig,
}

struct RunningHttp {
    address: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    served: Option<tokio::task::JoinHandle<()>>,
    io: tokio::runtime::Handle,
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let listener = dav2d_component::bind(&context.io, "HTTP", &self.setting, self.config.bind)?;
        let address = listener.local_addr().ok();
        let (shutdown, stop) = watch::channel(false);
        let state = serve::AppState {
            intake: context.intake.clone(),
            config: Arc::new(self.config),
            health: context.health.clone(),
        };
        let served = context.io.spawn(serve::serve(listener, state, stop));
        tracing::info!(component = %self.name, address = ?address, "HTTP API started.");
        Ok(Box::new(RunningHttp {
            address,
            shutdown,
            served: Some(served),
            io: context.io,
        }))
    }
}

impl Running for RunningHttp {
    fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    fn stop(mut self: Box<Self>) {
        let _ = self.shutdown.send(true);
        if let Some(served) = self.served.take() {
            // Stop accepting; open connections finish their request.
            let _ = self
                .io
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), served).await });
        }
    }
}
