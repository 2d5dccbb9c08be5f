//! The TCP source's settings and the one function that builds the component
//! from them.

use std::net::SocketAddr;

use crate::TcpSource;

/// The TCP server's settings.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Address to bind; loopback by default.
    pub bind: SocketAddr,
    /// Longest NDJSON line (or binary unit) accepted, in bytes.
    pub max_line: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7070)),
            max_line: 1 << 20,
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
