//! The thin PyO3 layer of the `dav2d` Python package (`dav2d._dav2d`):
//! wrappers, conversions and error mapping only. No engine logic lives here;
//! the GIL is released around every engine call and taken once per batch of
//! Python node evaluations.

mod allocations;
mod batch;
mod convert;
mod dlpack;
mod door;
mod error;
mod frames;
mod graph;
mod listing;
mod logic;
mod options;
mod persist;
mod processor;
mod reload;
mod samples;
mod server;
mod window;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The engine's table of built-in nodes: one dict per built-in with `kind`,
/// `help` and `params` (a list of `(name, default or None, integer)`);
/// `dav2d.nodes` makes its constructors from it.
#[pyfunction]
fn builtins(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for def in dav2d_core::BUILTINS {
        let d = PyDict::new(py);
        d.set_item("kind", def.kind)?;
        d.set_item("help", def.help)?;
        let params: Vec<(&str, Option<f64>, bool)> = def
            .params
            .iter()
            .map(|p| (p.name, p.default, p.integer))
            .collect();
        d.set_item("params", params)?;
        list.append(d)?;
    }
    Ok(list)
}

/// `(samples, span ns or None)` of a node's window as written (`16`,
/// `30s`, `250000ns`) with its `max_samples`: core's one window reader,
/// the one YAML's `window:` goes through; `what` names the node in errors.
#[pyfunction]
#[pyo3(signature = (written, max_samples, what))]
fn node_window(
    written: &str,
    max_samples: Option<f64>,
    what: &str,
) -> PyResult<(usize, Option<i64>)> {
    match dav2d_core::Window::parse(Some(written), max_samples) {
        Ok(Some(window)) => Ok((window.samples(), window.span_ns())),
        Ok(None) => Err(error::invalid(format!("{what}: no window"))),
        Err((field, message)) => {
            let field = match field {
                dav2d_core::WindowField::Window => "window",
                dav2d_core::WindowField::MaxSamples => "max_samples",
            };
            Err(error::invalid(format!("{what}: {field}: {message}")))
        }
    }
}

/// Nanoseconds of a duration written as configs write it (`30s`, `1m`,
/// `500ms`); `what` names the argument in the error.
#[pyfunction]
fn parse_duration(text: &str, what: &str) -> PyResult<i64> {
    dav2d_runtime::parse_span(text).map_err(|e| error::invalid(format!("{what}: {e}")))
}

/// Runs the `dav2d` command line (`run`, `check`, `inspect`, `export`) in
/// this process, exactly as the `dav2d` binary does, and returns its exit
/// status: what the package's `dav2d` console command calls.
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    // A config's processor nodes find ONNX Runtime in this interpreter's
    // packages, whatever `python3` on PATH is.
    processor::hint_installed_package(py);
    py.detach(|| dav2d_cli::main_with(argv))
}

/// The compiled core of the `dav2d` package. Use `dav2d`, not this module.
#[pymodule]
fn _dav2d(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    // Configs read in this process can run `kind: python` nodes.
    dav2d_runtime::config::install_python_logic(logic::from_config);
    m.add_class::<graph::PyGraph>()?;
    m.add_class::<samples::PySample>()?;
    m.add_class::<samples::PyUpdate>()?;
    m.add_class::<samples::PySubscription>()?;
    m.add_class::<window::PyWindow>()?;
    m.add_class::<frames::PyFrameStream>()?;
    m.add_class::<frames::PyFrame>()?;
    m.add_class::<processor::PyProcessor>()?;
    m.add_class::<server::PyServer>()?;
    m.add_function(wrap_pyfunction!(server::serve, m)?)?;
    m.add_class::<persist::PyPersistence>()?;
    m.add_function(wrap_pyfunction!(persist::persist, m)?)?;
    m.add_function(wrap_pyfunction!(persist::history, m)?)?;
    m.add_function(wrap_pyfunction!(builtins, m)?)?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(parse_duration, m)?)?;
    m.add_function(wrap_pyfunction!(node_window, m)?)?;
    m.add_function(wrap_pyfunction!(allocations::_rust_allocations, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_WINDOW", dav2d_core::DEFAULT_WINDOW)?;
    m.add("DEFAULT_SPAN_SAMPLES", dav2d_core::DEFAULT_SPAN_SAMPLES)?;
    Ok(())
}
