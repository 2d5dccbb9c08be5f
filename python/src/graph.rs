//! `Graph`, `Sample`, `Update` and `Subscription`: thin wrappers that convert
//! arguments, release the GIL around engine work and map errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dav2d_core::{
    Bounds, Builtin, Clock, ConstraintSpec, Direction, Graph, GraphOptions, InputSpec, Keys,
    LogicSpec, ManualClock, NodeSpec, ReadModel, SharedGraph, SubscriptionMode, SystemClock,
    ValueType,
};
use dav2d_runtime::{Admission, Config, Engine, NativeSample, Workers};
use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{to_python, to_value_or_type_error};
use crate::error::{NodeError, config_error, graph_error};
use crate::logic::refuse_reentry;
use crate::options::{policy, read_limits, seconds_to_ns};
use crate::samples::{PySubscription, sample};
use crate::window::PyWindow;

/// A dataflow graph. Every call releases the GIL while the engine works.
#[pyclass(module = "dav2d._dav2d", name = "Graph")]
pub struct PyGraph {
    graph: SharedGraph,
    manual_clock: Option<ManualClock>,
    /// The graph's one set of services (timer, workers, metrics, the door
    /// for pushes), shared with every runtime `serve()`/`persist()` start.
    engine: Engine,
    offload_workers: usize,
    /// `auto_create_streams` as given: `None` (the default) creates streams
    /// until the first declared one, `Some(true)` is the permissive mode.
    auto_create_streams: Option<bool>,
    /// Nodes registered (with `defer`) before their inputs existed, until
    /// `resolve`.
    waiting: std::sync::Mutex<Vec<NodeSpec>>,
}

impl PyGraph {
    /// The graph's engine, which every runtime `serve()` and `persist()`
    /// start runs on: one health board (so `/healthz` of `serve()` sees the
    /// store of `persist()`), one metrics registry, one timer, one set of
    /// workers.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What the graph published after its last wave: read without the
    /// engine lock (still refused inside node logic, like every call).
    fn reads(&self) -> PyResult<&ReadModel> {
        refuse_reentry()?;
        Ok(self.graph.reads())
    }

    fn with_graph<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Graph) -> R + Send,
    ) -> PyResult<R> {
        refuse_reentry()?;
        let graph = &self.graph;
        py.detach(|| crate::error::unwinding("the engine", || f(&mut graph.lock())))
    }

    /// Registers `spec`; with `defer` (the Python graph has not run yet),
    /// one whose inputs do not exist yet waits for `resolve`, checked for
    /// every other mistake now.
    fn register(&self, py: Python<'_>, spec: NodeSpec, defer: bool) -> PyResult<()> {
        let waiting = &self.waiting;
        self.with_graph(py, |graph| {
            if defer {
                graph.check(&spec)?;
                let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
                if waiting.iter().any(|other| other.name == spec.name) {
                    return Err(dav2d_core::GraphError::DuplicateName {
                        name: spec.name,
                        taken_by: "a node waiting for its inputs".to_string(),
                    });
                }
                if !graph.inputs_exist(&spec) {
                    waiting.push(spec);
                    return Ok(Vec::new());
                }
            }
            graph.register(spec)?;
            graph.run_wave();
            Ok(graph.take_guessed_inputs())
        })?
        .map_err(graph_error)
        .and_then(|guessed| crate::door::warn_guessed(py, guessed))
    }
}

