//! Python callables as node logic. The GIL is taken once per batch: the
//! engine hands over every key of the node that needs evaluating in a wave.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dav2d_core::{CustomLogic, Evaluation, Outcome, Value, WindowSnapshot};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::to_value;
use crate::error::Dav2dError;
use crate::window::{PyWindow, only_reference};

thread_local! {
    static IN_LOGIC: Cell<bool> = const { Cell::new(false) };
}

/// Python logic alive in this process (every graph's): while there is
/// some, a push keeps the GIL when the engine is free (see `door.rs`).
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether any graph of this process has Python node logic.
pub fn any_python_logic() -> bool {
    LIVE.load(std::sync::atomic::Ordering::Relaxed) > 0
}

/// Refuses engine calls from inside node logic, where the graph is locked
/// by the wave that is running the logic.
pub fn refuse_reentry() -> PyResult<()> {
    if IN_LOGIC.with(Cell::get) {
        return Err(Dav2dError::new_err(
            "dav2d functions cannot be called from inside node logic: the wave running it holds the graph; \
             give the node more inputs instead of reading other nodes from its logic",
        ));
    }
    Ok(())
}

/// A Python callable evaluated for each key with one `Window` per input.
pub struct PyLogic {
    callable: Py<PyAny>,
    description: String,
    numeric: bool,
    /// With `logic_batch`: each input's window width (one call per wave).
    batch: Option<Vec<usize>>,
    last_logged: Option<Instant>,
    suppressed: u64,
    /// The window object passed last, reused for the next call when the
    /// logic kept no reference to it (see [`PyLogic::window`]).
    spare: Option<Py<PyWindow>>,
    /// The one-item argument tuple of a single-input call, reused while
    /// the logic kept no reference to it (see [`PyLogic::call_one`]).
    args: Option<Py<PyTuple>>,
}

impl PyLogic {
    /// Wraps `callable`; `numeric` requires it to return numbers.
    pub fn new(py: Python<'_>, callable: Py<PyAny>, numeric: bool) -> Self {
        let name = callable
            .bind(py)
            .getattr("__qualname__")
            .or_else(|_| callable.bind(py).getattr("__name__"))
            .and_then(|n| n.extract::<String>())
            .unwrap_or_else(|_| "callable".to_string());
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            callable,
            description: format!("python:{name}"),
            numeric,
            batch: None,
            last_logged: None,
            suppressed: 0,
            spare: None,
            args: None,
        }
    }

    /// Calls the logic with `window` as its one argument, in a tuple made
    /// once and reused while nothing else holds it (the interpreter was
    /// given it item by item, so a function that kept its arguments kept the
    /// window, not the tuple; one that kept `*args` gets a tuple of its own
    /// next time). The window leaves the tuple after the call, so the tuple
    /// does not keep it alive.
    fn call_one<'py>(
        &mut self,
        py: Python<'py>,
        window: &Bound<'py, PyWindow>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = match self.args.take() {
            Some(args) if only_reference(args.bind(py).as_any()) => args,
            _ => PyTuple::new(py, [py.None()])?.unbind(),
        };
        let args = args.into_bound(py);
        // SAFETY: the tuple has one item and only this reference (checked
        // above, or new), so its item may be replaced; `PyTuple_SetItem`
        // takes the new reference and releases the item it replaces.
        let set = |item: *mut pyo3::ffi::PyObject| unsafe {
            pyo3::ffi::Py_IncRef(item);
            pyo3::ffi::PyTuple_SetItem(args.as_ptr(), 0, item)
        };
        if set(window.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        let result = self.callable.bind(py).call1(&args);
        // The tuple is reusable only if the call kept no reference to it.
        if only_reference(args.as_any()) && set(py.None().as_ptr()) == 0 {
            self.args = Some(args.unbind());
        }
        result
    }

    /// The window object for a single-input call: the one passed last
    /// when nothing else holds it (the logic kept no reference, so no one
    /// can see it change), else a new one. Either way it is the spare after.
    fn window<'py>(
        &mut self,
        py: Python<'py>,
        snapshot: dav2d_core::WindowSnapshot,
        key: &Arc<str>,
    ) -> PyResult<Bound<'py, PyWindow>> {
        let snapshot = match &self.spare {
            Some(spare) => match PyWindow::reset(spare, py, snapshot, key) {
                Ok(()) => return Ok(spare.bind(py).clone()),
                Err(snapshot) => snapshot,
            },
            None => snapshot,
        };
        let window = Bound::new(py, PyWindow::new(snapshot, Arc::clone(key)))?;
        self.spare = Some(window.clone().unbind());
        Ok(window)
    }

    fn evaluate_one(
        &mut self,
        py: Python<'_>,
        node: &str,
        item: &mut Evaluation,
    ) -> Result<Outcome, PyErr> {
        let window = |w: &dav2d_core::WindowSnapshot| {
            Py::new(py, PyWindow::new(w.clone(), Arc::clone(&item.key)))
        };
        let result = match item.inputs.len() {
            // The common case: no Vec, and the window object reused (with
            // the snapshot moved in: the engine clears the inputs anyway).
            1 => {
                let one = item.inputs.pop().unwrap_or_else(WindowSnapshot::none);
                let window = self.window(py, one, &item.key)?;
                let result = self.call_one(py, &window);
                drop(window);
                // A window the logic let go of holds no snapshot until the
                // next call, so the engine's next write needs no copy.
                if let Some(spare) = &self.spare {
                    PyWindow::release(spare, py);
                }
                result?
            }
            _ => {
                let callable = self.callable.bind(py);
                let windows = item
                    .inputs
                    .iter()
                    .map(window)
                    .collect::<PyResult<Vec<_>>>()?;
                callable.call1(PyTuple::new(py, windows)?)?
            }
        };
        if result.is_none() {
            return Ok(Outcome::Skip);
        }
        let what = if self.numeric {
            "a number or None"
        } else {
            "a number, bool, string, bytes, a flat dict or None"
        };
        Ok(match to_value(&result) {
            Ok(value @ (Value::Float(_) | Value::Int(_) | Value::Bool(_))) => {
                Outcome::Output(value)
            }
            Ok(value) if !self.numeric => Outcome::Output(value),
            Ok(value) => Outcome::Failed(Arc::from(format!(
                "TypeError: node '{node}' returned a {} for key '{}'; its logic must return {what} (register it with returns=\"any\" to allow other values)",
                value.type_name(),
                item.key
            ))),
            Err(got) => Outcome::Failed(Arc::from(format!(
                "TypeError: node '{node}' returned {got} for key '{}'; its logic must return {what}",
                item.key
            ))),
        })
    }

    /// Logs a failure through Python's `logging` ("dav2d" logger), at most
    /// once a second per node so a failing fleet does not flood the log.
    fn log(&mut self, py: Python<'_>, node: &str, key: &str, traceback: &str) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        self.last_logged = Some(now);
        let logged = py.import("logging").and_then(|logging| {
            let logger = logging.call_method1("getLogger", ("dav2d",))?;
            logger.call_method1(
                "error",
                (
                    "Node %r failed for key %r (%d more failures not logged in the last second):\n%s",
                    node,
                    key,
                    suppressed,
                    traceback,
                ),
            )
        });
        if let Err(error) = logged {
            error.print(py);
        }
    }
}

