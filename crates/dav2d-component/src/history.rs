//! Reading what a store recorded, for faces that may not know the store
//! (the HTTP API's `/history`, the dashboard's alert timeline): the
//! persistence sink puts a [`HistoryReader`] on the [`crate::HealthBoard`]
//! when it starts, and readers take it from there.

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
}
