//! Frames to Python with no copy: `FrameStream` (a running frame source)
//! and `Frame` (a lease on one pool slot, exposing the buffer protocol).
//!
//! `numpy.asarray(frame)` shares the slot's memory: H×W×C for packed
//! formats with strides from the row pitch, H×W for gray, the whole frame
//! as bytes for planar formats; read-only. An exported array keeps the slot
//! pinned until the array itself is freed (the `Frame` is its owner, and
//! the `Frame` gives the slot back only when its `with` block has ended and
//! no array is left); touching the frame's pixels after its `with` block
//! raises instead of reading reused memory. `read_into` copies the newest
//! frame into the caller's array and creates no Python object but the seq.

use std::os::raw::c_int;
use std::sync::Mutex;
use std::time::Duration;

use dav2d_frames::{FrameLayout, Lease, RunningSource};
use pyo3::exceptions::{PyBufferError, PyStopIteration};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::error::{Dav2dError, invalid};

/// How long one wait for a frame lasts before signals are checked.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// A running frame source and this reader's place in it.
#[pyclass(name = "FrameStream", module = "dav2d._dav2d")]
pub struct PyFrameStream {
    source: Mutex<RunningSource>,
    pool: dav2d_frames::FramePool,
    /// The seq this reader last took.
    last: Mutex<Option<u64>>,
    url: String,
    /// Threads calling `on_frame` callbacks, and their stop flag.
    callbacks: Mutex<Vec<std::thread::JoinHandle<()>>>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A writable, C-contiguous byte view of a Python object (the buffer
/// protocol), held on the stack and released when dropped (with the GIL
/// held, as it is in `read_into`).
struct WritableView {
    view: ffi::Py_buffer,
}

impl WritableView {
    fn of(object: &Bound<'_, PyAny>) -> PyResult<WritableView> {
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::uninit();
        let flags = ffi::PyBUF_WRITABLE | ffi::PyBUF_FORMAT | ffi::PyBUF_C_CONTIGUOUS;
        // SAFETY: `object` is a live object (the GIL is held through its
        // `Bound`), and `view` is filled by the call when it returns 0.
        if unsafe { ffi::PyObject_GetBuffer(object.as_ptr(), view.as_mut_ptr(), flags) } != 0 {
            // The exporter's error (not writable, not contiguous) is replaced
            // by one that says what to pass.
            drop(PyErr::take(object.py()));
            return Err(invalid(
                "read_into needs a writable, C-contiguous uint8 buffer, e.g. numpy.empty((h, w, c), numpy.uint8)",
            ));
        }
        // SAFETY: filled by the successful call above.
        let view = WritableView {
            view: unsafe { view.assume_init() },
        };
        // SAFETY: `format` is null (plain bytes) or a NUL-terminated string
        // the exporter keeps alive while the view is held.
        let format = match view.view.format.is_null() {
            true => c"B",
            false => unsafe { std::ffi::CStr::from_ptr(view.view.format) },
        };
        if view.view.itemsize != 1 || !matches!(format.to_bytes(), b"B" | b"b" | b"c") {
            return Err(invalid(
                "read_into needs a uint8 buffer, e.g. numpy.empty((h, w, c), numpy.uint8)",
            ));
        }
        Ok(view)
    }

    fn len(&self) -> usize {
        self.view.len as usize
    }

    fn pointer(&self) -> *mut u8 {
        self.view.buf.cast()
    }
}

impl Drop for WritableView {
    fn drop(&mut self) {
        // SAFETY: the view was filled by `PyObject_GetBuffer`, released once.
        unsafe { ffi::PyBuffer_Release(&mut self.view) }
    }
}

/// What a frame's lease is doing.
struct LeaseState {
    lease: Option<Lease>,
    exports: usize,
    released: bool,
}

/// One frame: a lease on its pool slot.
#[pyclass(name = "Frame", module = "dav2d._dav2d")]
pub struct PyFrame {
    state: Mutex<LeaseState>,
    layout: FrameLayout,
    seq: u64,
    ts: i64,
    skipped: u64,
    ndim: c_int,
    shape: [ffi::Py_ssize_t; 3],
    strides: [ffi::Py_ssize_t; 3],
    /// Bytes the exported view spans.
    span: usize,
    pointer: usize,
}

pub(crate) fn frame_of(lease: Lease) -> PyFrame {
    let skipped = lease.skipped();
    let meta = lease.meta().clone();
    let layout = meta.layout;
    let plane = layout.planes[0];
    let (ndim, shape, strides, span) = match layout.format.packed_bytes() {
        Some(1) => (
            2,
            [plane.rows as isize, plane.row_bytes as isize, 0],
            [plane.stride as isize, 1, 0],
            (plane.rows - 1) * plane.stride + plane.row_bytes,
        ),
        Some(channels) => (
            3,
            [
                plane.rows as isize,
                (plane.row_bytes / channels) as isize,
                channels as isize,
            ],
            [plane.stride as isize, channels as isize, 1],
            (plane.rows - 1) * plane.stride + plane.row_bytes,
        ),
        None => (1, [layout.size as isize, 0, 0], [1, 0, 0], layout.size),
    };
    PyFrame {
        pointer: lease.as_ptr() as usize,
        state: Mutex::new(LeaseState {
            lease: Some(lease),
            exports: 0,
            released: false,
        }),
        layout,
        seq: meta.seq,
        ts: meta.ts_ns,
        skipped,
        ndim,
        shape,
        strides,
        span,
    }
}

impl PyFrame {
    /// Another lease on the frame's slot, unless it was released.
    pub(crate) fn lease(&self) -> Option<Lease> {
        let state = self.lock();
        if state.released {
            return None;
        }
        state.lease.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn released_error(&self) -> PyErr {
        Dav2dError::new_err(format!(
            "frame {} was released when its `with` block ended; take what you need inside the block (an array taken there stays valid)",
            self.seq
        ))
    }
}

#[pymethods]
impl PyFrame {
    /// Width in pixels.
    #[getter]
    fn width(&self) -> u32 {
        self.layout.width
    }

    /// Height in pixels.
    #[getter]
    fn height(&self) -> u32 {
        self.layout.height
    }

    /// Row pitch of the first plane, in bytes.
    #[getter]
    fn stride(&self) -> usize {
        self.layout.planes[0].stride
    }

    /// Row pitch of every plane, in bytes.
    #[getter]
    fn strides(&self) -> Vec<usize> {
        self.layout.planes.iter().map(|p| p.stride).collect()
    }

    /// The pixel format, e.g. `"bgra8"`.
    #[getter]
    fn format(&self) -> &'static str {
        self.layout.format.as_str()
    }

    /// Position in the stream, from 0.
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// Timestamp, ns since the epoch.
    #[getter]
    fn ts(&self) -> i64 {
        self.ts
    }

    /// Frames this reader skipped since its previous one.
    #[getter]
    fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Bytes of the frame (all planes).
    #[getter]
    fn nbytes(&self) -> usize {
        self.layout.size
    }

    /// Whether the frame's slot was given back (pixels no longer readable).
    #[getter]
    fn released(&self) -> bool {
        self.lock().released
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.release();
    }

    /// Gives the slot back now (once no array taken from the frame is left).
    fn release(&self) {
        let mut state = self.lock();
        state.released = true;
        if state.exports == 0 {
            state.lease = None;
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Frame(seq={}, {}x{} {}, stride={}, skipped={})",
            self.seq,
            self.layout.width,
            self.layout.height,
            self.layout.format,
            self.layout.planes[0].stride,
            self.skipped
        )
    }

    /// For NumPy, which falls back to this when the buffer protocol is
    /// refused: the clear error of a released frame instead of an object
    /// array; otherwise the same zero-copy view as the buffer protocol.
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__<'py>(
        slf: Bound<'py, Self>,
        dtype: Option<Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        {
            let this = slf.borrow();
            if this.lock().released {
                return Err(this.released_error());
            }
        }
        let py = slf.py();
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((slf.clone(),))?;
        let numpy = py.import("numpy")?;
        let array = numpy.call_method1("asarray", (view,))?;
        let array = match dtype {
            Some(dtype) => array.call_method1("astype", (dtype,))?,
            None => array,
        };
        match copy {
            Some(true) => array.call_method0("copy"),
            _ => Ok(array),
        }
    }

    /// DLPack (`numpy.from_dlpack(frame)`, `torch.from_dlpack(frame)`): a
    /// read-only versioned capsule over the slot, pinning it until the
    /// tensor is freed.
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<Bound<'py, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = stream;
        if dl_device.is_some_and(|device| device != (crate::dlpack::DEVICE_CPU, 0)) {
            return Err(PyBufferError::new_err(
                "frames live in CPU memory (device (1, 0))",
            ));
        }
        if copy == Some(true) {
            return Err(PyBufferError::new_err(
                "a frame is exported without a copy; copy the array you get (numpy.array(frame))",
            ));
        }
        let lease = {
            let state = self.lock();
            match (&state.lease, state.released) {
                (Some(lease), false) => lease.clone(),
                _ => return Err(self.released_error()),
            }
        };
        let versioned = max_version.is_some_and(|(major, _)| major >= 1);
        crate::dlpack::capsule(
            py,
            lease,
            self.ndim as usize,
            self.shape,
            self.strides,
            versioned,
        )
    }