fn format_traceback(py: Python<'_>, error: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1(
            "format_exception",
            (error.get_type(py), error.value(py), error.traceback(py)),
        )?;
        lines.extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_string(),
        Err(_) => error.to_string(),
    }
}

impl Drop for PyLogic {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl CustomLogic for PyLogic {
    fn evaluate_batch(&mut self, node: &str, batch: &mut [Evaluation]) {
        Python::attach(|py| {
            IN_LOGIC.with(|flag| flag.set(true));
            if let Some(widths) = &self.batch {
                let called =
                    crate::batch::evaluate(py, self.callable.bind(py), node, batch, widths);
                if let Err(error) = called {
                    let traceback = format_traceback(py, &error);
                    let key = batch.first().map_or(String::new(), |e| e.key.to_string());
                    self.log(py, node, &key, &traceback);
                    let failed: Arc<str> = Arc::from(traceback);
                    for item in batch.iter_mut() {
                        item.outcome = Outcome::Failed(Arc::clone(&failed));
                    }
                }
                IN_LOGIC.with(|flag| flag.set(false));
                return;
            }
            for item in batch.iter_mut() {
                item.outcome = match self.evaluate_one(py, node, item) {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        let traceback = format_traceback(py, &error);
                        self.log(py, node, &item.key, &traceback);
                        Outcome::Failed(Arc::from(traceback))
                    }
                };
                if let Outcome::Failed(message) = &item.outcome
                    && message.starts_with("TypeError: node '")
                {
                    let message = message.to_string();
                    self.log(py, node, &item.key, &message);
                }
            }
            IN_LOGIC.with(|flag| flag.set(false));
        });
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// The logic of a node registered from Python with a callable: `returns`
/// is `number` or `any`; `batch` (`logic_batch`) calls it once per wave
/// with one 2-D array per input of the given widths.
pub fn registered(
    py: Python<'_>,
    node: &str,
    callable: Py<PyAny>,
    returns: &str,
    batch: Option<Vec<usize>>,
) -> PyResult<Box<dyn CustomLogic>> {
    if !callable.bind(py).is_callable() {
        return Err(crate::error::invalid(format!(
            "node '{node}': logic must be callable"
        )));
    }
    let numeric = match returns {
        "number" => true,
        "any" if batch.is_none() => false,
        "any" => {
            return Err(crate::error::invalid(format!(
                "node '{node}': logic_batch returns numbers; returns='any' is for logic"
            )));
        }
        other => {
            return Err(crate::error::invalid(format!(
                "node '{node}': returns must be 'number' or 'any', got '{other}'"
            )));
        }
    };
    let mut logic = PyLogic::new(py, callable, numeric);
    logic.batch = batch;
    Ok(Box::new(logic))
}

/// Makes the logic of a config's `kind: python` node: the function its
/// `logic: module:function` names, found by `dav2d._logic.load` (the Python
/// path, then the config's folder). Installed into the runtime when the
/// module is imported; errors read as the Python exception says.
pub fn from_config(
    request: &dav2d_runtime::config::PythonLogicRequest<'_>,
) -> Result<Box<dyn CustomLogic>, String> {
    Python::attach(|py| {
        let found = py
            .import("dav2d._logic")
            .and_then(|module| module.getattr("load"))
            .and_then(|load| {
                load.call1((
                    request.logic,
                    request.config_dir.to_string_lossy().into_owned(),
                ))
            });
        match found {
            Ok(callable) => Ok(
                Box::new(PyLogic::new(py, callable.unbind(), request.numeric))
                    as Box<dyn CustomLogic>,
            ),
            Err(error) => {
                let kind = error
                    .get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "Exception".to_string());
                let message = error.value(py).to_string();
                Err(match kind.as_str() {
                    "InvalidArgument" | "InvalidType" => message,
                    _ => format!("importing '{}' raised {kind}: {message}", request.logic),
                })
            }
        }
    })
}