#[pymethods]
impl PyGraph {
    /// A new, empty graph.
    ///
    /// `auto_create_streams`: unknown stream names in pushes and node inputs
    /// create streams (`True`), are errors (`False`), or, by default
    /// (`None`), create streams until the first `declare_stream`. `keep`: samples every
    /// (stream, key) keeps at least (default: the engine's). `manual_clock`:
    /// time only moves with `advance_clock()`, for deterministic tests.
    /// `offload_workers`: threads running offloaded nodes (default: one
    /// per core, at most 4), started with the first offloaded node.
    /// `limits`: what clients can make the graph hold, by the names of a
    /// config's `limits:` section (`{"keys": 10_000, "value_size": "64KiB"}`).
    #[new]
    #[pyo3(signature = (*, auto_create_streams = None, keep = None, manual_clock = false, offload_workers = None, limits = None))]
    fn new(
        auto_create_streams: Option<bool>,
        keep: Option<usize>,
        manual_clock: bool,
        offload_workers: Option<usize>,
        limits: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Self> {
        if let Some(keep) = keep
            && keep > dav2d_core::MAX_WINDOW
        {
            return Err(crate::error::invalid(format!(
                "keep={keep} is more than the {} samples a key can keep",
                dav2d_core::MAX_WINDOW
            )));
        }
        let offload_workers = match offload_workers {
            None => Workers::default_count(),
            Some(n) if (1..=Workers::MAX).contains(&n) => n,
            Some(n) => {
                return Err(crate::error::invalid(format!(
                    "offload_workers={n} is out of range; give 1 to {}",
                    Workers::MAX
                )));
            }
        };
        let defaults = GraphOptions::default();
        let options = GraphOptions {
            auto_create_streams: auto_create_streams.unwrap_or(true),
            default_keep: keep.unwrap_or(defaults.default_keep).max(1),
            limits: read_limits(limits)?,
        };
        let manual = manual_clock.then(|| ManualClock::new(SystemClock.now_ns()));
        let clock: Arc<dyn Clock> = match &manual {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(SystemClock),
        };
        let graph = SharedGraph::new(Graph::new(options, clock));
        // Python's latest() and stats() read what the graph publishes.
        graph.reads();
        Ok(Self {
            engine: Engine::new(graph.clone()),
            graph,
            manual_clock: manual,
            offload_workers,
            auto_create_streams,
            waiting: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Declares an input stream with validity bounds and, optionally, the
    /// type of values it takes.
    #[pyo3(signature = (name, *, min = None, max = None, finite_only = false, keep = None, value_type = None, late = None, allowed_lateness = None))]
    #[allow(clippy::too_many_arguments)] // Python keywords, one per setting.
    fn declare_stream(
        &self,
        py: Python<'_>,
        name: String,
        min: Option<f64>,
        max: Option<f64>,
        finite_only: bool,
        keep: Option<usize>,
        value_type: Option<String>,
        late: Option<String>,
        allowed_lateness: Option<f64>,
    ) -> PyResult<()> {
        let late = match (late.as_deref(), allowed_lateness) {
            (None, None) => None,
            (None | Some("drop"), Some(_)) => {
                return Err(crate::error::invalid(
                    "allowed_lateness needs late='insert' (late samples are dropped otherwise)",
                ));
            }
            (Some("drop"), None) => Some(dav2d_core::LatePolicy::Drop),
            (Some("insert"), allowed) => {
                let seconds = allowed.unwrap_or(0.0);
                if !(seconds.is_finite() && seconds >= 0.0) {
                    return Err(crate::error::invalid(format!(
                        "allowed_lateness={seconds} is not a duration; give seconds >= 0"
                    )));
                }
                Some(dav2d_core::LatePolicy::Insert {
                    allowed_ns: (seconds * 1e9).min(i64::MAX as f64) as i64,
                })
            }
            (Some(other), _) => {
                return Err(crate::error::invalid(format!(
                    "late='{other}' is not a late policy; use 'drop' or 'insert'"
                )));
            }
        };
        let bounds = Bounds {
            min,
            max,
            finite_only,
        };
        let value_type = match value_type.as_deref() {
            None => None,
            Some(text) => Some(ValueType::from_name(text).ok_or_else(|| {
                let known: Vec<&str> = ValueType::ALL.iter().map(|t| t.as_str()).collect();
                crate::error::invalid(format!(
                    "type='{text}' is not a value type; use one of: {}",
                    known.join(", ")
                ))
            })?),
        };
        let strict = self.auto_create_streams.is_none();
        self.with_graph(py, |graph| {
            graph.declare_stream(&name, bounds, keep)?;
            if strict {
                // Declared streams make a misspelt name an error from now on.
                graph.set_auto_create_streams(false);
            }
            if let Some(late) = late {
                graph.set_late_policy(&name, late)?;
            }
            match value_type {
                Some(value_type) => graph.declare_type(&name, value_type),
                None => Ok(()),
            }
        })?
        .map_err(graph_error)
    }

    /// Registers a node. `inputs` is a list of `(name, window, span_ns,
    /// policy)`; give `logic` (a callable) or `builtin` (a kind) with
    /// `params`. `window_given`: a built-in's window was written (a count or
    /// a duration), so it is the default of a window length `n`, as in YAML.
    /// `defer`: one whose inputs do not exist yet waits for `resolve`.
    #[pyo3(signature = (name, inputs, *, logic = None, builtin = None, params = None, priority = 0, deadband = None, returns = "number", offload = false, window_given = false, defer = false, batch = false))]
    #[allow(clippy::too_many_arguments)]
    fn register_node(
        &self,
        py: Python<'_>,
        name: String,
        inputs: Vec<(String, usize, Option<i64>, String)>,
        logic: Option<Py<PyAny>>,
        builtin: Option<String>,
        params: Option<HashMap<String, f64>>,
        priority: i32,
        deadband: Option<f64>,
        returns: &str,
        offload: bool,
        window_given: bool,
        defer: bool,
        batch: bool,
    ) -> PyResult<()> {
        let inputs = inputs
            .into_iter()
            .map(|(name, window, span_ns, p)| {
                Ok(InputSpec {
                    name,
                    window,
                    policy: policy(&p)?,
                    span_ns,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let logic = match (logic, builtin) {
            (Some(callable), None) => {
                let widths = batch.then(|| inputs.iter().map(|i| i.window).collect());
                LogicSpec::Custom(crate::logic::registered(
                    py, &name, callable, returns, widths,
                )?)
            }
            (None, Some(kind)) => {
                let params = params.unwrap_or_default();
                let params: Vec<(&str, f64)> =
                    params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                // A window written (a count, or a time window's cap) is the
                // window length `n` left out, as YAML's `window:` is.
                let samples = inputs
                    .first()
                    .filter(|i| window_given || i.span_ns.is_some())
                    .map(|i| i.window);
                // Checked where YAML's `window:` is: core's one table.
                let builtin = Builtin::from_params_in(&kind, &params, samples)
                    .map_err(|e| crate::error::invalid(format!("node '{name}': {e}")))?;
                LogicSpec::Builtin(builtin)
            }
            _ => {
                return Err(crate::error::invalid(format!(
                    "node '{name}': give exactly one of logic or builtin"
                )));
            }
        };
        let spec = NodeSpec {
            name,
            inputs,
            logic,
            priority,
            deadband,
            offload,
        };
        self.register(py, spec, defer)?;
        if offload {
            self.start_workers(py)?;
        }
        Ok(())
    }

    /// Registers a constraint over one input. Durations are in seconds;
    /// `defer` as for `register_node`.
    #[pyo3(signature = (name, input, *, trip, reset = None, below = false, hold = 0.0, stale_after = None, policy_name = "latest", priority = 0, defer = false))]
    #[allow(clippy::too_many_arguments)]
    fn register_constraint(
        &self,
        py: Python<'_>,
        name: String,
        input: String,
        trip: f64,
        reset: Option<f64>,
        below: bool,
        hold: f64,
        stale_after: Option<f64>,
        policy_name: &str,
        priority: i32,
        defer: bool,
    ) -> PyResult<()> {
        let spec = ConstraintSpec {
            trip,
            reset,
            direction: if below {
                Direction::Below
            } else {
                Direction::Above
            },
            hold_ns: seconds_to_ns(hold, "for_")?,
            stale_after_ns: stale_after
                .map(|s| seconds_to_ns(s, "stale_after"))
                .transpose()?,
        };
        let timers = spec.hold_ns > 0 || spec.stale_after_ns.is_some();
        let node = NodeSpec {
            name,
            inputs: vec![InputSpec {
                policy: policy(policy_name)?,
                ..InputSpec::new(input, 1)
            }],
            logic: LogicSpec::Constraint(spec),
            priority,
            deadband: None,
            offload: false,
        };
        self.register(py, node, defer)?;
        if timers && self.manual_clock.is_none() {
            self.start_ticker(py, 0.05)?;
        }
        Ok(())
    }

    /// Opens the frame source `url` and feeds its frames into stream `name`
    /// (key `""`), a wave per frame; returns the stream (close it to stop).
    #[pyo3(signature = (name, url, *, token = None))]
    fn frames(
        &self,
        py: Python<'_>,
        name: String,
        url: &str,
        token: Option<String>,
    ) -> PyResult<crate::frames::PyFrameStream> {
        let token = crate::frames::token(token)?;
        self.with_graph(py, |graph| {
            graph.declare_type(&name, dav2d_core::ValueType::Frame)
        })?
        .map_err(graph_error)?;
        let graph = &self.graph;
        let source = py
            .detach(|| {
                crate::error::unwinding("opening a frame source", || {
                    dav2d_frames::nodes::open_for_graph(url, graph, token)
                })
            })?
            .map_err(crate::error::invalid)?;
        let stream = crate::frames::PyFrameStream::over(source, url);
        let intake = self
            .engine
            .intake()
            .map_err(|e| crate::error::Dav2dError::new_err(e.to_string()))?;
        stream.feed(intake.clone(), name)?;
        Ok(stream)
    }

    /// Registers the built-in frame node `kind` (`mean_luma`, `motion`,
    /// `grayscale`, `downscale` with `width` and `height`) over frame stream
    /// `input`; offloaded (run by a worker, off the wave) unless `offload` is false.
    #[pyo3(signature = (name, kind, input, *, width = None, height = None, offload = true))]
    #[allow(clippy::too_many_arguments)]
    fn frame_node(
        &self,
        py: Python<'_>,
        name: String,
        kind: &str,
        input: String,
        width: Option<u32>,
        height: Option<u32>,
        offload: bool,
    ) -> PyResult<()> {
        let size = match (width, height) {
            (Some(w), Some(h)) => Some((w, h)),
            _ => None,
        };
        let logic =
            dav2d_frames::nodes::FrameNode::new(kind, size).map_err(crate::error::invalid)?;
        let window = logic.window();
        let mut spec = NodeSpec::custom(name, vec![InputSpec::new(input, window)], Box::new(logic));
        spec.offload = offload;
        self.register(py, spec, false)?;
        if offload {
            self.start_workers(py)?;
        }
        Ok(())
    }

    /// Registers a processor node over frame stream `input`: the model of
    /// the YAML file `config_path` runs (offloaded) on the newest frame and
    /// its mask is published as a `gray8` frame of 0/1 that knows the
    /// fraction of its pixels set. Returns where the model runs.
    fn processor_node(
        &self,
        py: Python<'_>,
        name: String,
        input: String,
        config_path: PathBuf,
    ) -> PyResult<&'static str> {
        crate::processor::hint_installed_package(py);
        let config = dav2d_infer::ProcessorConfig::load(&config_path)
            .map_err(crate::error::ConfigError::new_err)?;
        let processor = py
            .detach(|| {
                crate::error::unwinding("loading the model", || dav2d_infer::Processor::new(config))
            })?
            .map_err(crate::processor::error)?;
        crate::processor::warn_fallback(py, &processor);
        let node = dav2d_infer::ProcessorNode::new(processor);
        let device = node.device();
        let mut spec = NodeSpec::custom(name, vec![InputSpec::new(input, 1)], Box::new(node));
        spec.offload = true;
        self.register(py, spec, false)?;
        self.start_workers(py)?;
        Ok(device)
    }

    /// Panics inside the engine on purpose: the tests' way to check that a
    /// panic becomes a `Dav2dError` and leaves the graph usable.
    fn _panic_inside_engine(&self, py: Python<'_>) -> PyResult<()> {
        self.with_graph(py, |_| -> () {
            panic!("a panic inside the engine, on purpose")
        })
    }

    /// Registers the nodes and constraints that waited for their inputs
    /// (in dependency order). Those that still cannot be registered are
    /// left out, their errors raised together as one `GraphError`.
    fn resolve(&self, py: Python<'_>) -> PyResult<()> {
        let specs = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        if specs.is_empty() {
            return Ok(());
        }
        let (errors, guessed) = self.with_graph(py, |graph| {
            let errors = graph.register_waiting(specs);
            graph.run_wave();
            (errors, graph.take_guessed_inputs())
        })?;
        crate::door::warn_guessed(py, guessed)?;
        if errors.is_empty() {
            return Ok(());
        }
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Err(crate::error::GraphError::new_err(all.join("; ")))
    }

    /// The graph's streams and nodes as `dav2d check --format json` lists
    /// them (the components of a run are in `/graph`), as JSON text.
    fn spec_json(&self, py: Python<'_>) -> PyResult<String> {
        self.with_graph(py, |graph| dav2d_runtime::Spec::of_graph(graph).to_json())
    }

    /// Applies a YAML config to this running graph as a hot reload (what
    /// `dav2d run --watch` does): validated whole first (an invalid one
    /// raises `ConfigError` and changes nothing), then changed parameters of
    /// built-ins and constraints apply in place keeping windows and alert
    /// states, new nodes are added and nodes the config lacks are removed.
    /// Returns `{"version": N, "changes": [...]}`. With `spec`, `source`
    /// is a spec as JSON (what `spec_json` gives) rather than a path.
    fn apply<'py>(
        &self,
        py: Python<'py>,
        source: String,
        spec: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        crate::processor::hint_installed_package(py);
        let applied = py
            .detach(|| {
                crate::error::unwinding("applying the config", || {
                    crate::reload::apply(&self.engine, &source, spec)
                })
            })?
            .map_err(crate::error::config)?;
        let answer = PyDict::new(py);
        answer.set_item("version", applied.version)?;
        answer.set_item("changes", applied.changes)?;
        Ok(answer)
    }

    /// Loads a YAML config's streams, nodes and constraints into this graph.
    fn load_config(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        // Its processor nodes find ONNX Runtime in this interpreter's packages.
        crate::processor::hint_installed_package(py);
        let config = py
            .detach(|| crate::error::unwinding("reading the config", || Config::load(&path)))?
            .map_err(config_error)?;
        let offloaded = self
            .with_graph(py, |graph| {
                // Built as `dav2d check` builds it: an input the config
                // does not declare and the graph does not have is an error
                // at its line, even on a graph that creates streams on use.
                let permissive = graph.options().auto_create_streams;
                graph.set_auto_create_streams(false);
                let built = config.build(graph);
                graph.set_auto_create_streams(permissive);
                built?;
                graph.run_wave();
                Ok(graph.has_offloaded_nodes())
            })?
            .map_err(config_error)?;
        if offloaded {
            // Frame and processor nodes from YAML run on the workers.
            self.start_workers(py)?;
        }
        if self.manual_clock.is_none() && !config.constraints.is_empty() {
            let tick = config.tick().map_err(config_error)?;
            self.start_ticker(py, tick.as_secs_f64())?;
        }
        Ok(())
    }

    /// Pushes one sample and runs the wave. Raises `RejectedError` if invalid.
    #[pyo3(signature = (stream, value, key = "", ts = None))]
    fn push(
        &self,
        py: Python<'_>,
        stream: &str,
        value: &Bound<'_, PyAny>,
        key: &str,
        ts: Option<i64>,
    ) -> PyResult<()> {
        let value = to_value_or_type_error(value)?;
        let sample = [NativeSample { key, value, ts }];
        let report = self.through_intake(
            py,
            |intake| intake.try_push_values(stream, &sample),
            |intake| intake.push_values(stream, &sample, Admission::Wait),
        )?;
        match report.errors.into_iter().next() {
            Some((_, reason)) => Err(crate::error::RejectedError::new_err(reason)),
            None => Ok(()),
        }
    }

    /// Pushes a batch of numbers (a float64 NumPy array or a sequence) with
    /// one key for all or one per value, and optional int64 ns timestamps.
    /// Good samples are applied beside rejected ones. Returns
    /// `{"accepted": n, "rejected": m, "errors": [(index, reason), ...]}`.
    #[pyo3(signature = (stream, values, keys = None, ts = None))]
    fn push_many<'py>(
        &self,
        py: Python<'py>,
        stream: &str,
        values: &Bound<'py, PyAny>,
        keys: Option<&Bound<'py, PyAny>>,
        ts: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let array: Option<PyReadonlyArray1<'py, f64>> = values.extract().ok();
        let owned: Vec<f64>;
        let values: &[f64] = match &array {
            Some(array) if array.is_c_contiguous() => array
                .as_slice()
                .map_err(|e| crate::error::invalid(format!("values: {e}")))?,
            _ => {
                owned = values.extract().map_err(|_| {
                    crate::error::invalid(
                        "values must be a 1-D float64 NumPy array or a sequence of numbers",
                    )
                })?;
                &owned
            }
        };
        let ts_array: Option<PyReadonlyArray1<'py, i64>> =
            match ts {
                Some(ts) => Some(ts.extract().map_err(|_| {
                    crate::error::invalid("ts must be a 1-D int64 NumPy array of ns")
                })?),
                None => None,
            };
        let ts: Option<&[i64]> = match &ts_array {
            Some(a) => Some(
                a.as_slice()
                    .map_err(|e| crate::error::invalid(format!("ts: {e}")))?,
            ),
            None => None,
        };
        let single: String;
        let many: Vec<Bound<'py, pyo3::types::PyString>>;
        let key_refs: Vec<&str>;
        let keys = match keys {
            None => Keys::One(""),
            Some(k) if k.is_instance_of::<pyo3::types::PyString>() => {
                single = k.extract()?;
                Keys::One(&single)
            }
            Some(k) => {
                // Borrowed from the Python strings, not copied.
                many = k.extract().map_err(|_| {
                    crate::error::invalid("keys must be a string or a sequence of strings")
                })?;
                key_refs = many.iter().map(|k| k.to_str()).collect::<PyResult<_>>()?;
                Keys::Many(&key_refs)
            }
        };
        let report = self.through_intake(
            py,
            |intake| intake.try_push_numbers(stream, keys, values, ts),
            |intake| intake.push_numbers(stream, keys, values, ts, Admission::Wait),
        )?;
        if let Some(error) = report.error {
            return Err(crate::error::invalid(error));
        }
        let result = PyDict::new(py);
        result.set_item("accepted", report.accepted)?;
        result.set_item("rejected", report.rejected)?;
        result.set_item("errors", report.errors)?;
        Ok(result)
    }

    /// The latest value of (name, key), None if it has none yet. Raises
    /// `NodeError` (with the traceback) while the (node, key) is failing,
    /// unless `sample=True`, which returns a `Sample` carrying `.error`.
    #[pyo3(signature = (name, key = "", sample = false))]
    fn latest(&self, py: Python<'_>, name: &str, key: &str, sample: bool) -> PyResult<Py<PyAny>> {
        let reading = self.reads()?.latest(name, key).map_err(graph_error)?;
        let Some(reading) = reading else {
            return Ok(py.None());
        };
        if sample {
            return Ok(Py::new(py, self::sample(py, key, reading)?)?.into_any());
        }
        if let Some(error) = reading.error {
            return Err(NodeError::new_err(format!(
                "node '{name}' failed for key '{key}':\n{error}"
            )));
        }
        match reading.sample {
            Some(s) => Ok(to_python(py, &s.value)?.unbind()),
            None => Ok(py.None()),
        }
    }

    /// Every key of `name` with its latest `Sample`.
    fn latest_all<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let readings = self.reads()?.latest_all(name).map_err(graph_error)?;
        let result = PyDict::new(py);
        for (key, reading) in readings {
            result.set_item(&*key, Py::new(py, sample(py, &key, reading)?)?)?;
        }
        Ok(result)
    }

    /// The newest `n` samples of (name, key) as a zero-copy `Window`.
    #[pyo3(signature = (name, key = "", n = dav2d_core::DEFAULT_WINDOW))]
    fn window(&self, py: Python<'_>, name: &str, key: &str, n: usize) -> PyResult<PyWindow> {
        let snapshot = self
            .with_graph(py, |graph| graph.window(name, key, n))?
            .map_err(graph_error)?;
        Ok(PyWindow::new(snapshot, std::sync::Arc::from(key)))
    }

    /// Subscribes to `name`: `mode` is "latest" (newest per key) or "every"
    /// (every change, conflating per key beyond `capacity` waiting).
    #[pyo3(signature = (name, mode = "latest", capacity = 1024))]
    fn subscribe(
        &self,
        py: Python<'_>,
        name: &str,
        mode: &str,
        capacity: usize,
    ) -> PyResult<PySubscription> {
        let mode = match mode {
            "latest" => SubscriptionMode::Latest,
            "every" => SubscriptionMode::EveryChange,
            other => {
                return Err(crate::error::invalid(format!(
                    "unknown mode '{other}'; expected 'latest' or 'every'"
                )));
            }
        };
        // Only a permissive graph (`auto_create_streams=True`) creates a
        // stream by subscribing to it; otherwise an unknown name is an
        // error naming the closest one, as `/events` answers 404.
        let permissive = self.auto_create_streams == Some(true);
        let inner = self
            .with_graph(py, |graph| {
                if permissive {
                    graph.subscribe(name, mode, capacity)
                } else {
                    graph.subscribe_many(&[name], mode, capacity)
                }
            })?
            .map_err(graph_error)?;
        Ok(PySubscription { inner })
    }

    /// Checks constraint timers (`for`, `stale_after`) now; returns transitions.
    fn tick(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_graph(py, Graph::tick)
    }

    /// Moves a manual clock forward by `seconds`, then ticks.
    fn advance_clock(&self, py: Python<'_>, seconds: f64) -> PyResult<u64> {
        let Some(clock) = &self.manual_clock else {
            return Err(crate::error::Dav2dError::new_err(
                "advance_clock needs a graph made with manual_clock=True",
            ));
        };
        clock.advance(seconds_to_ns(seconds, "seconds")?);
        self.tick(py)
    }

    /// Starts a background thread checking constraint timers every `interval` s.
    #[pyo3(signature = (interval = 0.05))]
    fn start_ticker(&self, py: Python<'_>, interval: f64) -> PyResult<()> {
        // NaN (which clamp keeps) becomes the default tick.
        let interval = if interval.is_nan() { 0.05 } else { interval };
        let interval = Duration::from_secs_f64(interval.clamp(0.001, 3600.0));
        let engine = &self.engine;
        py.detach(|| engine.ensure_timer(interval))
            .map_err(|e| crate::error::Dav2dError::new_err(e.to_string()))?;
        Ok(())
    }

    /// Starts the workers that run offloaded nodes, if not yet running.
    fn start_workers(&self, py: Python<'_>) -> PyResult<()> {
        let (engine, count) = (&self.engine, self.offload_workers);
        py.detach(|| {
            crate::error::unwinding("starting the workers", || engine.ensure_workers(count))
        })?
        .map_err(|e| crate::error::Dav2dError::new_err(e.to_string()))?;
        Ok(())
    }

    /// Stops the offload workers after their current job, if any.
    fn stop_workers(&self, py: Python<'_>) -> PyResult<()> {
        let engine = &self.engine;
        py.detach(|| crate::error::unwinding("stopping the workers", || engine.stop_workers()))?;
        Ok(())
    }

    /// Stops the timer thread, if any.
    fn stop_ticker(&self, py: Python<'_>) -> PyResult<()> {
        let engine = &self.engine;
        py.detach(|| crate::error::unwinding("stopping the timer", || engine.stop_timer()))?;
        Ok(())
    }

    /// Counters: samples in, accepted, rejected (and by reason), evaluations,
    /// conflated, errors, cutoffs, waves, transitions, plus `nodes` per node.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::listing::stats(py, self.reads()?)
    }

    /// Every node in evaluation order, as dicts.
    fn nodes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        crate::listing::nodes(py, self.reads()?)
    }
}

impl Drop for PyGraph {
    fn drop(&mut self) {
        // Not joined: the timer may be waiting for the GIL this drop holds,
        // and a worker may be running Python logic.
        self.engine.stop_soon();
    }
}
