//! The TCP source's settings and the one function that builds the component
//! from them.

use std::net::SocketAddr;
use std::time::Duration;

use dav2d_component::TlsFiles;

use crate::TcpSource;

/// The TCP server's settings.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Address to bind; loopback by default.
    pub bind: SocketAddr,
    /// Longest NDJSON line (or binary unit) accepted, in bytes.
    pub max_line: usize,
    /// Connections open at once; more get an error line and are closed.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A line or unit begun must be finished within this time.
    pub partial_timeout: Duration,
    /// When set, a connection's first line must be `AUTH <token>`.
    pub token: Option<String>,
    /// Serve TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7070)),
            max_line: 1 << 20,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            partial_timeout: Duration::from_secs(30),
            token: None,
            tls: None,
        }
    }
}

impl TcpConfig {
    /// The component these settings describe, named `name`; `setting` is
    /// the config path of its `bind` (for errors).
    pub fn build(self, name: &str, setting: &str) -> TcpSource {
        TcpSource {
            name: name.to_string(),
            setting: setting.to_string(),
            config: self,
        }
    }
}
