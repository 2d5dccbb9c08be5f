//! `logic_batch`: Python node logic that takes a whole wave at once. Each
//! input arrives as one read-only 2-D NumPy array of float64, a row per key
//! and a column per window position (oldest first; a key with fewer samples
//! than the window is padded with NaN on the left), and the logic returns
//! one value per key (a sequence or a 1-D array; None or NaN is no output).
//! One call per wave instead of one per key.

use dav2d_core::{Evaluation, Outcome, Value};
use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// One 2-D array per input of `batch` (`widths[i]` columns for input i),
/// read-only.
fn arrays<'py>(
    py: Python<'py>,
    node: &str,
    batch: &[Evaluation],
    widths: &[usize],
) -> PyResult<Bound<'py, PyTuple>> {
    let mut arrays = Vec::with_capacity(widths.len());
    for (input, &width) in widths.iter().enumerate() {
        let mut data = vec![f64::NAN; batch.len() * width];
        for (row, evaluation) in batch.iter().enumerate() {
            let Some(window) = evaluation.inputs.get(input) else {
                continue;
            };
            if !window.is_all_float() {
                return Err(crate::error::invalid_type(format!(
                    "node '{node}': logic_batch reads numbers, and input {input} of key '{}' holds other values",
                    evaluation.key
                )));
            }
            let numbers = window.numbers();
            let numbers = &numbers[numbers.len().saturating_sub(width)..];
            let end = (row + 1) * width;
            data[end - numbers.len()..end].copy_from_slice(numbers);
        }
        let array = data.into_pyarray(py).reshape([batch.len(), width])?;
        let readonly = PyDict::new(py);
        readonly.set_item("write", false)?;
        array.call_method("setflags", (), Some(&readonly))?;
        arrays.push(array.into_any());
    }
    PyTuple::new(py, arrays)
}

/// Calls `callable` once with the wave's windows and sets every item's
/// outcome from the values it returns; an error is the caller's to set on
/// every key.
pub fn evaluate(
    py: Python<'_>,
    callable: &Bound<'_, PyAny>,
    node: &str,
    batch: &mut [Evaluation],
    widths: &[usize],
) -> PyResult<()> {
    let result = callable.call1(arrays(py, node, batch, widths)?)?;
    let outcome = |value: Option<f64>| match value {
        Some(x) if !x.is_nan() => Outcome::Output(Value::Float(x)),
        _ => Outcome::Skip,
    };
    let wrong_length = |got: usize| {
        crate::error::invalid_type(format!(
            "node '{node}': logic_batch returned {got} values for {} keys; return one per row",
            batch.len()
        ))
    };
    if let Ok(array) = result.extract::<PyReadonlyArray1<'_, f64>>() {
        let values = array.as_slice()?;
        if values.len() != batch.len() {
            return Err(wrong_length(values.len()));
        }
        for (item, &x) in batch.iter_mut().zip(values) {
            item.outcome = outcome(Some(x));
        }
        return Ok(());
    }
    let values: Vec<Option<f64>> = result.extract().map_err(|_| {
        crate::error::invalid_type(format!(
            "node '{node}': logic_batch must return one number (or None) per key, as a sequence or a 1-D array"
        ))
    })?;
    if values.len() != batch.len() {
        return Err(wrong_length(values.len()));
    }
    for (item, x) in batch.iter_mut().zip(values) {
        item.outcome = outcome(x);
    }
    Ok(())
}