    /// The DLPack device: the CPU.
    fn __dlpack_device__(&self) -> (i32, i32) {
        (crate::dlpack::DEVICE_CPU, 0)
    }

    /// The buffer protocol: the slot itself, read-only.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("a null view"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(
                "frames are read-only: copy one (numpy.array(frame)) or use read_into() to write",
            ));
        }
        let this = slf.borrow();
        let contiguous =
            this.ndim == 1 || this.layout.planes[0].stride == this.layout.planes[0].row_bytes;
        if flags & ffi::PyBUF_STRIDES != ffi::PyBUF_STRIDES && !contiguous {
            return Err(PyBufferError::new_err(
                "this frame's rows are padded (its stride is wider than a row): ask for a strided buffer (numpy.asarray does)",
            ));
        }
        {
            let mut state = this.lock();
            if state.released || state.lease.is_none() {
                return Err(this.released_error());
            }
            state.exports += 1;
        }
        // SAFETY: `view` is a valid, writable Py_buffer given by Python; the
        // pointers stored in it (the slot, and this object's shape and
        // strides arrays) stay valid while `obj` holds this object, and the
        // lease pins the slot until the last export is released.
        unsafe {
            (*view).buf = this.pointer as *mut std::ffi::c_void;
            (*view).len = this.span as ffi::Py_ssize_t;
            (*view).itemsize = 1;
            (*view).readonly = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"B".as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                (*view).ndim = this.ndim;
                (*view).shape = this.shape.as_ptr().cast_mut();
            } else {
                (*view).ndim = 1;
                (*view).shape = std::ptr::null_mut();
            }
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                this.strides.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
            drop(this);
            (*view).obj = slf.into_any().into_ptr();
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut state = self.lock();
        state.exports = state.exports.saturating_sub(1);
        if state.released && state.exports == 0 {
            state.lease = None;
        }
    }
}

