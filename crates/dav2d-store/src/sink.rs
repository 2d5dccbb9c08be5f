//! Persistence as a component: the [`Sink`] that restores the graph from
//! the store when it starts and then drains every node output (and the raw
//! streams asked for) into the log on the budgeted schedule, flushing,
//! checkpointing and rolling history once more when it stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dav2d_component::{
    Context, Delivery, Gauge, Health, HistoryReader, HistoryRow, Running, Sink, StartError,
    ThreadTask,
};

use crate::persist::{DRAIN_INTERVAL_NS, PersistStats, Persister, Schedule};
use crate::store::{StoreError, StoreOptions};

/// Resolved persistence settings.
#[derive(Clone, Debug)]
pub struct PersistenceConfig {
    /// The store's directory.
    pub dir: PathBuf,
    /// How often logged updates are made durable (stretched to fit the budget).
    pub flush_interval: Duration,
    /// How often the whole state is checkpointed.
    pub checkpoint_interval: Duration,
    /// The store's settings.
    pub store: StoreOptions,
    /// Raw input streams persisted besides node outputs and constraint states.
    pub streams: Vec<String>,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("dav2d-data"),
            flush_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(60),
            store: StoreOptions::default(),
            streams: Vec::new(),
        }
    }
}

impl PersistenceConfig {
    /// The component these settings describe, named `name`.
    pub fn build(self, name: &str) -> PersistenceSink {
        PersistenceSink {
            name: name.to_string(),
            config: self,
            stats: Arc::new(PersistStats::default()),
        }
    }
}

/// Persistence, built from its [`PersistenceConfig`] and not yet started.
#[derive(Debug)]
pub struct PersistenceSink {
    name: String,
    config: PersistenceConfig,
    stats: Arc<PersistStats>,
}

impl PersistenceSink {
    /// The sink reporting into `stats` (a store a reload starts again
    /// keeps reporting where the first one did).
    pub fn with_stats(mut self, stats: Arc<PersistStats>) -> PersistenceSink {
        self.stats = stats;
        self
    }

    /// What the persistence thread will report, shared before it starts.
    pub fn stats(&self) -> Arc<PersistStats> {
        Arc::clone(&self.stats)
    }

    /// The store's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.config.dir
    }
}

