//! `persist()` and `history()`: the store inside a Python process. The
//! persistence thread and the history reader are `dav2d-runtime`'s and
//! `dav2d-store`'s; this file converts arguments and results.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dav2d_runtime::{Config, PersistenceConfig, Plan, Runtime};
use dav2d_store::{Fsync, PersistStats, Query};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::{Dav2dError, config_error};
use crate::graph::PyGraph;

/// A running persistence sink (in a runtime of its own over the graph);
/// `stop()` flushes, checkpoints and stops it.
#[pyclass(module = "dav2d._dav2d", name = "Persistence")]
pub struct PyPersistence {
    runtime: Mutex<Option<Runtime>>,
    stats: Arc<PersistStats>,
    dir: PathBuf,
}

fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| *duration <= dav2d_runtime::MAX_DURATION)
        .ok_or_else(|| {
            crate::error::invalid(format!(
                "{what}={value} is not a duration in seconds from 0 to 100 years"
            ))
        })
}

#[pymethods]
impl PyPersistence {
    /// The store's directory.
    #[getter]
    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// Whether the thread is still running.
    #[getter]
    fn running(&self) -> bool {
        self.runtime.lock().map(|t| t.is_some()).unwrap_or(false)
    }

    /// Counters: records persisted, checkpoints, file actions used and left
    /// today, the budget, the schedule in force, and the current problem.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.stats;
        let used = s.file_actions_today.load(Ordering::Relaxed);
        let budget = s.budget.load(Ordering::Relaxed);
        let d = PyDict::new(py);
        d.set_item("dir", self.dir())?;
        d.set_item("persisted_records", s.flushed.load(Ordering::Relaxed))?;
        d.set_item("checkpoints", s.checkpoints.load(Ordering::Relaxed))?;
        d.set_item("file_actions_used_today", used)?;
        d.set_item("file_actions_remaining_today", budget.saturating_sub(used))?;
        d.set_item("file_actions_budget", budget)?;
        d.set_item(
            "flush_interval_s",
            s.flush_interval_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )?;
        d.set_item("segment_bytes", s.segment_bytes.load(Ordering::Relaxed))?;
        d.set_item("restored", s.restored.load(Ordering::Relaxed))?;
        d.set_item("replayed", s.replayed.load(Ordering::Relaxed))?;
        d.set_item("failures", s.failures.load(Ordering::Relaxed))?;
        d.set_item("merged_updates", s.merged.load(Ordering::Relaxed))?;
        d.set_item("problem", s.problem())?;
        Ok(d)
    }

    /// Flushes, writes a last checkpoint (rolling the log into Parquet
    /// history) and stops the thread. Safe to call twice.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let runtime = self
            .runtime
            .lock()
            .map_err(|_| crate::error::poisoned("persistence"))?
            .take();
        if let Some(runtime) = runtime {
            py.detach(|| crate::error::unwinding("stopping persistence", || runtime.stop()))?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "Persistence(dir={:?}, running={})",
            self.dir(),
            self.running()
        )
    }
}

