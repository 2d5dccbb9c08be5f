//! Conversions between Python objects and engine values.

use std::sync::Arc;

use dav2d_core::{Scalar, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString};

/// A Python object as a sample value, or a message saying what is accepted.
pub fn to_value(object: &Bound<'_, PyAny>) -> Result<Value, String> {
    if let Ok(v) = object.cast::<PyFloat>() {
        return Ok(Value::Float(v.value()));
    }
    if object.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(object.is_truthy().unwrap_or(false)));
    }
    if object.is_instance_of::<PyInt>() {
        return object
            .extract::<i64>()
            .map(Value::Int)
            .map_err(|_| "an integer outside the 64-bit range".to_string());
    }
    if let Ok(s) = object.cast::<PyString>() {
        return s
            .to_str()
            .map(|s| Value::Str(Arc::from(s)))
            .map_err(|e| e.to_string());
    }
    if let Ok(b) = object.cast::<PyBytes>() {
        return Ok(Value::Bytes(Arc::from(b.as_bytes())));
    }
    if let Ok(frame) = object.cast::<crate::frames::PyFrame>() {
        // A lease of its own: the graph keeps the slot pinned while it holds the frame.
        return frame
            .borrow()
            .lease()
            .map(|lease| Value::Frame(dav2d_core::FrameRef(Arc::new(lease))))
            .ok_or_else(|| "a frame released after its with block".to_string());
    }
    if let Ok(d) = object.cast::<PyDict>() {
        let mut record = Vec::with_capacity(d.len());
        for (name, field) in d.iter() {
            let name: String = name
                .extract()
                .map_err(|_| "a dict whose keys are not all strings".to_string())?;
            let scalar = match to_value(&field) {
                Ok(Value::Float(v)) => Scalar::Float(v),
                Ok(Value::Int(v)) => Scalar::Int(v),
                Ok(Value::Bool(v)) => Scalar::Bool(v),
                Ok(Value::Str(v)) => Scalar::Str(v),
                _ => {
                    return Err(format!(
                        "a dict whose field '{name}' is not a number, bool or string"
                    ));
                }
            };
            record.push((Arc::from(name.as_str()), scalar));
        }
        return Ok(Value::Record(Arc::new(record)));
    }
    // NumPy scalars and other number-likes.
    if object.hasattr("__index__").unwrap_or(false)
        && let Ok(v) = object.extract::<i64>()
    {
        return Ok(Value::Int(v));
    }
    if let Ok(v) = object.extract::<f64>() {
        return Ok(Value::Float(v));
    }
    Err(format!(
        "a {}",
        object
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "value".to_string())
    ))
}

/// A Python object as a sample value, or a `TypeError`.
pub fn to_value_or_type_error(object: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value(object).map_err(|got| {
        crate::error::invalid_type(format!(
            "dav2d samples are numbers, bools, strings, bytes or flat dicts of those; got {got}"
        ))
    })
}

/// An engine value as a Python object.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Float(v) => PyFloat::new(py, *v).into_any(),
        Value::Int(v) => v.into_pyobject(py)?.into_any(),
        Value::Bool(v) => PyBool::new(py, *v).to_owned().into_any(),
        Value::Str(v) => PyString::new(py, v).into_any(),
        Value::Bytes(v) => PyBytes::new(py, v).into_any(),
        Value::Frame(frame) => {
            let lease = match frame.0.as_any().downcast_ref::<dav2d_frames::Lease>() {
                // A lease of its own: the slot stays pinned while Python holds it.
                Some(lease) => lease.clone(),
                // A frame read back from the store: a copy in a pool of its own.
                None => dav2d_frames::Lease::copied_from(&*frame.0).map_err(|message| {
                    crate::error::Dav2dError::new_err(format!("a stored frame: {message}"))
                })?,
            };
            Bound::new(py, crate::frames::frame_of(lease))?.into_any()
        }
        Value::Record(fields) => {
            let dict = PyDict::new(py);
            for (name, scalar) in fields.iter() {
                let field = match scalar {
                    Scalar::Float(v) => PyFloat::new(py, *v).into_any(),
                    Scalar::Int(v) => v.into_pyobject(py)?.into_any(),
                    Scalar::Bool(v) => PyBool::new(py, *v).to_owned().into_any(),
                    Scalar::Str(v) => PyString::new(py, v).into_any(),
                };
                dict.set_item(&**name, field)?;
            }
            dict.into_any()
        }
    })
}
