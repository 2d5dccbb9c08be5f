//! `Window`: the `data` argument of Python node logic, a zero-copy view of
//! the newest samples of one key.

use std::cell::UnsafeCell;
use std::sync::Arc;

use dav2d_core::WindowSnapshot;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySlice};

use crate::convert::to_python;

/// The newest samples of one input for one key, oldest first.
///
/// Supports `len()`, indexing, slicing (a slice is a list), iteration,
/// `sum()`, and `numpy.asarray(window)` without copying (read-only). The
/// view stays valid after the call: the engine copies its ring on the next
/// write instead of changing what a kept view shows.
#[pyclass(module = "dav2d._dav2d", name = "Window", frozen)]
pub struct PyWindow {
    inner: UnsafeCell<Inner>,
}

struct Inner {
    /// `None` between calls of a reused window (see [`PyWindow::release`]):
    /// it reads as empty.
    held: Option<WindowSnapshot>,
    key: Arc<str>,
}

// SAFETY: the contents change only through `PyWindow::change_unshared`: while
// attached to the interpreter (this module is built for the GIL's
// interpreters only) and through the one reference to the window there
// is, so no other thread and no Python code can be reading them then.
// Reads (the methods below) happen through references that keep it
// shared. Being frozen spares every call the class's borrow flag.
unsafe impl Sync for PyWindow {}

/// Whether the caller's reference to `object` is its only one (so nothing
/// else can see it change). pyo3 deprecates its own `get_refcnt` for this.
pub(crate) fn only_reference(object: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `object` is live (borrowed for the call, attached to the
    // interpreter); its reference count is only read.
    unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) == 1 }
}

/// What a window that let go of its snapshot reads as.
static EMPTY: std::sync::LazyLock<WindowSnapshot> = std::sync::LazyLock::new(WindowSnapshot::none);

impl PyWindow {
    /// Wraps a snapshot (the key is shared, not copied).
    pub fn new(snapshot: WindowSnapshot, key: Arc<str>) -> Self {
        Self {
            inner: UnsafeCell::new(Inner {
                held: Some(snapshot),
                key,
            }),
        }
    }

    /// Changes the window's contents with `change`, when `window` is its
    /// only reference (node logic kept none, so no one can see it change);
    /// whether it did.
    fn change_unshared(
        window: &Py<PyWindow>,
        py: Python<'_>,
        change: impl FnOnce(&mut Inner),
    ) -> bool {
        if !only_reference(window.bind(py).as_any()) {
            return false;
        }
        // SAFETY: see `impl Sync`: attached, and the only reference; the
        // mutable reference does not outlive `change`.
        change(unsafe { &mut *window.get().inner.get() });
        true
    }

    /// Points a window only `window` holds at another snapshot and key
    /// (node logic reuses its window object between calls); the snapshot
    /// back when something else holds the window.
    pub fn reset(
        window: &Py<PyWindow>,
        py: Python<'_>,
        snapshot: WindowSnapshot,
        key: &Arc<str>,
    ) -> Result<(), WindowSnapshot> {
        let mut snapshot = Some(snapshot);
        Self::change_unshared(window, py, |inner| {
            inner.held = snapshot.take();
            if !Arc::ptr_eq(&inner.key, key) {
                inner.key = Arc::clone(key);
            }
        });
        match snapshot {
            None => Ok(()),
            Some(snapshot) => Err(snapshot),
        }
    }

    /// Lets go of the snapshot of a window only `window` holds (kept by no
    /// one between calls), without making an empty one: this is on every
    /// call's path.
    pub fn release(window: &Py<PyWindow>, py: Python<'_>) {
        Self::change_unshared(window, py, |inner| inner.held = None);
    }

    /// The samples it shows.
    fn snapshot(&self) -> &WindowSnapshot {
        // SAFETY: see `impl Sync`: nothing changes the contents while a
        // reference other than the changer's exists.
        let inner = unsafe { &*self.inner.get() };
        inner.held.as_ref().unwrap_or(&EMPTY)
    }

    /// The key it belongs to.
    fn key_name(&self) -> &str {
        // SAFETY: as in `snapshot`.
        unsafe { &(*self.inner.get()).key }
    }

    fn list<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        end: usize,
        step: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        if self.snapshot().is_all_float() {
            let numbers = self.snapshot().numbers();
            if step <= 1 {
                return PyList::new(py, &numbers[start.min(end)..end]);
            }
            let picked = (start..end).step_by(step).map(|i| numbers[i]);
            return PyList::new(py, picked);
        }
        let items = (start..end)
            .step_by(step.max(1))
            .filter_map(|i| self.snapshot().value(i))
            .map(|v| to_python(py, &v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

#[pymethods]
impl PyWindow {
    fn __len__(&self) -> usize {
        self.snapshot().len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let len = self.snapshot().len();
        if let Ok(slice) = index.cast::<PySlice>() {
            let indices = slice.indices(len as isize)?;
            if indices.step <= 0 {
                let forward = self.list(py, 0, len, 1)?;
                return forward.as_any().get_item(slice);
            }
            let (start, stop) = (indices.start.max(0) as usize, indices.stop.max(0) as usize);
            return Ok(self
                .list(py, start, stop.max(start), indices.step as usize)?
                .into_any());
        }
        let i: isize = index
            .extract()
            .map_err(|_| crate::error::invalid_type("window indices must be integers or slices"))?;
        let position = if i < 0 { i + len as isize } else { i };
        if position < 0 || position as usize >= len {
            return Err(crate::error::out_of_range(format!(
                "window index {i} out of range for a window of {len}"
            )));
        }
        match self.snapshot().value(position as usize) {
            Some(value) => to_python(py, &value),
            None => Err(crate::error::out_of_range("window index out of range")),
        }
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let list = self.list(py, 0, self.snapshot().len(), 1)?;
        list.as_any().try_iter().map(|it| it.into_any())
    }

    /// NumPy's array interface: the float values, read-only, no copy.
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let numbers = self.snapshot().numbers();
        let dict = PyDict::new(py);
        dict.set_item("shape", (numbers.len(),))?;
        dict.set_item("typestr", "<f8")?;
        dict.set_item("data", (numbers.as_ptr() as usize, true))?;
        dict.set_item("version", 3)?;
        Ok(dict)
    }

    /// The timestamps (ns since the epoch) of the samples, oldest first.
    #[getter]
    fn timestamps(&self) -> Vec<i64> {
        self.snapshot().timestamps().to_vec()
    }

    /// The key this window belongs to.
    #[getter]
    fn key(&self) -> &str {
        self.key_name()
    }

    fn __repr__(&self) -> String {
        let shown: Vec<String> = (0..self.snapshot().len().min(8))
            .filter_map(|i| self.snapshot().value(i))
            .map(|v| v.to_string())
            .collect();
        let more = if self.snapshot().len() > 8 {
            ", ..."
        } else {
            ""
        };
        format!(
            "Window(key={:?}, [{}{more}])",
            self.key_name(),
            shown.join(", ")
        )
    }
}
