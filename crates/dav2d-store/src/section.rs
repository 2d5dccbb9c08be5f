//! The `persistence` section (the top-level one, and `sinks:` entries of
//! kind `persistence`): read from YAML, checked where it is written, and
//! resolved into [`PersistenceConfig`].

use std::time::Duration;

use dav2d_component::Sink;
use dav2d_component::section::{
    ComponentSpec, ConfigError, SectionContext, SinkSection, SinkSetting, Spanned, component,
};
use serde::Deserialize;

use crate::{Fsync, PersistenceConfig, StoreOptions};

/// The `persistence` section.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PersistenceSection {
    /// The component's name, in a `sources:`/`sinks:` entry (its metrics label).
    pub name: Option<String>,
    /// Set false to keep everything in memory only.
    pub enabled: Option<bool>,
    /// The store's directory (default `./dav2d-data`).
    pub dir: Option<String>,
    /// How often logged updates are made durable, e.g. `1s`.
    pub flush_interval: Option<Spanned<String>>,
    /// How often the whole state is checkpointed, e.g. `1m`.
    pub checkpoint_interval: Option<Spanned<String>>,
    /// `always`, `batch` (default) or `off`.
    pub fsync: Option<Spanned<String>>,
    /// File actions allowed per UTC day (default 160000).
    pub max_file_actions_per_day: Option<u64>,
    /// Roll log segments at this size, e.g. `64MiB` (grown with load to
    /// keep within the budget).
    pub segment_size: Option<Spanned<String>>,
    /// Delete Parquet history older than this, e.g. `30d` (default: keep).
    pub retention: Option<Spanned<String>>,
    /// Raw input streams to persist too (node outputs and constraint states always are).
    #[serde(default)]
    pub streams: Vec<Spanned<String>>,
    /// Frame streams and frame nodes whose frames are stored with their
    /// pixels (every other frame is stored as its description only).
    #[serde(default)]
    pub pixels: Vec<Spanned<String>>,
}

impl PersistenceSection {
    /// Whether the file says anything about persistence (a Python graph
    /// persists through `persist()` unless its config asks).
    pub fn is_set(&self) -> bool {
        self.enabled == Some(true)
            || self.dir.is_some()
            || self.flush_interval.is_some()
            || self.checkpoint_interval.is_some()
            || self.fsync.is_some()
            || self.max_file_actions_per_day.is_some()
            || self.segment_size.is_some()
            || self.retention.is_some()
            || !self.streams.is_empty()
            || !self.pixels.is_empty()
    }

    /// The store's settings; `prefix` is where the section is written
    /// (`persistence`, `sinks[2]`).
    pub fn settings(
        &self,
        context: &SectionContext,
        prefix: &str,
    ) -> Result<PersistenceConfig, ConfigError> {
        let fsync = match &self.fsync {
            None => Fsync::Batch,
            Some(text) => match text.value.as_str() {
                "always" => Fsync::Always,
                "batch" => Fsync::Batch,
                "off" => Fsync::Off,
                other => {
                    return Err(context.error_at(
                        text,
                        format!("{prefix}.fsync"),
                        format!("unknown fsync policy '{other}'; expected always, batch or off"),
                    ));
                }
            },
        };
        let mut store = StoreOptions::default();
        store.wal.fsync = fsync;
        if let Some(size) = context.size(&self.segment_size, &format!("{prefix}.segment_size"))? {
            store.wal.segment_bytes = size.max(4096) as u64;
        }
        if let Some(budget) = self.max_file_actions_per_day {
            store.max_file_actions_per_day = budget;
        }
        store.pixels = self.pixels.iter().map(|n| n.value.clone()).collect();
        store.retention_ns = context
            .duration(&self.retention, format!("{prefix}.retention"))?
            .map(|d| d.as_nanos().min(i64::MAX as u128) as i64);
        Ok(PersistenceConfig {
            dir: self.dir.as_deref().unwrap_or("dav2d-data").into(),
            flush_interval: context
                .duration(&self.flush_interval, format!("{prefix}.flush_interval"))?
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(1)),
            checkpoint_interval: context
                .duration(
                    &self.checkpoint_interval,
                    format!("{prefix}.checkpoint_interval"),
                )?
                .unwrap_or(Duration::from_secs(60))
                .max(Duration::from_millis(10)),
            store,
            streams: self.streams.iter().map(|n| n.value.clone()).collect(),
        })
    }
}

impl SinkSetting for PersistenceConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        component(name, "persistence", self.dir.display().to_string(), vec![])
    }

    fn is_store(&self) -> bool {
        true
    }
}

impl SinkSection for PersistenceSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        _kind: &Spanned<String>,
        _name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError> {
        Ok(Box::new(self.settings(context, at)?))
    }

    fn reads(&self, at: &str) -> Vec<(&Spanned<String>, String)> {
        let streams =
            (self.streams.iter().enumerate()).map(|(j, name)| (name, format!("{at}.streams[{j}]")));
        let pixels =
            (self.pixels.iter().enumerate()).map(|(j, name)| (name, format!("{at}.pixels[{j}]")));
        streams.chain(pixels).collect()
    }
}
