//! The one place engine errors become Python exceptions.

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

/// The classes with two bases (a `Dav2dError` that is also a builtin
/// error), made once at import.
static INVALID_ARGUMENT: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> =
    pyo3::sync::PyOnceLock::new();
static INVALID_TYPE: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> =
    pyo3::sync::PyOnceLock::new();
static OUT_OF_RANGE: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> =
    pyo3::sync::PyOnceLock::new();

fn raise(
    class: &pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>>,
    fallback: fn(String) -> PyErr,
    message: String,
) -> PyErr {
    Python::attach(|py| match class.get(py) {
        Some(class) => PyErr::from_type(class.bind(py).clone(), message),
        None => fallback(message),
    })
}

/// An argument out of its range or of the wrong shape: a
/// `dav2d.InvalidArgument` (both `Dav2dError` and `ValueError`).
pub fn invalid(message: impl Into<String>) -> PyErr {
    raise(
        &INVALID_ARGUMENT,
        pyo3::exceptions::PyValueError::new_err,
        message.into(),
    )
}

/// Logs `message` at `level` (`warning`, `error`) through Python's
/// `logging`, on the "dav2d" logger.
pub fn log(py: Python<'_>, level: &str, message: &str) {
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("dav2d",)))
        .and_then(|logger| logger.call_method1(level, (message,)));
    if let Err(error) = logged {
        error.print(py);
    }
}

/// A lock left behind by a dav2d thread that failed while holding it: the
/// `what` it guarded cannot be trusted any more.
pub fn poisoned(what: &str) -> PyErr {
    Dav2dError::new_err(format!(
        "internal error: a dav2d thread failed while it was using the {what}, so it cannot be used any more; \
         restart the Python process (the log has the failure; please report it)"
    ))
}

/// An argument of a type dav2d does not take: a `dav2d.InvalidType`
/// (both `Dav2dError` and `TypeError`).
pub fn invalid_type(message: impl Into<String>) -> PyErr {
    raise(
        &INVALID_TYPE,
        pyo3::exceptions::PyTypeError::new_err,
        message.into(),
    )
}

/// An index past the end: a `dav2d.OutOfRange` (both `Dav2dError` and
/// `IndexError`, so sequence iteration still ends on it).
pub fn out_of_range(message: impl Into<String>) -> PyErr {
    raise(
        &OUT_OF_RANGE,
        pyo3::exceptions::PyIndexError::new_err,
        message.into(),
    )
}

/// Makes `dav2d.<name>`, a subclass of both `Dav2dError` and `builtin`.
fn two_bases<'py>(
    py: Python<'py>,
    name: &str,
    builtin: Bound<'py, pyo3::types::PyType>,
    doc: &str,
) -> PyResult<Bound<'py, pyo3::types::PyType>> {
    let bases = (py.get_type::<Dav2dError>(), builtin);
    let namespace = pyo3::types::PyDict::new(py);
    namespace.set_item("__module__", "dav2d")?;
    namespace.set_item("__doc__", doc)?;
    let class = py
        .import("builtins")?
        .getattr("type")?
        .call1((name, bases, namespace))?;
    Ok(class.cast_into::<pyo3::types::PyType>()?)
}

/// Runs `work`, turning a panic inside it into a `dav2d.Dav2dError` that
/// says what failed, instead of pyo3's `PanicException` (a `BaseException`
/// that `except Exception` misses). The engine's lock recovers from a
/// poisoned state, so the graph stays usable after the error.
pub fn unwinding<T>(what: &str, work: impl FnOnce() -> T) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an unknown panic".to_string());
        Dav2dError::new_err(format!(
            "internal error in {what}: {message}; the graph stays usable, and this is a bug: please report it"
        ))
    })
}

/// Maps a registration or lookup error.
pub fn graph_error(error: dav2d_core::GraphError) -> PyErr {
    GraphError::new_err(error.to_string())
}

/// Maps a config error.
pub fn config_error(error: dav2d_runtime::ConfigError) -> PyErr {
    ConfigError::new_err(error.to_string())
}

/// A config refused with `message` (a reload's): `dav2d.ConfigError`.
pub fn config(message: String) -> PyErr {
    ConfigError::new_err(message)
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Dav2dError", py.get_type::<Dav2dError>())?;
    m.add("GraphError", py.get_type::<GraphError>())?;
    m.add("RejectedError", py.get_type::<RejectedError>())?;
    m.add("NodeError", py.get_type::<NodeError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    let classes = [
        (
            &INVALID_ARGUMENT,
            "InvalidArgument",
            py.get_type::<pyo3::exceptions::PyValueError>(),
            "An argument out of its range or of the wrong shape (also a ValueError).",
        ),
        (
            &INVALID_TYPE,
            "InvalidType",
            py.get_type::<pyo3::exceptions::PyTypeError>(),
            "An argument of a type dav2d does not take (also a TypeError).",
        ),
        (
            &OUT_OF_RANGE,
            "OutOfRange",
            py.get_type::<pyo3::exceptions::PyIndexError>(),
            "An index past the end of a window (also an IndexError).",
        ),
    ];
    for (slot, name, builtin, doc) in classes {
        let class = two_bases(py, name, builtin, doc)?;
        m.add(name, &class)?;
        let _ = slot.set(py, class.unbind());
    }
    Ok(())
}
