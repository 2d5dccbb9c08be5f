//! The HTTP API's settings and the one function that builds the component
//! from them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::HttpSource;

/// The HTTP server's settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Address to bind; loopback by default.
    pub bind: SocketAddr,
    /// Largest body accepted (after decompression), in bytes.
    pub max_body: usize,
    /// When set, every endpoint but `/healthz` requires `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// A client must send its request headers within this time.
    pub header_timeout: Duration,
    /// A client must send its whole body within this time.
    pub body_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 64 << 20,
            token: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

impl HttpConfig {
    /// The component these settings describe, named `name`; `setting` is
    /// the config path of its `bind` (for errors).
    pub fn build(self, name: &str, setting: &str) -> HttpSource {
        HttpSource {
            name: name.to_string(),
            setting: setting.to_string(),
            config: self,
        }
    }
}
