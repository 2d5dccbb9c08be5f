//! The `ingest` section: the parser pool, the admission queue and the
//! body budget, resolved into the intake's settings.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, SectionContext};
use crate::IntakeConfig;

/// The most parser or offload workers a config may ask for.
pub const MAX_WORKERS: u64 = 1024;
/// The most samples the `all`-edge queue may hold.
pub const MAX_ALL_QUEUE: u64 = 1 << 30;

/// The `ingest` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// Parser pool size; 0 or absent means one per core.
    pub workers: Option<Spanned<String>>,
    /// Samples for `all`-edge streams that may wait to be applied.
    pub all_queue: Option<Spanned<String>>,
    /// Bodies at least this large are parsed in parallel, e.g. `1MiB`.
    pub parallel_threshold: Option<Spanned<String>>,
    /// Bytes of bodies in flight across every connection (default 64MiB).
    pub body_budget: Option<Spanned<String>>,
}

impl IngestSection {
    /// The intake's settings.
    pub fn resolve(&self, context: &SectionContext) -> Result<IntakeConfig, ConfigError> {
        let mut config = IntakeConfig {
            workers: context
                .count(&self.workers, "ingest.workers", 0, MAX_WORKERS)?
                .unwrap_or(0),
            ..IntakeConfig::default()
        };
        if let Some(capacity) =
            context.count(&self.all_queue, "ingest.all_queue", 1, MAX_ALL_QUEUE)?
        {
            config.all_queue_capacity = capacity;
        }
        if let Some(threshold) =
            context.size(&self.parallel_threshold, "ingest.parallel_threshold")?
        {
            config.parse.parallel_threshold = threshold;
        }
        if let Some(budget) = context.size(&self.body_budget, "ingest.body_budget")? {
            config.body_budget = budget.max(1);
        }
        Ok(config)
    }
}
