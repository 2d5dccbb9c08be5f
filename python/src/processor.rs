//! `dav2d.Dav2dProcessor`: the processor of `dav2d-infer` for Python. Inputs
//! are NumPy arrays (or anything NumPy reads: buffers, DLPack tensors) and
//! dav2d frames, borrowed without a copy; masks come back as NumPy arrays
//! that own the processor's output (no copy either). The GIL is released
//! while the model runs.

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use dav2d_infer::{Image2d, Input, Output, Pixels, Processor, ProcessorConfig, ProcessorError};

use crate::error::{Dav2dError, invalid};

/// The model of a YAML file, and the pipeline around it.
#[pyclass(name = "Dav2dProcessor", module = "dav2d")]
pub struct PyProcessor {
    inner: Mutex<Processor>,
    /// The last run's (preprocess, inference, postprocess) seconds.
    timings: Mutex<[f64; 3]>,
}

/// One argument's pixels, kept borrowed while the model runs.
enum Held<'py> {
    U8(PyReadonlyArrayDyn<'py, u8>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    Frame(dav2d_frames::Lease),
}

/// A processor error as a Python exception (bad input: `InvalidArgument`).
pub(crate) fn error(e: ProcessorError) -> PyErr {
    match e {
        ProcessorError::Input(message) => invalid(message),
        other => Dav2dError::new_err(other.to_string()),
    }
}

/// Logs the one warning of a `use_gpu: true` that fell back to the CPU
/// through Python's `logging` (the "dav2d" logger).
pub(crate) fn warn_fallback(py: Python<'_>, processor: &Processor) {
    if let Some(message) = processor.gpu_fallback() {
        crate::error::log(py, "warning", message);
    }
}

/// Tells the library search where the installed `onnxruntime` package is.
pub(crate) fn hint_installed_package(py: Python<'_>) {
    let found = (|| -> PyResult<Option<PathBuf>> {
        let spec = py
            .import("importlib.util")?
            .call_method1("find_spec", ("onnxruntime",))?;
        if spec.is_none() {
            return Ok(None);
        }
        let locations = spec.getattr("submodule_search_locations")?;
        let first: String = locations
            .try_iter()?
            .next()
            .transpose()?
            .map_or(Ok(String::new()), |l| l.extract())?;
        Ok(Some(PathBuf::from(first).join("capi")))
    })();
    if let Ok(Some(dir)) = found {
        dav2d_infer::library::add_hint(dir);
    }
}

/// An argument as NumPy sees it: itself, `numpy.from_dlpack` of a DLPack
/// object, or `numpy.asarray` of anything else (buffers); frames as leases.
fn hold<'py>(item: &Bound<'py, PyAny>, argument: &str) -> PyResult<Held<'py>> {
    if let Ok(frame) = item.cast::<crate::frames::PyFrame>() {
        let lease = frame.borrow().lease().ok_or_else(|| {
            invalid(format!(
                "{argument}: this frame was released (its with block ended); take the frame again"
            ))
        })?;
        return Ok(Held::Frame(lease));
    }
    let py = item.py();
    let numpy = py.import("numpy")?;
    let array =
        if item.hasattr("__array_interface__")? || item.is_instance(&numpy.getattr("ndarray")?)? {
            item.clone()
        } else if item.hasattr("__dlpack__")? {
            numpy.call_method1("from_dlpack", (item,))?
        } else {
            numpy.call_method1("asarray", (item,))?
        };
    // A non-contiguous view is made contiguous once (NumPy's own copy).
    let array = numpy.call_method1("ascontiguousarray", (array,))?;
    if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'py, u8>>() {
        return Ok(Held::U8(a));
    }
    if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        return Ok(Held::F32(a));
    }
    let dtype = array.getattr("dtype")?.str()?.to_string();
    Err(invalid(format!(
        "{argument}: dtype {dtype} is not taken; give uint8 or float32 (e.g. array.astype(numpy.float32))"
    )))
}

