//! The graph's settings as Python gives them: an edge policy's name, a
//! number of seconds, the `limits=` dict; each refused with what to write.

use dav2d_core::EdgePolicy;
use pyo3::prelude::*;

/// `'latest'` or `'all'`.
pub(crate) fn policy(text: &str) -> PyResult<EdgePolicy> {
    EdgePolicy::from_name(text).map_err(crate::error::invalid)
}

/// Seconds from 0 to 100 years, in ns.
pub(crate) fn seconds_to_ns(seconds: f64, what: &str) -> PyResult<i64> {
    let most = dav2d_runtime::MAX_DURATION.as_secs_f64();
    if !(seconds >= 0.0 && seconds <= most) {
        return Err(crate::error::invalid(format!(
            "{what} must be a number of seconds from 0 to {most} (100 years), got {seconds}"
        )));
    }
    Ok((seconds * 1e9).round() as i64)
}

/// The limits of `Graph(limits=...)`, read by the config's names and
/// bounds (`dav2d_runtime::set_limit`): ints, or sizes such as `"64KiB"`.
pub(crate) fn read_limits(
    given: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<dav2d_core::Limits> {
    let mut limits = dav2d_core::Limits::default();
    for (name, value) in given.into_iter().flat_map(|dict| dict.iter()) {
        let name: String = name
            .extract()
            .map_err(|_| crate::error::invalid("limits: each name is a string"))?;
        let text = if let Ok(text) = value.extract::<String>() {
            text
        } else if let Ok(number) = value.extract::<i128>() {
            number.to_string()
        } else {
            return Err(crate::error::invalid(format!(
                "limits['{name}']: give a whole number or a size such as '64KiB'"
            )));
        };
        dav2d_runtime::set_limit(&mut limits, &name, &text)
            .map_err(|message| crate::error::invalid(format!("limits['{name}']: {message}")))?;
    }
    Ok(limits)
}
