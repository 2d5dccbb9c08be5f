//! `Sample`, `Update` and `Subscription`: what Python reads of a graph,
//! converted from the engine's readings and updates.

use std::time::Duration;

use dav2d_core::{Reading, Subscription, Update};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

use crate::convert::to_python;

/// `repr()` of a Python value, for the `__repr__`s below.
fn repr_of(py: Python<'_>, value: &Py<PyAny>) -> String {
    value
        .bind(py)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_default()
}

/// The latest sample of one (stream, key), with its error state.
#[pyclass(module = "dav2d._dav2d", name = "Sample", frozen, get_all)]
pub struct PySample {
    /// The value (None if the key has only ever failed).
    value: Py<PyAny>,
    /// Timestamp, ns since the epoch.
    ts: i64,
    /// Position in the (stream, key) series.
    seq: u64,
    /// The key.
    key: String,
    /// The traceback or reason while the (node, key) is in an error state.
    error: Option<String>,
}

#[pymethods]
impl PySample {
    fn __repr__(&self, py: Python<'_>) -> String {
        let value = repr_of(py, &self.value);
        match &self.error {
            Some(error) => format!(
                "Sample(key={:?}, value={value}, ts={}, seq={}, error={:?})",
                self.key,
                self.ts,
                self.seq,
                error.lines().last().unwrap_or("")
            ),
            None => format!(
                "Sample(key={:?}, value={value}, ts={}, seq={})",
                self.key, self.ts, self.seq
            ),
        }
    }
}

pub(crate) fn sample(py: Python<'_>, key: &str, reading: Reading) -> PyResult<PySample> {
    let (value, ts, seq) = match &reading.sample {
        Some(s) => (to_python(py, &s.value)?.unbind(), s.ts_ns, s.seq),
        None => (py.None(), 0, 0),
    };
    Ok(PySample {
        value,
        ts,
        seq,
        key: key.to_string(),
        error: reading.error.map(|e| e.to_string()),
    })
}

/// One change delivered to a subscriber.
#[pyclass(module = "dav2d._dav2d", name = "Update", frozen, get_all)]
pub struct PyUpdate {
    /// The stream, node or constraint name.
    name: String,
    /// The key.
    key: String,
    /// The new value (None when the update reports an error).
    value: Py<PyAny>,
    /// Timestamp, ns since the epoch.
    ts: i64,
    /// Position in the (name, key) series.
    seq: u64,
    /// The error (traceback) when a node's key failed.
    error: Option<String>,
    /// For constraints: `(from_state, to_state)` when this update is a transition.
    transition: Option<(String, String)>,
}

#[pymethods]
impl PyUpdate {
    fn __repr__(&self, py: Python<'_>) -> String {
        let value = repr_of(py, &self.value);
        let mut text = format!(
            "Update(name={:?}, key={:?}, value={value}, ts={}",
            self.name, self.key, self.ts
        );
        if let Some((from, to)) = &self.transition {
            text.push_str(&format!(", transition={from}->{to}"));
        }
        if let Some(error) = &self.error {
            text.push_str(&format!(", error={:?}", error.lines().last().unwrap_or("")));
        }
        text + ")"
    }
}

fn update(py: Python<'_>, update: Update) -> PyResult<PyUpdate> {
    Ok(PyUpdate {
        name: update.name.to_string(),
        key: update.key.to_string(),
        value: match &update.value {
            Some(v) => to_python(py, v)?.unbind(),
            None => py.None(),
        },
        ts: update.ts_ns,
        seq: update.seq,
        error: update.error.map(|e| e.to_string()),
        transition: update
            .transition
            .map(|t| (t.from.as_str().to_string(), t.to.as_str().to_string())),
    })
}

/// A subscription: iterate it (blocking) or call `get(timeout)`.
#[pyclass(module = "dav2d._dav2d", name = "Subscription")]
pub struct PySubscription {
    pub(crate) inner: Subscription,
}

#[pymethods]
impl PySubscription {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<PyUpdate> {
        loop {
            let next = py.detach(|| {
                crate::error::unwinding("a subscription", || {
                    self.inner.next_timeout(Duration::from_millis(100))
                })
            })?;
            if let Some(next) = next {
                return update(py, next);
            }
            if self.closed() {
                return Err(PyStopIteration::new_err(()));
            }
            py.check_signals()?;
        }
    }

    /// The next update, waiting up to `timeout` seconds (forever if None);
    /// None on timeout or after `close()`.
    #[pyo3(signature = (timeout = None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyUpdate>> {
        let deadline =
            // Any number is a wait: NaN and negatives are none, and
            // infinity (or anything past a year) waits a year at a time.
            timeout.map(|t| {
                let seconds = if t >= 0.0 { t.min(365.0 * 86_400.0) } else { 0.0 };
                std::time::Instant::now() + Duration::from_secs_f64(seconds)
            });
        loop {
            let wait = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            };
            let next = py.detach(|| {
                crate::error::unwinding("a subscription", || self.inner.next_timeout(wait))
            })?;
            if let Some(next) = next {
                return update(py, next).map(Some);
            }
            if self.closed() || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// Stops the subscription; iteration ends.
    fn close(&self) {
        self.inner.close();
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Updates folded into a newer one because the reader was behind.
    #[getter]
    fn conflated(&self) -> u64 {
        self.inner.conflated()
    }

    /// Updates waiting to be read.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// The name subscribed to.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_string()
    }
}