/// The inputs one held argument gives (an NCHW tensor gives N).
fn inputs<'a>(held: &'a Held<'_>, argument: &str) -> PyResult<Vec<Input<'a>>> {
    let image = |pixels: Pixels<'a>, shape: &[usize]| -> PyResult<Vec<Input<'a>>> {
        let (h, w, c) = match shape {
            [h, w] => (*h, *w, 1),
            [h, w, c] => (*h, *w, *c),
            other => {
                return Err(invalid(format!(
                    "{argument}: shape {other:?} is not HxW, HxWxC or NxCxHxW (float32)"
                )));
            }
        };
        Ok(vec![Input::Image(Image2d {
            pixels,
            height: h,
            width: w,
            channels: c,
            row_stride: w * c,
        })])
    };
    let contiguous = |e| invalid(format!("{argument}: {e}"));
    match held {
        Held::U8(a) => {
            if a.ndim() == 4 {
                return Err(invalid(format!(
                    "{argument}: an NxCxHxW batch is float32; a uint8 batch is a list of HxWxC images"
                )));
            }
            image(Pixels::U8(a.as_slice().map_err(contiguous)?), a.shape())
        }
        Held::F32(a) => match a.shape() {
            [n, c, h, w] => {
                let values = a.as_slice().map_err(contiguous)?;
                let item = c * h * w;
                Ok((0..*n)
                    .map(|i| Input::Planar {
                        values: &values[i * item..(i + 1) * item],
                        channels: *c,
                        height: *h,
                        width: *w,
                    })
                    .collect())
            }
            shape => image(Pixels::F32(a.as_slice().map_err(contiguous)?), shape),
        },
        Held::Frame(lease) => {
            let layout = &lease.meta().layout;
            let channels = layout.format.packed_bytes().ok_or_else(|| {
                invalid(format!(
                    "{argument}: a {} frame is planar; give a packed frame (gray8, rgb8, rgba8, ...) or its numpy.asarray",
                    layout.format
                ))
            })?;
            let plane = layout.planes[0];
            Ok(vec![Input::Image(Image2d {
                pixels: Pixels::U8(lease.data()),
                height: plane.rows,
                width: layout.width as usize,
                channels,
                row_stride: plane.stride,
            })])
        }
    }
}

/// NumPy arrays of an output: one per item, or one stacked array when the
/// run was a batch of items of one size.
fn arrays<'py>(
    py: Python<'py>,
    output: Output,
    batch: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let shape_of = |(k, h, w): (usize, usize, usize)| -> Vec<usize> {
        if k == 1 { vec![h, w] } else { vec![k, h, w] }
    };
    let same = output.sizes.windows(2).all(|p| p[0] == p[1]);
    let Output {
        sizes,
        masks,
        probabilities,
        ..
    } = output;
    if !batch || same {
        let mut shape = sizes.first().map(|s| shape_of(*s)).unwrap_or_default();
        if batch {
            shape.insert(0, sizes.len());
        }
        let mask = masks.into_pyarray(py).reshape(shape.as_slice())?.into_any();
        let probabilities = match probabilities {
            Some(p) => Some(p.into_pyarray(py).reshape(shape.as_slice())?.into_any()),
            None => None,
        };
        return Ok((mask, probabilities));
    }
    let (mask_list, probability_list) = (PyList::empty(py), PyList::empty(py));
    let mut at = 0;
    for size in sizes {
        let n = size.0 * size.1 * size.2;
        let shape = shape_of(size);
        mask_list.append(
            masks[at..at + n]
                .to_vec()
                .into_pyarray(py)
                .reshape(shape.as_slice())?,
        )?;
        if let Some(p) = &probabilities {
            probability_list.append(
                p[at..at + n]
                    .to_vec()
                    .into_pyarray(py)
                    .reshape(shape.as_slice())?,
            )?;
        }
        at += n;
    }
    Ok((
        mask_list.into_any(),
        probabilities.map(|_| probability_list.into_any()),
    ))
}

impl PyProcessor {
    /// Holds `x` (one input, a list of them, or an NCHW batch); whether it is a batch.
    fn hold_all<'py>(x: &Bound<'py, PyAny>) -> PyResult<(Vec<Held<'py>>, bool)> {
        if let Ok(list) = x.cast::<PyList>() {
            let held = list
                .iter()
                .enumerate()
                .map(|(i, item)| hold(&item, &format!("x[{i}]")))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok((held, true));
        }
        if let Ok(tuple) = x.cast::<PyTuple>() {
            let held = tuple
                .iter()
                .enumerate()
                .map(|(i, item)| hold(&item, &format!("x[{i}]")))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok((held, true));
        }
        let held = hold(x, "x")?;
        let batch = matches!(&held, Held::F32(a) if a.ndim() == 4);
        Ok((vec![held], batch))
    }
}

#[pymethods]
impl PyProcessor {
    /// Loads the model that the YAML file `config_path` describes: the
    /// notes' keys (`model_path`, `processing: {threshold, resolution,
    /// use_gpu, ...}`) at its top level or in a `processor:` section.
    #[new]
    #[pyo3(signature = (config_path))]
    fn new(py: Python<'_>, config_path: PathBuf) -> PyResult<PyProcessor> {
        hint_installed_package(py);
        let config =
            ProcessorConfig::load(&config_path).map_err(crate::error::ConfigError::new_err)?;
        let processor = py
            .detach(|| crate::error::unwinding("loading the model", || Processor::new(config)))?
            .map_err(error)?;
        warn_fallback(py, &processor);
        Ok(PyProcessor {
            inner: Mutex::new(processor),
            timings: Mutex::new([0.0; 3]),
        })
    }