impl PyFrameStream {
    /// A stream over a started source.
    pub(crate) fn over(source: RunningSource, url: &str) -> PyFrameStream {
        let pool = source.pool().clone();
        PyFrameStream {
            source: Mutex::new(source),
            pool,
            last: Mutex::new(None),
            url: url.to_string(),
            callbacks: Mutex::new(Vec::new()),
            stopping: std::sync::Arc::default(),
        }
    }

    /// Feeds every new frame through `intake` (the graph's one door) into
    /// stream `name` on a thread of its own, stopped by `close()`.
    pub(crate) fn feed(&self, intake: dav2d_runtime::Intake, name: String) -> PyResult<()> {
        let (pool, stopping) = (self.pool.clone(), std::sync::Arc::clone(&self.stopping));
        let thread = std::thread::Builder::new()
            .name("dav2d-frames-feed".to_string())
            .spawn(move || dav2d_frames::nodes::feed(&pool, &intake, &name, &stopping))
            .map_err(|e| {
                crate::error::Dav2dError::new_err(format!("cannot start the frame feed: {e}"))
            })?;
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thread);
        Ok(())
    }

    /// The next frame newer than this reader's last (any for `newest`),
    /// waiting up to `timeout` seconds (forever for `None`) with the GIL
    /// released; `None` on timeout or at the end of the stream.
    fn take(&self, py: Python<'_>, timeout: Option<f64>, any: bool) -> PyResult<Option<PyFrame>> {
        Ok(self.take_lease(py, timeout, any)?.map(frame_of))
    }

    /// The lease of the next frame (see [`PyFrameStream::take`]), with no
    /// allocation: what `read_into` copies from.
    fn take_lease(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        any: bool,
    ) -> PyResult<Option<Lease>> {
        let deadline = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(invalid(format!(
                    "timeout={t} is not a number of seconds; give 0 or more (0: do not wait), or None to wait"
                )));
            }
            Some(t) => {
                Some(std::time::Instant::now() + Duration::from_secs_f64(t.min(365.0 * 86_400.0)))
            }
            None => None,
        };
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let after = if any { None } else { last };
        loop {
            let wait = deadline.map_or(WAIT_STEP, |d| {
                d.saturating_duration_since(std::time::Instant::now())
                    .min(WAIT_STEP)
            });
            let pool = &self.pool;
            let lease = py.detach(|| {
                crate::error::unwinding("a frame stream", || pool.next_after(after, wait))
            })?;
            if let Some(message) = self.pool.take_cap_notice() {
                crate::error::log(py, "warning", &message);
            }
            if let Some(lease) = lease {
                let lease = lease.read_after(last);
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease.meta().seq);
                return Ok(Some(lease));
            }
            if self.pool.is_closed() {
                // A source that failed says why instead of ending quietly.
                return match self.pool.error() {
                    Some(error) => Err(crate::error::Dav2dError::new_err(format!(
                        "the frame stream {} ended with an error: {error}",
                        self.url
                    ))),
                    None => Ok(None),
                };
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

/// A token as given to `open`/`frames`: an empty one would turn auth off.
pub fn token(token: Option<String>) -> PyResult<Option<String>> {
    match token {
        Some(token) if token.trim().is_empty() => Err(invalid(
            "token='' would turn auth off; leave token out to run without one, or give a secret",
        )),
        other => Ok(other),
    }
}

#[pymethods]
impl PyFrameStream {
    /// Opens and starts the frame source `url`: `"synthetic:1920x1080@240?format=bgra8"`
    /// (also `stride=`, `slots=`, `frames=`), `"y4m:/path/file.y4m"` or `"y4m:-"` (stdin),
    /// `"tcp://127.0.0.1:7071"` (a producer's first line must be `AUTH <token>`
    /// when `token` is given), `"x11::99"`.
    #[staticmethod]
    #[pyo3(signature = (url, *, token = None))]
    fn open(py: Python<'_>, url: &str, token: Option<String>) -> PyResult<PyFrameStream> {
        let options = dav2d_frames::OpenOptions {
            least_slots: 0,
            token: crate::frames::token(token)?,
        };
        let source = py
            .detach(|| {
                crate::error::unwinding("opening a frame source", || {
                    dav2d_frames::open_with(url, &options)
                })
            })?
            .map_err(invalid)?;
        let pool = source.pool().clone();
        Ok(PyFrameStream {
            source: Mutex::new(source),
            pool,
            last: Mutex::new(None),
            url: url.to_string(),
            callbacks: Mutex::new(Vec::new()),
            stopping: std::sync::Arc::default(),
        })
    }

    /// The newest frame (waiting up to `timeout` seconds for the first one);
    /// None if none came in time or the stream ended without any.
    #[pyo3(signature = (timeout = None))]
    fn latest(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        self.take(py, timeout, true)
    }

    /// The next frame newer than the last one this stream handed out.
    #[pyo3(signature = (timeout = None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        self.take(py, timeout, false)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<PyFrame> {
        match self.take(py, None, false)? {
            Some(frame) => Ok(frame),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Copies the newest frame into `array` (any writable buffer of
    /// exactly H×W×C bytes for packed formats, the frame's bytes for planar
    /// ones), row by row past any padding, with no allocation; returns its
    /// seq (compare it to the last one to see whether it is new), or None
    /// when no frame came within `timeout`.
    #[pyo3(signature = (array, timeout = None))]
    fn read_into(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        // The buffer protocol on a view on the stack (pyo3's PyBuffer boxes
        // it): nothing on this path allocates per call.
        let view = WritableView::of(array)?;
        let Some(lease) = self.take_lease(py, timeout, true)? else {
            return Ok(None);
        };
        let layout = &lease.meta().layout;
        let tight: usize = layout.planes.iter().map(|p| p.row_bytes * p.rows).sum();
        if view.len() != tight {
            return Err(invalid(format!(
                "read_into: the array holds {} bytes, a {}x{} {} frame {tight}; give an array of shape {}",
                view.len(),
                layout.width,
                layout.height,
                layout.format,
                match layout.format.packed_bytes() {
                    Some(1) => format!("({}, {})", layout.height, layout.width),
                    Some(c) => format!("({}, {}, {c})", layout.height, layout.width),
                    None => format!("({tight},)"),
                }
            )));
        }
        let data = lease.data();
        let target = view.pointer() as usize;
        let mut at = 0usize;
        py.detach(|| {
            let target = target as *mut u8;
            for plane in &layout.planes {
                for row in 0..plane.rows {
                    let start = plane.offset + row * plane.stride;
                    let source = &data[start..start + plane.row_bytes];
                    // SAFETY: the view is writable, C-contiguous and holds
                    // exactly `tight` bytes (checked above); `at + row_bytes`
                    // never passes `tight`, and it does not overlap the slot.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            source.as_ptr(),
                            target.add(at),
                            plane.row_bytes,
                        );
                    }
                    at += plane.row_bytes;
                }
            }
        });
        Ok(Some(lease.meta().seq))
    }

    /// Where a `tcp://` source listens, as `"host:port"` (None otherwise).
    #[getter]
    fn address(&self) -> Option<String> {
        self.source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .address()
            .map(|a| a.to_string())
    }

    /// Frames the source skipped because every slot was held by readers
    /// (the first time, a warning saying what to do is logged).
    #[getter]
    fn skipped(&self, py: Python<'_>) -> u64 {
        if let Some(message) = self.pool.take_cap_notice() {
            crate::error::log(py, "warning", &message);
        }
        self.pool.skipped()
    }

    /// Frames the source published.
    #[getter]
    fn published(&self) -> u64 {
        self.pool.published()
    }

    /// Slots leased right now (by frames and the arrays taken from them).
    #[getter]
    fn leased(&self) -> u32 {
        self.pool.leased()
    }

    /// Whether the source ended (or was closed).
    #[getter]
    fn closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Calls `callback(frame)` on a thread of its own for every new frame
    /// (frames it is too slow for are skipped; `frame.skipped` counts them);
    /// the frame is a view valid during the call. An exception is logged
    /// with its traceback and the calls go on. Use as a decorator; returns
    /// `callback`. `close()` stops the calls.
    fn on_frame<'py>(&self, callback: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !callback.is_callable() {
            return Err(invalid(
                "on_frame takes a callable: @stream.on_frame def handle(frame): ...",
            ));
        }
        let (pool, stopping) = (self.pool.clone(), std::sync::Arc::clone(&self.stopping));
        let function: Py<PyAny> = callback.clone().unbind();
        let thread = std::thread::Builder::new()
            .name("dav2d-on-frame".to_string())
            .spawn(move || {
                let mut last = None;
                while !stopping.load(std::sync::atomic::Ordering::Acquire) {
                    let Some(lease) = pool.next_after(last, WAIT_STEP) else {
                        if pool.is_closed() {
                            return;
                        }
                        continue;
                    };
                    let lease = lease.read_after(last);
                    let seq = lease.meta().seq;
                    last = Some(seq);
                    Python::attach(|py| {
                        let frame = match Py::new(py, frame_of(lease)) {
                            Ok(frame) => frame,
                            Err(error) => {
                                error.print(py);
                                return;
                            }
                        };
                        if let Err(error) = function.call1(py, (frame.clone_ref(py),)) {
                            let traceback = error
                                .traceback(py)
                                .and_then(|t| t.format().ok())
                                .unwrap_or_default();
                            let message = format!(
                                "on_frame callback failed on frame {seq}:\n{traceback}{error}"
                            );
                            crate::error::log(py, "error", &message);
                        }
                        frame.borrow(py).release();
                    });
                }
            })
            .map_err(|e| {
                crate::error::Dav2dError::new_err(format!("cannot start the on_frame thread: {e}"))
            })?;
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thread);
        Ok(callback)
    }

    /// Stops the source and the `on_frame` calls; frames and arrays
    /// already taken stay valid.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        let (source, callbacks) = (&self.source, &self.callbacks);
        py.detach(|| {
            crate::error::unwinding("closing a frame stream", || {
                source.lock().unwrap_or_else(|p| p.into_inner()).stop();
                let threads =
                    std::mem::take(&mut *callbacks.lock().unwrap_or_else(|p| p.into_inner()));
                for thread in threads {
                    let _ = thread.join();
                }
            })
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "FrameStream({:?}, published={}, skipped={})",
            self.url,
            self.pool.published(),
            self.pool.skipped()
        )
    }
}
