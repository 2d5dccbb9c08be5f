//! How Python's producers enter the engine: `push`, `push_many` (and
//! frame streams) through the engine's intake, the one door every
//! producer takes; and the warning about a node input whose stream was
//! created with a name close to another.

use dav2d_runtime::{IngestReport, Outcome};
use pyo3::prelude::*;

use crate::graph::PyGraph;
use crate::logic::refuse_reentry;

impl PyGraph {
    /// Runs a push through the engine's intake, the one door every
    /// producer takes (counted as component `python` in `/metrics`, held
    /// back while a lossless sink is behind, forwarded when clustering);
    /// anything but an applied batch is an error.
    ///
    /// Without the GIL (`push`), so other Python threads run meanwhile and
    /// the engine's own threads can run Python logic. But while there is
    /// Python logic, every evaluation would take the GIL back, once per
    /// wave: then `try_push` runs first with the GIL kept, which applies
    /// only if nothing has to be waited for (the graph free, no sink
    /// behind, room in the queue). Holding the GIL, it never blocks on the
    /// graph, so no thread that holds the graph can be waiting for the GIL.
    pub(crate) fn through_intake(
        &self,
        py: Python<'_>,
        try_push: impl FnOnce(&dav2d_runtime::Intake) -> Option<Outcome>,
        push: impl FnOnce(&dav2d_runtime::Intake) -> Outcome + Send,
    ) -> PyResult<IngestReport> {
        refuse_reentry()?;
        let intake = self
            .engine()
            .intake()
            .map_err(|e| crate::error::Dav2dError::new_err(e.to_string()))?;
        let kept = match crate::logic::any_python_logic() {
            true => crate::error::unwinding("the engine", || try_push(intake))?,
            false => None,
        };
        let outcome = match kept {
            Some(outcome) => outcome,
            None => py.detach(|| crate::error::unwinding("the engine", || push(intake)))?,
        };
        match outcome {
            Outcome::Applied(report) => Ok(report),
            Outcome::Overloaded => Err(crate::error::Dav2dError::new_err(
                "the cluster did not take the samples; retry",
            )),
            other => Err(crate::error::Dav2dError::new_err(format!(
                "the samples were not applied: {other:?}"
            ))),
        }
    }
}

/// Warns (`UserWarning`, once per stream) about streams a node's input
/// created whose name is close to another name of the graph: likely a
/// misspelling that would otherwise wait silently for samples.
pub(crate) fn warn_guessed(py: Python<'_>, guessed: Vec<(String, Option<String>)>) -> PyResult<()> {
    for (stream, close) in guessed {
        let Some(close) = close else { continue };
        let message = format!(
            "stream '{stream}' was created for a node's input, but nobody declared it or pushed to it; did you mean '{close}'? (declare_stream('{stream}') if the name is right)"
        );
        let message = std::ffi::CString::new(message).unwrap_or_default();
        PyErr::warn(
            py,
            &py.get_type::<pyo3::exceptions::PyUserWarning>(),
            &message,
            2,
        )?;
    }
    Ok(())
}
