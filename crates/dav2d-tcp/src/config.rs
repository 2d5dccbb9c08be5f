//! The TCP source's settings and the one function that builds the component
//! from them.

use std::time::Duration;

use dav2d_component::ListenConfig;

use crate::TcpSource;

/// The TCP server's settings.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Where it listens: address (loopback by default), token (a
    /// connection's first line must then be `AUTH <token>`), TLS,
    /// connections (more get an error line and are closed).
    pub listen: ListenConfig,
    /// Longest NDJSON line (or binary unit) accepted, in bytes.
    pub max_line: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A line or unit begun must be finished within this time.
    pub partial_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            listen: ListenConfig::loopback(7070),
            max_line: 1 << 20,
            idle_timeout: Duration::from_secs(300),
            partial_timeout: Duration::from_secs(30),
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
