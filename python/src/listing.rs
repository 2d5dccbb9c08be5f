//! What Python reads about a graph as dicts and lists: `stats()` (the
//! counters, per node too) and `nodes()` (each node in evaluation order),
//! from the read model the graph publishes.

use dav2d_core::ReadModel;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// `Graph.stats()`.
pub(crate) fn stats<'py>(py: Python<'py>, reads: &ReadModel) -> PyResult<Bound<'py, PyDict>> {
    let (stats, nodes) = (reads.stats(), reads.nodes());
    let d = PyDict::new(py);
    d.set_item("samples_in", stats.samples_in)?;
    d.set_item("accepted", stats.accepted)?;
    d.set_item("rejected", stats.rejected)?;
    let reasons = PyDict::new(py);
    for (reason, count) in stats.rejected_by_reason {
        reasons.set_item(reason.as_str(), count)?;
    }
    d.set_item("rejected_by_reason", reasons)?;
    d.set_item("evaluations", stats.evaluations)?;
    d.set_item("conflated", stats.conflated)?;
    d.set_item("errors", stats.errors)?;
    d.set_item("cutoffs", stats.cutoffs)?;
    d.set_item("waves", stats.waves)?;
    d.set_item("transitions", stats.transitions)?;
    d.set_item("late", stats.late)?;
    d.set_item("streams", stats.streams)?;
    d.set_item("keys", stats.keys)?;
    let per_node = PyDict::new(py);
    for node in nodes {
        let n = PyDict::new(py);
        n.set_item("evaluations", node.stats.evaluations)?;
        n.set_item("conflated", node.stats.conflated)?;
        n.set_item("errors", node.stats.errors)?;
        n.set_item("cutoffs", node.stats.cutoffs)?;
        n.set_item("waiting", node.stats.waiting)?;
        n.set_item("batches", node.stats.batches)?;
        n.set_item("window_overflow", node.stats.window_overflow)?;
        n.set_item("failing_keys", node.failing_keys)?;
        n.set_item("offload", node.offload)?;
        n.set_item("lag_s", node.lag_ns as f64 / 1e9)?;
        per_node.set_item(node.name, n)?;
    }
    d.set_item("nodes", per_node)?;
    Ok(d)
}

/// `Graph.nodes()`.
pub(crate) fn nodes<'py>(py: Python<'py>, reads: &ReadModel) -> PyResult<Bound<'py, PyList>> {
    let nodes = reads.nodes();
    let list = PyList::empty(py);
    for node in nodes {
        let d = PyDict::new(py);
        d.set_item("name", node.name)?;
        d.set_item("kind", node.kind.as_str())?;
        d.set_item("logic", node.logic)?;
        // (name, window, policy, time window in seconds or None).
        let inputs: Vec<(String, usize, &str, Option<f64>)> = node
            .inputs
            .into_iter()
            .map(|i| {
                let span = i.span_ns.map(|ns| ns as f64 / 1e9);
                (i.name, i.window, i.policy.as_str(), span)
            })
            .collect();
        d.set_item("inputs", inputs)?;
        d.set_item("priority", node.priority)?;
        d.set_item("deadband", node.deadband)?;
        d.set_item("keys", node.keys)?;
        list.append(d)?;
    }
    Ok(list)
}
