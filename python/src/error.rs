//! The one place engine errors become Python exceptions.

use dav2d_core::Rejection;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    dav2d,
    Dav2dError,
    PyException,
    "Base class of every dav2d error."
);
create_exception!(
    dav2d,
    GraphError,
    Dav2dError,
    "A node, constraint or stream could not be registered (cycle, unknown input, duplicate name, bad window), or a name is unknown."
);
create_exception!(
    dav2d,
    RejectedError,
    Dav2dError,
    "A sample was rejected; the message says why."
);
create_exception!(
    dav2d,
    NodeError,
    Dav2dError,
    "A node's logic failed for this key; the message holds the traceback."
);
create_exception!(
    dav2d,
    ConfigError,
    Dav2dError,
    "A config file is invalid; the message names file, line, column and field."
);

/// Maps a registration or lookup error.
pub fn graph_error(error: dav2d_core::GraphError) -> PyErr {
    GraphError::new_err(error.to_string())
}

/// Maps a rejected sample.
pub fn rejection(error: Rejection) -> PyErr {
    RejectedError::new_err(error.to_string())
}

/// Maps a config error.
pub fn config_error(error: dav2d_runtime::ConfigError) -> PyErr {
    ConfigError::new_err(error.to_string())
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Dav2dError", py.get_type::<Dav2dError>())?;
    m.add("GraphError", py.get_type::<GraphError>())?;
    m.add("RejectedError", py.get_type::<RejectedError>())?;
    m.add("NodeError", py.get_type::<NodeError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    Ok(())
}