    /// Runs the model on `x`: an HxW or HxWxC `uint8`/`float32` array, an
    /// NxCxHxW `float32` batch, a `dav2d.Frame`, anything NumPy reads
    /// (buffers, DLPack tensors), or a list of those. Returns the 0/1
    /// `uint8` mask (HxW, or KxHxW for a K-channel model; a batch stacks
    /// them, or lists them when their sizes differ), and with
    /// `probabilities=True` a tuple `(mask, probabilities)`.
    ///
    /// `threshold=[0.3, 0.45, 0.6]` runs the model once and returns a list
    /// of masks, one per threshold (each probability above it is 1),
    /// instead of the one at `processing.threshold`.
    #[pyo3(signature = (x, *, probabilities = false, threshold = None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        probabilities: bool,
        threshold: Option<Vec<f64>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(cuts) = threshold {
            if let Some(bad) = cuts.iter().find(|t| !(**t > 0.0 && **t < 1.0)) {
                return Err(crate::error::invalid(format!(
                    "threshold={bad}: each threshold is a probability between 0 and 1 (exclusive)"
                )));
            }
            if probabilities {
                return Err(crate::error::invalid(
                    "give threshold=[...] or probabilities=True, not both".to_string(),
                ));
            }
            let both = self.run(py, x, true, None)?;
            let p = both.get_item(1)?;
            let mask_of = |p: &Bound<'py, PyAny>, cut: f64| -> PyResult<Bound<'py, PyAny>> {
                p.call_method1("__gt__", (cut,))?
                    .call_method1("astype", ("uint8",))
            };
            let mut masks = Vec::with_capacity(cuts.len());
            for cut in cuts {
                let mask = match p.cast::<pyo3::types::PyList>() {
                    Ok(list) => {
                        let items: Vec<Bound<'py, PyAny>> = (list.iter())
                            .map(|item| mask_of(&item, cut))
                            .collect::<PyResult<_>>()?;
                        pyo3::types::PyList::new(py, items)?.into_any()
                    }
                    Err(_) => mask_of(&p, cut)?,
                };
                masks.push(mask);
            }
            return Ok(pyo3::types::PyList::new(py, masks)?.into_any());
        }
        let (held, batch) = Self::hold_all(x)?;
        let mut all = Vec::new();
        for (i, h) in held.iter().enumerate() {
            let argument = if held.len() > 1 {
                format!("x[{i}]")
            } else {
                "x".to_string()
            };
            all.extend(inputs(h, &argument)?);
        }
        let processor = &self.inner;
        let output = py
            .detach(|| {
                crate::error::unwinding("running the model", || {
                    let mut processor = processor.lock().unwrap_or_else(|p| p.into_inner());
                    processor.run(&all, probabilities)
                })
            })?
            .map_err(error)?;
        *self.timings.lock().unwrap_or_else(|p| p.into_inner()) = [
            output.preprocess.as_secs_f64(),
            output.inference.as_secs_f64(),
            output.postprocess.as_secs_f64(),
        ];
        let (mask, p) = arrays(py, output, batch)?;
        match p {
            Some(p) => Ok(PyTuple::new(py, [mask, p])?.into_any()),
            None => Ok(mask),
        }
    }

    /// The model's input tensor for `x` (as `run` would make it): NxCxHxW
    /// `float32`, resized, scaled and normalised.
    fn preprocess<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (held, _) = Self::hold_all(x)?;
        let mut all = Vec::new();
        for h in &held {
            all.extend(inputs(h, "x")?);
        }
        let mut processor = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (shape, values) = processor.preprocess(&all).map_err(error)?;
        let values = values.to_vec();
        Ok(values
            .into_pyarray(py)
            .reshape(shape.as_slice())?
            .into_any())
    }

    /// The last `run`'s seconds spent in `preprocess`, `inference` and
    /// `postprocess`.
    #[getter]
    fn last_timings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let [pre, infer, post] = *self.timings.lock().unwrap_or_else(|p| p.into_inner());
        let d = PyDict::new(py);
        d.set_item("preprocess", pre)?;
        d.set_item("inference", infer)?;
        d.set_item("postprocess", post)?;
        Ok(d)
    }

    /// `cpu` or `cuda`: where the model runs.
    #[getter]
    fn device(&self) -> &'static str {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .device()
    }

    /// Model outputs that held NaN so far (their masks are empty there).
    #[getter]
    fn nan_outputs(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .nan_outputs()
    }

    /// The `libonnxruntime` it runs on.
    #[getter]
    fn library(&self) -> String {
        let processor = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        processor.library().display().to_string()
    }

    /// The resolved settings, as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let processor = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let c = processor.config();
        let d = PyDict::new(py);
        d.set_item("model_path", c.model_path.display().to_string())?;
        d.set_item("threshold", c.threshold)?;
        d.set_item("resolution", [c.resolution.0, c.resolution.1])?;
        d.set_item("threads", c.threads)?;
        d.set_item("max_batch", c.max_batch)?;
        d.set_item("memory_budget", c.memory_budget)?;
        let (activation, why) = processor.activation();
        d.set_item("activation", activation.as_str())?;
        d.set_item("activation_reason", why)?;
        d.set_item("output_size", format!("{:?}", c.output_size).to_lowercase())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let processor = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        format!(
            "Dav2dProcessor(model_path={:?}, device={:?})",
            processor.config().model_path.display().to_string(),
            processor.device()
        )
    }
}