impl Health for PersistStats {
    fn status(&self) -> Result<(), String> {
        match self.problem() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    fn gauges(&self) -> Vec<Gauge> {
        let used = self.file_actions_today.load(Ordering::Relaxed);
        let budget = self.budget.load(Ordering::Relaxed);
        let gauge = Gauge::count;
        vec![
            gauge(
                "file_actions_used_today",
                "File actions (create, write, fsync, rename, delete) used today",
                used,
            ),
            gauge(
                "file_actions_remaining_today",
                "File actions left in today's budget",
                budget.saturating_sub(used),
            ),
            gauge(
                "file_actions_budget",
                "File actions allowed per UTC day (persistence.max_file_actions_per_day)",
                budget,
            ),
            gauge(
                "persisted_records",
                "Records made durable since start",
                self.flushed.load(Ordering::Relaxed),
            ),
            gauge(
                "checkpoints",
                "Checkpoints written since start",
                self.checkpoints.load(Ordering::Relaxed),
            ),
            gauge(
                "persistence_flush_interval_seconds",
                "The flush interval in force, stretched to fit the file-action budget",
                self.flush_interval_ns.load(Ordering::Relaxed) / 1_000_000_000,
            ),
            gauge(
                "persistence_segment_bytes",
                "The log segment size in force, grown to fit the file-action budget",
                self.segment_bytes.load(Ordering::Relaxed),
            ),
            gauge(
                "persistence_merged_updates",
                "Node updates merged into newer ones before they could be logged (history lost to a backlog)",
                self.merged.load(Ordering::Relaxed),
            ),
            gauge(
                "persistence_degraded",
                "1 while persistence is failing and retrying, or cannot keep its budget",
                u64::from(self.problem().is_some()),
            ),
        ]
    }
}

impl Sink for PersistenceSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "persistence"
    }

    fn delivery(&self) -> Delivery {
        Delivery::Lossless
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let schedule = Schedule {
            flush_interval_ns: config.flush_interval.as_nanos().min(i64::MAX as u128) as i64,
            checkpoint_interval_ns: config.checkpoint_interval.as_nanos().min(i64::MAX as u128)
                as i64,
            segment_bytes: config.store.wal.segment_bytes,
        };
        let graph = context.graph().clone();
        // A store a reload started joins a running graph: it records the
        // live state instead of restoring its own over it.
        let open = match context.joining {
            true => Persister::open_beside,
            false => Persister::open,
        };
        let (mut persister, restored) = open(
            &config.dir,
            config.store.clone(),
            schedule,
            &config.streams,
            &graph,
            Arc::clone(&self.stats),
        )
        .map_err(|error| match error {
            StoreError::Names(message) => StartError::Other(message),
            error => StartError::Other(format!(
                "cannot open the store in {}: {error}; fix it or move it aside (or run with persistence off)",
                config.dir.display()
            )),
        })?;
        if restored.checkpoint || restored.replayed > 0 {
            tracing::info!(
                dir = %config.dir.display(),
                replayed = restored.replayed,
                skipped = restored.skipped_records,
                "Restored the graph from the store."
            );
        }
        // What it records, readable by the read faces (`/history`).
        context.health.offer_history(Arc::new(StoreHistory {
            dir: config.dir.clone(),
        }));
        let health: Arc<dyn Health> = self.stats.clone();
        let durability = Arc::clone(&context.durability);
        let slot = durability.attach(persister.durable_mark());
        let task = ThreadTask::spawn("dav2d-persist", health, move |stop| {
            loop {
                let stopping = stop.load(Ordering::Acquire);
                let due_ns = persister.step(&graph, stopping);
                // A durable acknowledgement is waiting: flush now (one
                // flush covers every waiter of this round: group commit).
                if !stopping && durability.take_flush_wanted() {
                    let flushed = persister.flush_now();
                    if let Err(error) = flushed {
                        tracing::error!(%error, "A flush for durable acknowledgements failed; it is retried.");
                    }
                }
                durability.made_durable(slot, persister.durable_mark());
                if stopping {
                    break;
                }
                // Wake at least every drain interval to move updates into the
                // log's buffer; flushes and checkpoints happen when due.
                let wait = due_ns.clamp(1_000_000, DRAIN_INTERVAL_NS);
                std::thread::sleep(Duration::from_nanos(wait as u64));
            }
            durability.detach(slot);
        })?;
        Ok(Box::new(task))
    }
}

/// A store's history as the read faces take it: a scan of its directory
/// (the Parquet history and the log not yet rolled into it).
#[derive(Debug)]
struct StoreHistory {
    dir: PathBuf,
}

impl HistoryReader for StoreHistory {
    fn rows(
        &self,
        name: &str,
        key: Option<&str>,
        since_ns: i64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, String> {
        let query = crate::Query {
            name: Some(name.to_string()),
            key: key.map(str::to_string),
            since: Some(since_ns),
            until: None,
        };
        let limit = limit.max(1);
        let mut rows: Vec<HistoryRow> = Vec::new();
        crate::history::scan(
            &self.dir,
            &query,
            |_| {},
            |found| {
                for i in 0..found.len() {
                    rows.push(HistoryRow {
                        key: Arc::clone(&found.key[i]),
                        ts_ns: found.ts[i],
                        value: found.value[i],
                        state: found.state[i].clone(),
                    });
                }
                // Bounded: only the newest `limit` are kept as it reads.
                if rows.len() > 2 * limit {
                    rows.sort_by_key(|r| r.ts_ns);
                    rows.drain(..rows.len() - limit);
                }
                Ok(())
            },
        )
        .map_err(|error| {
            format!(
                "the history in {} cannot be read: {error}",
                self.dir.display()
            )
        })?;
        rows.sort_by_key(|r| r.ts_ns);
        let excess = rows.len().saturating_sub(limit);
        rows.drain(..excess);
        Ok(rows)
    }

    fn note_reload(&self, version: u64, at_ns: i64, changes: &[String]) -> Result<(), String> {
        use std::io::Write;
        let path = self.dir.join(crate::inspect::RELOADS_FILE);
        let line = serde_json::json!({"version": version, "ts": at_ns, "changes": changes});
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| {
                writeln!(file, "{line}")?;
                file.sync_data()
            })
            .map_err(|error| format!("cannot record the reload in {}: {error}", path.display()))
    }
}
