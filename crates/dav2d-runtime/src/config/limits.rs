//! The `limits:` section: what any client can make the engine hold (keys,
//! key and name lengths, streams, value sizes, retained bytes), read by the
//! same names and bounds as Python's `Graph(limits=...)` through
//! `dav2d_core::Limits::set`, so both faces refuse the same values.

use dav2d_core::Limits;
use serde::Deserialize;
use serde_saphyr::Spanned;

use dav2d_component::section::parse_size;

use super::{Config, ConfigError};

/// The `limits` section: each a count or a size (`1MiB`); see
/// `dav2d_core::Limits` for the defaults.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// (stream, key) pairs over all input streams.
    pub keys: Option<Spanned<String>>,
    /// Keys of one input stream.
    pub keys_per_stream: Option<Spanned<String>>,
    /// Bytes of a key.
    pub key_length: Option<Spanned<String>>,
    /// Bytes of a new stream's name.
    pub name_length: Option<Spanned<String>>,
    /// Streams, counting node outputs.
    pub streams: Option<Spanned<String>>,
    /// Bytes of one string, record or buffer.
    pub value_size: Option<Spanned<String>>,
    /// Bytes of strings, records and buffers the input streams keep.
    pub retained_values: Option<Spanned<String>>,
    /// Bytes of every key's windows over all streams and nodes.
    pub window_bytes: Option<Spanned<String>>,
}

impl LimitsSection {
    fn entries(&self) -> [(&'static str, &Option<Spanned<String>>); 8] {
        [
            ("keys", &self.keys),
            ("keys_per_stream", &self.keys_per_stream),
            ("key_length", &self.key_length),
            ("name_length", &self.name_length),
            ("streams", &self.streams),
            ("value_size", &self.value_size),
            ("retained_values", &self.retained_values),
            ("window_bytes", &self.window_bytes),
        ]
    }
}

/// Sets `limits` from `name = value` pairs given as text (a count or a
/// size such as `64KiB`): the one reading YAML and Python keywords share.
pub fn set_limit(limits: &mut Limits, name: &str, value: &str) -> Result<(), String> {
    let value = parse_size(value)?;
    limits.set(name, value)
}

impl Config {
    /// The engine's limits: the defaults with this config's `limits:` applied.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        for (name, value) in self.limits.entries() {
            if let Some(value) = value {
                set_limit(&mut limits, name, &value.value)
                    .map_err(|message| self.error_at(value, format!("limits.{name}"), message))?;
            }
        }
        Ok(limits)
    }
}

impl Config {
    /// The built graph's windows against `limits.window_bytes`: one key's
    /// windows on every stream and node must fit, or no key could ever be
    /// taken; the config is refused at the line of the stream that keeps the
    /// most, saying what to lower. (How many keys fit is the run's bound:
    /// a new key past the budget is refused then, as `windows_full`.)
    pub(crate) fn check_window_budget(&self, graph: &dav2d_core::Graph) -> Result<(), ConfigError> {
        let limits = graph.limits();
        let per_key = graph.window_bytes_per_key();
        if per_key <= limits.max_window_bytes {
            return Ok(());
        }
        let message = format!(
            "one key's windows take {:.1} MiB, more than limits.window_bytes ({:.1} MiB) holds: no key could be taken; lower keep or window lengths, or raise limits.window_bytes",
            per_key as f64 / f64::from(1 << 20),
            limits.max_window_bytes as f64 / f64::from(1 << 20)
        );
        let keeps = (self.streams.iter().enumerate())
            .filter(|(_, s)| s.keep.is_some())
            .max_by_key(|(_, s)| s.keep);
        Err(match (keeps, &self.limits.window_bytes) {
            (Some((i, stream)), _) => {
                self.error_at(&stream.name, format!("streams[{i}].keep"), message)
            }
            (None, Some(written)) => {
                self.error_at(written, "limits.window_bytes".to_string(), message)
            }
            (None, None) => ConfigError {
                file: self.file().to_path_buf(),
                line: 0,
                column: 0,
                field: "limits.window_bytes".to_string(),
                message,
            },
        })
    }
}
