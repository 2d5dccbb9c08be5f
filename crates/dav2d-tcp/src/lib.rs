//! The TCP source of dav2d: NDJSON samples one per line, or `DV2B` binary
//! units, on many connections, through the shared intake.
//!
//! The key design decision: a connection's complete lines are applied
//! before the next read, so a full `all`-edge queue stops the reads and TCP
//! flow control pushes back on the sender; memory per connection is bounded
//! by `max_line` plus one read buffer.

mod config;
mod source;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dav2d_component::{Context, Running, Source, StartError};
use tokio::sync::watch;

pub use config::TcpConfig;
pub use source::{BINARY_MAGIC, UNIT_SAMPLES};

/// The TCP source, built from its [`TcpConfig`] and not yet started.
#[derive(Debug)]
pub struct TcpSource {
    name: String,
    setting: String,
    config: TcpConfig,
}

struct RunningTcp {
    address: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    served: Option<tokio::task::JoinHandle<()>>,
    io: tokio::runtime::Handle,
}

impl Source for TcpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let listener = dav2d_component::bind(&context.io, "TCP", &self.setting, self.config.bind)?;
        let address = listener.local_addr().ok();
        let (shutdown, stop) = watch::channel(false);
        let served = context.io.spawn(source::serve(
            listener,
            Arc::new(self.config),
            context.intake.clone(),
            stop,
        ));
        tracing::info!(component = %self.name, address = ?address, "TCP source started.");
        Ok(Box::new(RunningTcp {
            address,
            shutdown,
            served: Some(served),
            io: context.io,
        }))
    }
}

impl Running for RunningTcp {
    fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    fn stop(mut self: Box<Self>) {
        let _ = self.shutdown.send(true);
        if let Some(served) = self.served.take() {
            let _ = self
                .io
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), served).await });
        }
    }
}
