//! `serve()`: the runtime inside a Python process, feeding a Python graph
//! (the config's graph, sources, sinks and persistence when a config is
//! given; the HTTP and TCP servers by default).

use std::path::PathBuf;
use std::sync::Mutex;

use dav2d_runtime::{Config, Overrides, Plan, Runtime};
use pyo3::prelude::*;

use crate::error::{Dav2dError, config_error};
use crate::graph::PyGraph;

/// A running runtime; `stop()` (or garbage collection) stops it in order.
#[pyclass(module = "dav2d._dav2d", name = "Server")]
pub struct PyServer {
    inner: Mutex<Option<Runtime>>,
    http: Option<String>,
    tcp: Option<String>,
}

#[pymethods]
impl PyServer {
    /// `host:port` of the HTTP API, or None.
    #[getter]
    fn http_address(&self) -> Option<String> {
        self.http.clone()
    }

    /// `host:port` of the TCP server, or None.
    #[getter]
    fn tcp_address(&self) -> Option<String> {
        self.tcp.clone()
    }

    /// Whether it is still running.
    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().map(|r| r.is_some()).unwrap_or(false)
    }

    /// Stops in order (sources stop accepting, the graph drains, sinks flush,
    /// the store checkpoints) and waits. Safe to call twice.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let runtime = self
            .inner
            .lock()
            .map_err(|_| crate::error::poisoned("server"))?
            .take();
        if let Some(runtime) = runtime {
            py.detach(|| crate::error::unwinding("stopping the server", || runtime.stop()))?;
        }
        Ok(())
    }

    /// Serves until SIGINT (Ctrl-C) or SIGTERM arrives, or `timeout`
    /// seconds pass, then stops in order, like `dav2d run`. Returns True
    /// when a signal asked. On the main thread SIGTERM is handled like
    /// SIGINT for the wait (and restored after), so a script ends with exit
    /// status 0 instead of being killed. A signal that comes before `wait`
    /// is called gets Python's usual handling (SIGTERM ends the process,
    /// SIGINT raises `KeyboardInterrupt` where the script is).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(std::time::Instant::now() + std::time::Duration::from_secs_f64(t.min(1e9)))
            }
            Some(t) => {
                return Err(crate::error::invalid(format!(
                    "timeout={t} is not a number of seconds >= 0"
                )));
            }
            None => None,
        };
        let signal = py.import("signal")?;
        let sigterm = signal.getattr("SIGTERM")?;
        // Only the main thread may set handlers; elsewhere SIGTERM keeps its own.
        let previous = signal
            .call_method1("signal", (&sigterm, signal.getattr("default_int_handler")?))
            .ok();
        let mut signalled = false;
        let outcome = loop {
            py.detach(|| std::thread::sleep(std::time::Duration::from_millis(20)));
            match py.check_signals() {
                Ok(()) => {}
                Err(error) if error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
                    signalled = true;
                    break Ok(());
                }
                Err(error) => break Err(error),
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                break Ok(());
            }
        };
        if let Some(previous) = previous {
            signal.call_method1("signal", (&sigterm, previous))?;
        }
        outcome?;
        self.stop(py)?;
        Ok(signalled)
    }

    fn __repr__(&self) -> String {
        format!("Server(http={:?}, tcp={:?})", self.http, self.tcp)
    }
}

fn listen(text: &str, what: &str) -> PyResult<Option<std::net::SocketAddr>> {
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| {
        crate::error::invalid(format!(
            "{what}='{text}' is not an address ({e}); write e.g. 127.0.0.1:8080, or 'off'"
        ))
    })
}

/// Starts a runtime for `graph`: the YAML `config` (if given: its streams,
/// nodes, constraints, sources, sinks, the `http`, `tcp` and `ingest`
/// sections, and persistence when its `persistence` section asks for it),
/// then the keyword overrides.
#[pyfunction]
#[pyo3(signature = (graph, config = None, *, http = None, tcp = None, token = None, max_body = None, workers = None, data = None))]
#[allow(clippy::too_many_arguments)]
pub fn serve(
    py: Python<'_>,
    graph: &PyGraph,
    config: Option<PathBuf>,
    http: Option<String>,
    tcp: Option<String>,
    token: Option<String>,
    max_body: Option<usize>,
    workers: Option<usize>,
    data: Option<String>,
) -> PyResult<PyServer> {
    let config = match &config {
        Some(path) => Config::load(path).map_err(config_error)?,
        None => Config::default(),
    };
    // A Python graph persists through `persist()` unless its config asks.
    let persists = config.persistence.is_set();
    let mut overrides = Overrides {
        data: match data.as_deref() {
            Some("off") => Some(None),
            Some(dir) => Some(Some(PathBuf::from(dir))),
            None if persists => None,
            None => Some(None),
        },
        ..Overrides::default()
    };
    let mut http_config = config.http().map_err(config_error)?;
    if let Some(text) = &http {
        http_config = listen(text, "http")?.map(|bind| {
            let mut http = http_config.unwrap_or_default();
            http.listen.bind = bind;
            http
        });
    }
    if let Some(http) = http_config.as_mut() {
        if let Some(token) = token {
            if token.trim().is_empty() {
                return Err(crate::error::invalid(
                    "token='' would turn auth off; leave token out to run without one, or give a secret",
                ));
            }
            http.listen.token = Some(token);
        }
        if let Some(max_body) = max_body {
            http.max_body = max_body;
        }
    }
    overrides.http = Some(http_config);
    if let Some(text) = &tcp {
        let tcp_config = config.tcp().map_err(config_error)?;
        overrides.tcp = Some(listen(text, "tcp")?.map(|bind| {
            let mut tcp = tcp_config.unwrap_or_default();
            tcp.listen.bind = bind;
            tcp
        }));
    }
    let mut plan = Plan::new(config, overrides).map_err(config_error)?;
    if let Some(workers) = workers {
        plan.intake.workers = workers;
    }
    let engine = graph.engine().clone();
    let runtime = py
        .detach(|| {
            crate::error::unwinding("starting the server", || Runtime::start_on(plan, &engine))
        })?
        .map_err(|e| match e {
            dav2d_runtime::RuntimeError::Config(error) => config_error(error),
            error => Dav2dError::new_err(error.to_string()),
        })?;
    Ok(PyServer {
        http: runtime.address("http").map(|a| a.to_string()),
        tcp: runtime.address("tcp").map(|a| a.to_string()),
        inner: Mutex::new(Some(runtime)),
    })
}
