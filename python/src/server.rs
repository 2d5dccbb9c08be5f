//! `serve()`: the HTTP and TCP ingest servers inside a Python process,
//! feeding a Python graph.

use std::path::PathBuf;
use std::sync::Mutex;

use dav2d_runtime::{Config, HttpConfig, IngestConfig, IngestServer, TcpConfig};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::config_error;
use crate::graph::PyGraph;

/// Running ingest servers; `stop()` (or garbage collection) stops them.
#[pyclass(module = "dav2d._dav2d", name = "Server")]
pub struct PyServer {
    inner: Mutex<Option<IngestServer>>,
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

    /// Stops the servers and waits for them.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let server = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("server lock poisoned"))?
            .take();
        if let Some(server) = server {
            py.detach(|| server.stop());
        }
        Ok(())
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
        PyValueError::new_err(format!(
            "{what}='{text}' is not an address ({e}); write e.g. 127.0.0.1:8080, or 'off'"
        ))
    })
}

/// Starts the ingest servers for `graph`: settings from the `http`, `tcp`
/// and `ingest` sections of the YAML `config` (if given), then the keyword
/// overrides.
#[pyfunction]
#[pyo3(signature = (graph, config = None, *, http = None, tcp = None, token = None, max_body = None, workers = None))]
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
) -> PyResult<PyServer> {
    let mut ingest = match &config {
        Some(path) => Config::load(path)
            .and_then(|c| c.ingest())
            .map_err(config_error)?
            .unwrap_or_else(|| IngestConfig {
                http: None,
                tcp: None,
                ..IngestConfig::default()
            }),
        None => IngestConfig::default(),
    };
    if let Some(text) = &http {
        match listen(text, "http")? {
            Some(address) => ingest.http.get_or_insert_with(HttpConfig::default).bind = address,
            None => ingest.http = None,
        }
    }
    if let Some(text) = &tcp {
        match listen(text, "tcp")? {
            Some(address) => ingest.tcp.get_or_insert_with(TcpConfig::default).bind = address,
            None => ingest.tcp = None,
        }
    }
    if let Some(http) = ingest.http.as_mut() {
        if token.is_some() {
            http.token = token.filter(|t| !t.is_empty());
        }
        if let Some(max_body) = max_body {
            http.max_body = max_body;
        }
    }
    if let Some(workers) = workers {
        ingest.workers = workers;
    }
    let shared = graph.shared();
    let server = py
        .detach(|| IngestServer::start(ingest, shared))
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(PyServer {
        http: server.http_addr().map(|a| a.to_string()),
        tcp: server.tcp_addr().map(|a| a.to_string()),
        inner: Mutex::new(Some(server)),
    })
}
