//! The thin PyO3 layer of the `dav2d` Python package (`dav2d._dav2d`):
//! wrappers, conversions and error mapping only. No engine logic lives here;
//! the GIL is released around every engine call and taken once per batch of
//! Python node evaluations.

mod convert;
mod error;
mod graph;
mod logic;
mod persist;
mod samples;
mod server;
mod window;

use pyo3::prelude::*;

/// The compiled core of the `dav2d` package. Use `dav2d`, not this module.
#[pymodule]
fn _dav2d(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    m.add_class::<graph::PyGraph>()?;
    m.add_class::<samples::PySample>()?;
    m.add_class::<samples::PyUpdate>()?;
    m.add_class::<samples::PySubscription>()?;
    m.add_class::<window::PyWindow>()?;
    m.add_class::<server::PyServer>()?;
    m.add_function(wrap_pyfunction!(server::serve, m)?)?;
    m.add_class::<persist::PyPersistence>()?;
    m.add_function(wrap_pyfunction!(persist::persist, m)?)?;
    m.add_function(wrap_pyfunction!(persist::history, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
