//! What the read faces may ask of parts they do not know, through the
//! [`crate::HealthBoard`]: a store's history (the persistence sink offers a
//! [`HistoryReader`] when it starts; `/history`, the dashboard's alert
//! timeline) and reloading the config (`dav2d run` offers a
//! [`ConfigReloader`]; `POST /config`).

use std::sync::Arc;

/// One recorded update of a name.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    /// Its key.
    pub key: Arc<str>,
    /// Its timestamp, ns since the epoch.
    pub ts_ns: i64,
    /// A numeric value.
    pub value: Option<f64>,
    /// A text value: a constraint's state, a string.
    pub state: Option<Arc<str>>,
}

/// What a store recorded (its Parquet history and the log not yet rolled
/// into it).
pub trait HistoryReader: Send + Sync + std::fmt::Debug {
    /// The rows of `name` (of one `key`, or every key) at or after
    /// `since_ns`, oldest first; the newest `limit` of them when there are
    /// more. An error says what could not be read.
    fn rows(
        &self,
        name: &str,
        key: Option<&str>,
        since_ns: i64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, String>;

    /// Records that the spec became `version` at `at_ns` with `changes` (a
    /// hot reload), so the history says which spec produced which outputs.
    fn note_reload(&self, version: u64, at_ns: i64, changes: &[String]) -> Result<(), String>;
}

/// Applies a new config to the running graph (a hot reload).
pub trait ConfigReloader: Send + Sync {
    /// Validates the YAML `text` whole and applies it: the spec's version
    /// now and the changes (none when it describes what runs), or why it
    /// was refused (nothing changed).
    fn reload_yaml(&self, text: &str) -> Result<(u64, Vec<String>), String>;
}