/// Starts persisting `graph`: settings from the `persistence` section of
/// the YAML `config` (if given), then the keywords. Restores the graph from
/// the store before returning.
#[pyfunction]
#[pyo3(signature = (
    graph, dir = None, *, config = None, flush_interval = None, checkpoint_interval = None,
    fsync = None, max_file_actions_per_day = None, retention = None, segment_size = None,
    streams = None, pixels = None,
))]
#[allow(clippy::too_many_arguments)]
pub fn persist(
    py: Python<'_>,
    graph: &PyGraph,
    dir: Option<PathBuf>,
    config: Option<PathBuf>,
    flush_interval: Option<f64>,
    checkpoint_interval: Option<f64>,
    fsync: Option<String>,
    max_file_actions_per_day: Option<u64>,
    retention: Option<f64>,
    segment_size: Option<u64>,
    streams: Option<Vec<String>>,
    pixels: Option<Vec<String>>,
) -> PyResult<PyPersistence> {
    let loaded = match &config {
        Some(path) => Config::load(path).map_err(config_error)?,
        None => Config::parse("{}", std::path::Path::new("<persist>")).map_err(config_error)?,
    };
    let mut settings: PersistenceConfig =
        loaded.persistence().map_err(config_error)?.ok_or_else(|| {
            crate::error::invalid("the config turns persistence off (persistence.enabled: false)")
        })?;
    if let Some(dir) = dir {
        settings.dir = dir;
    }
    if let Some(value) = flush_interval {
        settings.flush_interval = seconds(value, "flush_interval")?.max(Duration::from_millis(1));
    }
    if let Some(value) = checkpoint_interval {
        settings.checkpoint_interval =
            seconds(value, "checkpoint_interval")?.max(Duration::from_millis(10));
    }
    if let Some(policy) = fsync {
        settings.store.wal.fsync = match policy.as_str() {
            "always" => Fsync::Always,
            "batch" => Fsync::Batch,
            "off" => Fsync::Off,
            other => {
                return Err(crate::error::invalid(format!(
                    "fsync='{other}' is not a policy; use 'always', 'batch' or 'off'"
                )));
            }
        };
    }
    if let Some(budget) = max_file_actions_per_day {
        settings.store.max_file_actions_per_day = budget;
    }
    if let Some(value) = retention {
        let retention = seconds(value, "retention")?;
        settings.store.retention_ns = Some(retention.as_nanos().min(i64::MAX as u128) as i64);
    }
    if let Some(bytes) = segment_size {
        settings.store.wal.segment_bytes = bytes.max(4096);
    }
    if let Some(streams) = streams {
        settings.streams = streams;
    }
    if let Some(pixels) = pixels {
        settings.store.pixels = pixels;
    }
    let dir = settings.dir.clone();
    let plan = Plan {
        persistence: Some(settings),
        ..Plan::default()
    };
    let engine = graph.engine().clone();
    let runtime = py
        .detach(move || {
            crate::error::unwinding("starting persistence", || Runtime::start_on(plan, &engine))
        })?
        .map_err(|e| Dav2dError::new_err(e.to_string()))?;
    let stats = runtime.persistence_stats().ok_or_else(|| {
        crate::error::Dav2dError::new_err("the runtime started without its store")
    })?;
    Ok(PyPersistence {
        runtime: Mutex::new(Some(runtime)),
        stats,
        dir,
    })
}

/// The history rows of the store in `dir` (Parquet files and the log not
/// yet rolled into them) as columns: `ts` (int64 ns array), `name`, `key`,
/// `value` (floats or None), `state` (strings or None).
#[pyfunction]
#[pyo3(signature = (dir, name = None, key = None, since = None, until = None))]
pub fn history<'py>(
    py: Python<'py>,
    dir: PathBuf,
    name: Option<String>,
    key: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    if !dir.is_dir() {
        return Err(crate::error::invalid(format!(
            "{} is not a store directory (persistence.dir)",
            dir.display()
        )));
    }
    let query = Query {
        name,
        key,
        since,
        until,
    };
    let mut all = dav2d_store::Rows::default();
    py.detach(|| {
        crate::error::unwinding("reading history", || {
            dav2d_store::history::scan(
                &dir,
                &query,
                |_| {},
                |rows| {
                    all.ts.extend_from_slice(&rows.ts);
                    all.name.extend(rows.name.iter().cloned());
                    all.key.extend(rows.key.iter().cloned());
                    all.value.extend_from_slice(&rows.value);
                    all.state.extend(rows.state.iter().cloned());
                    Ok(())
                },
            )
        })
    })?
    .map_err(|e| crate::error::Dav2dError::new_err(e.to_string()))?;
    let d = PyDict::new(py);
    d.set_item("ts", all.ts.into_pyarray(py))?;
    d.set_item("name", PyList::new(py, all.name.iter().map(|s| &**s))?)?;
    d.set_item("key", PyList::new(py, all.key.iter().map(|s| &**s))?)?;
    d.set_item("value", PyList::new(py, &all.value)?)?;
    d.set_item(
        "state",
        PyList::new(py, all.state.iter().map(|s| s.as_deref()))?,
    )?;
    Ok(d)
}
