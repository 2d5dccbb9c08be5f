//! The graph part of the config: streams, nodes and constraints, converted
//! by hand into core specs and registered, with graph errors mapped back to
//! the line that caused them.

use std::time::Duration;

use dav2d_core::{
    Bounds, Builtin, BuiltinError, ConstraintSpec, Direction, EdgePolicy, Graph, GraphError,
    InputSpec, LogicSpec, NodeSpec, ValueType,
};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Config, ConfigError};

/// An input stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Name.
    pub name: Spanned<String>,
    /// Smallest valid value.
    pub min: Option<f64>,
    /// Largest valid value.
    pub max: Option<f64>,
    /// Reject NaN and infinities.
    #[serde(default)]
    pub finite_only: bool,
    /// Samples kept per key at least (`history` is the former name).
    #[serde(alias = "history")]
    pub keep: Option<usize>,
    /// The type of values it takes: `number`, `string`, `bool`, `record`,
    /// `bytes` or `any` (default: `number` when a numeric node reads it).
    #[serde(rename = "type")]
    pub value_type: Option<Spanned<String>>,
    /// What a sample older than its key's latest does: `drop` (the
    /// default) or `insert` (into the window, within `allowed_lateness`).
    pub late: Option<Spanned<String>>,
    /// How much older than the latest an inserted sample may be, e.g. `5s`
    /// (with `late: insert`; default 0).
    pub allowed_lateness: Option<Spanned<String>>,
}

/// A node: a built-in transform over one input, a frame node, a processor
/// node, or a Python function (`kind: python`). Besides the fields below,
/// an entry holds the built-in's parameters (`n`, `alpha`, ... as the
/// built-in table in `dav2d-core` lists them), each located on its line.
#[derive(Debug)]
pub struct NodeConfig {
    /// Name (also the output stream's name).
    pub name: Spanned<String>,
    /// The built-in, e.g. `moving_average` (see `dav2d_core::BUILTINS`),
    /// a frame node, `processor` or `python`.
    pub kind: Spanned<String>,
    /// The input streams or nodes: `input: a`, or `inputs: [a, b]` (several
    /// for `kind: python` only).
    pub inputs: Vec<Spanned<String>>,
    /// Whether they were written as the list `inputs:`.
    pub inputs_listed: bool,
    /// What the logic sees of each input: a number of samples (`16`) or a
    /// duration of event time (`30s`).
    pub window: Option<Spanned<String>>,
    /// The most samples a time window keeps (default
    /// `dav2d_core::DEFAULT_SPAN_SAMPLES`).
    pub max_samples: Option<Spanned<f64>>,
    /// `kind: python`: the function, as `module:function`.
    pub logic: Option<Spanned<String>>,
    /// `kind: python`: `number` (the default: anything else is the key's
    /// error) or `any`.
    pub returns: Option<Spanned<String>>,
    /// The built-in's parameters, as written.
    pub params: Vec<(String, Spanned<f64>)>,
    /// Other fields whose values are not numbers (a misspelt field, or a
    /// parameter given text): refused with the closest valid field.
    pub other: Vec<(String, Spanned<String>)>,
    /// A processor node's model (`kind: processor` may leave it out to use
    /// the file's top-level processor).
    pub processor: Option<dav2d_infer::ProcessorSection>,
    /// `latest` (default) or `all`.
    pub policy: Option<Spanned<String>>,
    /// Higher runs first among independent nodes.
    pub priority: i32,
    /// Changes smaller than this wake no children.
    pub deadband: Option<f64>,
    /// Run on a worker outside the wave, so slow logic never holds the
    /// engine (stateless built-ins; `run.workers` sets how many workers).
    /// Frame nodes are offloaded unless this says `false`; others are not
    /// unless it says `true`.
    pub offload: Option<bool>,
}

impl<'de> Deserialize<'de> for NodeConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};

        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = NodeConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a node: name, kind, input and the built-in's parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeConfig, A::Error> {
                let (mut name, mut kind, mut input) = (None, None, None);
                let mut listed: Option<Vec<Spanned<String>>> = None;
                let (mut window, mut max_samples, mut logic, mut returns) =
                    (None, None, None, None);
                let (mut policy, mut priority, mut deadband, mut offload) = (None, 0, None, None);
                let mut processor: Option<dav2d_infer::ProcessorSection> = None;
                let mut params: Vec<(String, Spanned<f64>)> = Vec::new();
                let mut other: Vec<(String, Spanned<String>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "kind" => kind = Some(map.next_value()?),
                        "input" => input = Some(map.next_value()?),
                        "inputs" => listed = Some(map.next_value()?),
                        "window" => window = Some(map.next_value()?),
                        "max_samples" => max_samples = Some(map.next_value()?),
                        "logic" => logic = Some(map.next_value()?),
                        "returns" => returns = Some(map.next_value()?),
                        "policy" => policy = Some(map.next_value()?),
                        "priority" => priority = map.next_value()?,
                        "deadband" => deadband = Some(map.next_value()?),
                        "offload" => offload = Some(map.next_value()?),
                        "processor" => processor = Some(map.next_value()?),
                        _ if params.iter().any(|(p, _)| *p == key)
                            || other.iter().any(|(p, _)| *p == key) =>
                        {
                            return Err(A::Error::custom(format!("duplicate field `{key}`")));
                        }
                        _ => {
                            let value: Spanned<Scalar> = map.next_value()?;
                            let (referenced, defined) = (value.referenced, value.defined);
                            match value.value {
                                Scalar::Number(x) => {
                                    params.push((key, Spanned::new(x, referenced, defined)));
                                }
                                Scalar::Text(text) => {
                                    other.push((key, Spanned::new(text, referenced, defined)));
                                }
                            }
                        }
                    }
                }
                // A node with a processor is a processor node.
                let kind = match (kind, &processor) {
                    (Some(kind), _) => kind,
                    (None, Some(_)) => Spanned::new(
                        "processor".to_string(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    ),
                    (None, None) => return Err(A::Error::missing_field("kind")),
                };
                let (inputs, inputs_listed) = match (input, listed) {
                    (Some(_), Some(_)) => {
                        return Err(A::Error::custom("give `input` or `inputs`, not both"));
                    }
                    (Some(input), None) => (vec![input], false),
                    (None, Some(inputs)) if inputs.is_empty() => {
                        return Err(A::Error::custom(
                            "`inputs` is empty; a node reads at least one",
                        ));
                    }
                    (None, Some(inputs)) => (inputs, true),
                    (None, None) => return Err(A::Error::missing_field("input")),
                };
                Ok(NodeConfig {
                    name: name.ok_or_else(|| A::Error::missing_field("name"))?,
                    kind,
                    inputs,
                    inputs_listed,
                    window,
                    max_samples,
                    logic,
                    returns,
                    params,
                    other,
                    policy,
                    priority,
                    deadband,
                    offload,
                    processor,
                })
            }
        }
        deserializer.deserialize_map(NodeVisitor)
    }
}

/// A value of a field a node's kind decides on: a number (a built-in's
/// parameter) or anything else, kept as text for the error.
enum Scalar {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl serde::de::Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a word")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Text("null".to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The fields every node takes, whatever its kind.
const NODE_FIELDS: &[&str] = &[
    "name", "kind", "input", "inputs", "policy", "priority", "deadband", "offload",
];

/// A node's window as written: a count of samples or a time window.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NodeWindow {
    Count(usize),
    Span { ns: i64, cap: usize },
}

/// A constraint over one input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintConfig {
    /// Name (also the state stream's name).
    pub name: Spanned<String>,
    /// The input stream or node.
    pub input: Spanned<String>,
    /// Threshold that trips.
    pub trip: f64,
    /// Threshold that resets (defaults to `trip`).
    pub reset: Option<f64>,
    /// `above` (default) or `below`.
    pub direction: Option<Spanned<String>>,
    /// How long the trip condition must hold, e.g. `500ms`.
    /// (`for_`, Python's spelling, is taken too.)
    #[serde(rename = "for", alias = "for_")]
    pub hold: Option<Spanned<String>>,
    /// Silence after which a key is `stale`, e.g. `5s`.
    pub stale_after: Option<Spanned<String>>,
    /// `latest` (default) or `all`.
    pub policy: Option<Spanned<String>>,
    /// Priority.
    #[serde(default)]
    pub priority: i32,
}

impl Config {
    /// The declared type of `streams[i]`, if any.
    pub(crate) fn value_type(
        &self,
        i: usize,
        stream: &StreamConfig,
    ) -> Result<Option<ValueType>, ConfigError> {
        let Some(text) = &stream.value_type else {
            return Ok(None);
        };
        ValueType::from_name(&text.value).map(Some).ok_or_else(|| {
            let known: Vec<&str> = ValueType::ALL.iter().map(|t| t.as_str()).collect();
            self.error_at(
                text,
                format!("streams[{i}].type"),
                format!(
                    "unknown type '{}'; expected one of: {}",
                    text.value,
                    known.join(", ")
                ),
            )
        })
    }

    /// A stream's `late` and `allowed_lateness`, if written.
    fn late_policy(
        &self,
        i: usize,
        stream: &StreamConfig,
    ) -> Result<Option<dav2d_core::LatePolicy>, ConfigError> {
        let allowed = self
            .duration(
                &stream.allowed_lateness,
                format!("streams[{i}].allowed_lateness"),
            )?
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        match (&stream.late, allowed) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(self.error_at(
                stream.allowed_lateness.as_ref().unwrap_or(&stream.name),
                format!("streams[{i}].allowed_lateness"),
                "allowed_lateness needs `late: insert` (late samples are dropped otherwise)"
                    .to_string(),
            )),
            (Some(late), allowed) => match late.value.as_str() {
                "drop" if allowed.is_none() => Ok(Some(dav2d_core::LatePolicy::Drop)),
                "drop" => Err(self.error_at(
                    late,
                    format!("streams[{i}].late"),
                    "`late: drop` drops every late sample; give `late: insert` to use allowed_lateness"
                        .to_string(),
                )),
                "insert" => Ok(Some(dav2d_core::LatePolicy::Insert {
                    allowed_ns: allowed.unwrap_or(0),
                })),
                other => Err(self.error_at(
                    late,
                    format!("streams[{i}].late"),
                    format!("unknown late policy '{other}'; expected drop or insert"),
                )),
            },
        }
    }

    pub(crate) fn policy(
        &self,
        policy: &Option<Spanned<String>>,
        field: String,
    ) -> Result<EdgePolicy, ConfigError> {
        match policy {
            None => Ok(EdgePolicy::Latest),
            Some(p) if p.value == "latest" => Ok(EdgePolicy::Latest),
            Some(p) if p.value == "all" => Ok(EdgePolicy::All),
            Some(p) => Err(self.error_at(
                p,
                field,
                format!("unknown policy '{}'; expected latest or all", p.value),
            )),
        }
    }

    /// A frame node (`mean_luma`, `motion`, `grayscale`, `downscale` with
    /// `width` and `height`).
    pub(crate) fn frame_node(
        &self,
        i: usize,
        node: &NodeConfig,
    ) -> Result<dav2d_frames::nodes::FrameNode, ConfigError> {
        let mut size = (None, None);
        for (name, value) in &node.params {
            let side = match name.as_str() {
                "width" => &mut size.0,
                "height" => &mut size.1,
                other => {
                    return Err(self.error_at(
                        value,
                        format!("nodes[{i}].{other}"),
                        format!(
                            "{} takes no '{other}'; downscale takes width and height",
                            node.kind.value
                        ),
                    ));
                }
            };
            if !(value.value >= 1.0 && value.value <= 16384.0 && value.value.fract() == 0.0) {
                return Err(self.error_at(
                    value,
                    format!("nodes[{i}].{name}"),
                    format!(
                        "{name} must be a whole number of pixels from 1 to 16384, got {}",
                        value.value
                    ),
                ));
            }
            *side = Some(value.value as u32);
        }
        let size = match size {
            (Some(w), Some(h)) => Some((w, h)),
            _ => None,
        };
        dav2d_frames::nodes::FrameNode::new(&node.kind.value, size)
            .map_err(|message| self.error_at(&node.kind, format!("nodes[{i}]"), message))
    }

    pub(crate) fn builtin(
        &self,
        i: usize,
        node: &NodeConfig,
        window_samples: Option<usize>,
    ) -> Result<Builtin, ConfigError> {
        let params: Vec<(&str, f64)> = node
            .params
            .iter()
            .map(|(name, value)| (name.as_str(), value.value))
            .collect();
        Builtin::from_params_in(&node.kind.value, &params, window_samples).map_err(|error| {
            match &error {
                BuiltinError::UnknownParam { param, .. } => {
                    let field = format!("nodes[{i}].{param}");
                    match node.params.iter().find(|(p, _)| p == param) {
                        Some((_, value)) => self.error_at(value, field, error.to_string()),
                        None => self.error_at(&node.kind, field, error.to_string()),
                    }
                }
                BuiltinError::UnknownKind(_) => {
                    self.error_at(&node.kind, format!("nodes[{i}].kind"), error.to_string())
                }
                BuiltinError::Missing { param, .. } => {
                    self.error_at(&node.kind, format!("nodes[{i}].{param}"), error.to_string())
                }
                BuiltinError::Invalid(_) => {
                    self.error_at(&node.kind, format!("nodes[{i}]"), error.to_string())
                }
            }
        })
    }

    /// The field an input of a node was written in.
    fn input_field(i: usize, node: &NodeConfig, j: usize) -> String {
        match node.inputs_listed {
            true => format!("nodes[{i}].inputs[{j}]"),
            false => format!("nodes[{i}].input"),
        }
    }

    /// Refuses the fields only `kind: python` takes on other kinds, and
    /// several inputs on a kind that reads one.
    pub(crate) fn python_fields(
        &self,
        i: usize,
        node: &NodeConfig,
        python: bool,
    ) -> Result<(), ConfigError> {
        if python {
            return Ok(());
        }
        for (field, text) in [("logic", &node.logic), ("returns", &node.returns)] {
            if let Some(text) = text {
                return Err(self.error_at(
                    text,
                    format!("nodes[{i}].{field}"),
                    format!(
                        "`{field}` is for `kind: python` nodes; {} is a built-in kind",
                        node.kind.value
                    ),
                ));
            }
        }
        if let Some(extra) = node.inputs.get(1) {
            return Err(self.error_at(
                extra,
                Self::input_field(i, node, 1),
                format!(
                    "{} reads one input; only `kind: python` nodes read several",
                    node.kind.value
                ),
            ));
        }
        Ok(())
    }

    /// A node's `window` and `max_samples`.
    pub(crate) fn node_window(
        &self,
        i: usize,
        node: &NodeConfig,
    ) -> Result<Option<NodeWindow>, ConfigError> {
        let cap = match &node.max_samples {
            None => None,
            Some(cap) => {
                let value = cap.value;
                if !(value >= 1.0 && value < dav2d_core::MAX_WINDOW as f64 && value.fract() == 0.0)
                {
                    return Err(self.error_at(
                        cap,
                        format!("nodes[{i}].max_samples"),
                        format!(
                            "max_samples must be a whole number from 1 to {}, got {value}",
                            dav2d_core::MAX_WINDOW - 1
                        ),
                    ));
                }
                Some(value as usize)
            }
        };
        let window = match &node.window {
            None => None,
            Some(text) => {
                let field = format!("nodes[{i}].window");
                let written = text.value.trim();
                Some(match written.parse::<u64>() {
                    Ok(count) if count == 0 || count > dav2d_core::MAX_WINDOW as u64 => {
                        return Err(self.error_at(
                            text,
                            field,
                            format!(
                                "a window of {count} samples; give 1 to {} samples, or a duration such as 30s",
                                dav2d_core::MAX_WINDOW
                            ),
                        ));
                    }
                    Ok(count) => NodeWindow::Count(count as usize),
                    Err(_) => NodeWindow::Span {
                        ns: super::parse_span(written).map_err(|message| {
                            self.error_at(
                                text,
                                field,
                                format!("{message} (or a whole number of samples)"),
                            )
                        })?,
                        cap: cap.unwrap_or(dav2d_core::DEFAULT_SPAN_SAMPLES),
                    },
                })
            }
        };
        if let (Some(written), None | Some(NodeWindow::Count(_))) = (&node.max_samples, window) {
            return Err(self.error_at(
                written,
                format!("nodes[{i}].max_samples"),
                "max_samples caps a time window; give `window: 30s` (a duration) with it"
                    .to_string(),
            ));
        }
        Ok(window)
    }

    /// A built-in node, over its window when it has one.
    /// Refuses a field that `node`'s kind does not take, naming the
    /// closest one it does (among its own fields and the kind's
    /// parameters), and a parameter written as text.
    pub(crate) fn node_fields(&self, i: usize, node: &NodeConfig) -> Result<(), ConfigError> {
        let kind = node.kind.value.as_str();
        let mut valid: Vec<&str> = NODE_FIELDS.to_vec();
        let frame = dav2d_frames::nodes::FRAME_NODES.contains(&kind);
        match kind {
            "python" => valid.extend(["window", "max_samples", "logic", "returns"]),
            "processor" => valid.push("processor"),
            "downscale" => valid.extend(["width", "height"]),
            _ if frame => {}
            _ => {
                valid.extend(["window", "max_samples"]);
                if let Some(def) = Builtin::def_of(kind) {
                    valid.extend(def.params.iter().map(|p| p.name));
                }
            }
        }
        let numeric = |name: &str| match kind {
            "downscale" => ["width", "height"].contains(&name),
            _ => Builtin::def_of(kind).is_some_and(|d| d.params.iter().any(|p| p.name == name)),
        };
        let written = (node.params.iter().map(|(n, v)| (n, &v.referenced, None))).chain(
            node.other
                .iter()
                .map(|(n, v)| (n, &v.referenced, Some(&v.value))),
        );
        for (name, at, text) in written {
            let field = format!("nodes[{i}].{name}");
            let located = |message: String| ConfigError {
                file: self.file.clone(),
                line: at.line(),
                column: at.column(),
                field: field.clone(),
                message,
            };
            if !valid.contains(&name.as_str()) {
                let hint = match dav2d_core::closest(name, valid.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`? "),
                    None => String::new(),
                };
                return Err(located(format!(
                    "{kind} takes no field `{name}`; {hint}it takes {}",
                    valid.join(", ")
                )));
            }
            if let (Some(text), true) = (text, numeric(name)) {
                return Err(located(format!(
                    "`{name}` of {kind} is a number, got '{text}'"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn builtin_node(
        &self,
        i: usize,
        node: &NodeConfig,
        window: Option<NodeWindow>,
    ) -> Result<NodeSpec, ConfigError> {
        let samples = match window {
            None => None,
            Some(NodeWindow::Count(count)) => Some(count),
            Some(NodeWindow::Span { cap, .. }) => Some(cap),
        };
        if let (Some(text), Some(_)) = (&node.window, node.params.iter().find(|(p, _)| p == "n")) {
            return Err(self.error_at(
                text,
                format!("nodes[{i}].window"),
                format!("give `n` or `window` to {}, not both", node.kind.value),
            ));
        }
        let builtin = self.builtin(i, node, samples)?;
        if let (Some(text), false) = (&node.window, builtin.reads_window()) {
            return Err(self.error_at(
                text,
                format!("nodes[{i}].window"),
                format!(
                    "{} reads only the newest sample; remove `window`",
                    node.kind.value
                ),
            ));
        }
        let spec = NodeSpec::builtin(
            node.name.value.clone(),
            node.inputs[0].value.clone(),
            builtin,
        );
        Ok(match window {
            Some(NodeWindow::Span { ns, cap }) => spec.with_span(ns, cap),
            Some(NodeWindow::Count(count)) => {
                let mut spec = spec;
                spec.inputs[0].window = count;
                spec
            }
            None => spec,
        })
    }

    /// A `kind: python` node: the function `logic:` names over its inputs.
    fn python_node(
        &self,
        i: usize,
        node: &NodeConfig,
        window: Option<NodeWindow>,
    ) -> Result<NodeSpec, ConfigError> {
        let Some(logic) = &node.logic else {
            return Err(self.error_at(
                &node.kind,
                format!("nodes[{i}].logic"),
                "kind: python needs `logic: module:function` (e.g. `logic: mylogic:smooth`, \
                 a function in mylogic.py next to this file or on the Python path)"
                    .to_string(),
            ));
        };
        if let Some((param, value)) = node.params.first() {
            return Err(self.error_at(
                value,
                format!("nodes[{i}].{param}"),
                format!(
                    "kind: python takes logic, input or inputs, window, max_samples, returns, policy, priority, deadband and offload; `{param}` is not one of them"
                ),
            ));
        }
        let numeric = match &node.returns {
            None => true,
            Some(returns) => match returns.value.as_str() {
                "number" => true,
                "any" => false,
                other => {
                    return Err(self.error_at(
                        returns,
                        format!("nodes[{i}].returns"),
                        format!("unknown returns '{other}'; expected number or any"),
                    ));
                }
            },
        };
        let request = super::PythonLogicRequest {
            logic: &logic.value,
            config_dir: self.base_dir(),
            numeric,
        };
        let made = super::python::python_logic(&request)
            .map_err(|message| self.error_at(logic, format!("nodes[{i}].logic"), message))?;
        let inputs = node
            .inputs
            .iter()
            .map(|input| {
                let name = input.value.clone();
                match window {
                    None => InputSpec::new(name, dav2d_core::DEFAULT_WINDOW),
                    Some(NodeWindow::Count(count)) => InputSpec::new(name, count),
                    Some(NodeWindow::Span { ns, cap }) => InputSpec::over(name, ns, cap),
                }
            })
            .collect();
        Ok(NodeSpec::custom(node.name.value.clone(), inputs, made))
    }

    pub(crate) fn constraint_spec(
        &self,
        i: usize,
        constraint: &ConstraintConfig,
    ) -> Result<ConstraintSpec, ConfigError> {
        let direction = match &constraint.direction {
            None => Direction::Above,
            Some(d) if d.value == "above" => Direction::Above,
            Some(d) if d.value == "below" => Direction::Below,
            Some(d) => {
                return Err(self.error_at(
                    d,
                    format!("constraints[{i}].direction"),
                    format!("unknown direction '{}'; expected above or below", d.value),
                ));
            }
        };
        let as_ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let spec = ConstraintSpec {
            trip: constraint.trip,
            reset: constraint.reset,
            direction,
            hold_ns: self
                .duration(&constraint.hold, format!("constraints[{i}].for"))?
                .map_or(0, as_ns),
            stale_after_ns: self
                .duration(
                    &constraint.stale_after,
                    format!("constraints[{i}].stale_after"),
                )?
                .map(as_ns),
        };
        spec.validate().map_err(|message| {
            self.error_at(&constraint.name, format!("constraints[{i}]"), message)
        })?;
        Ok(spec)
    }

    /// Declares the streams and registers the nodes and constraints into
    /// `graph`. Graph errors (cycles, unknown inputs, duplicates) are mapped
    /// back to the line that caused them.
    pub fn build(&self, graph: &mut Graph) -> Result<(), ConfigError> {
        graph.set_limits(self.limits()?);
        for (i, stream) in self.streams.iter().enumerate() {
            let bounds = Bounds {
                min: stream.min,
                max: stream.max,
                finite_only: stream.finite_only,
            };
            graph
                .declare_stream(&stream.name.value, bounds, stream.keep)
                .map_err(|error| {
                    self.error_at(
                        &stream.name,
                        format!("streams[{i}].name"),
                        error.to_string(),
                    )
                })?;
            if let Some(policy) = self.late_policy(i, stream)? {
                graph
                    .set_late_policy(&stream.name.value, policy)
                    .map_err(|error| {
                        self.error_at(
                            &stream.name,
                            format!("streams[{i}].late"),
                            error.to_string(),
                        )
                    })?;
            }
            if let Some(value_type) = self.value_type(i, stream)? {
                graph
                    .declare_type(&stream.name.value, value_type)
                    .map_err(|error| {
                        self.error_at(
                            &stream.name,
                            format!("streams[{i}].type"),
                            error.to_string(),
                        )
                    })?;
            }
        }
        for (i, source) in self.sources.iter().enumerate() {
            if let super::SourceSpec::Frames(frames) = &source.spec {
                let name = &frames.stream.value;
                // A frame stream declared in `streams:` takes frames only if
                // it says `type: frame` (or `any`) or nothing about values.
                if let Some(stream) = self.streams.iter().find(|s| s.name.value == *name) {
                    let typed = stream.value_type.as_ref().map(|t| t.value.trim());
                    let numeric =
                        stream.min.is_some() || stream.max.is_some() || stream.finite_only;
                    if numeric || !matches!(typed, None | Some("frame") | Some("any")) {
                        let said = match typed {
                            Some(t) => format!("declared `type: {t}`"),
                            None => "declared with numeric bounds".to_string(),
                        };
                        return Err(self.error_at(
                            &frames.stream,
                            format!("sources[{i}].stream"),
                            format!(
                                "a frames source makes frames, but stream '{name}' is {said}; declare it `type: frame` (no min, max or finite_only) or feed another stream"
                            ),
                        ));
                    }
                }
                let typed = self
                    .streams
                    .iter()
                    .any(|s| s.name.value == *name && s.value_type.is_some());
                let declared = match typed {
                    true => Ok(()),
                    false => graph.declare_type(name, dav2d_core::ValueType::Frame),
                };
                declared.map_err(|error| {
                    self.error_at(
                        &frames.stream,
                        format!("sources[{i}].stream"),
                        error.to_string(),
                    )
                })?;
                continue;
            }
            // The streams a source names are declared as if written in
            // `streams:` (a topic template's `{stream}` names them per
            // message: those must be declared).
            let named: Vec<(&Spanned<String>, Option<&str>, String)> = match &source.spec {
                super::SourceSpec::Synthetic(synthetic) => vec![(
                    &synthetic.stream,
                    Some(synthetic.stream.value.as_str()),
                    format!("sources[{i}].stream"),
                )],
                super::SourceSpec::Mqtt(mqtt) => (mqtt.subscriptions.value.iter().enumerate())
                    .map(|(j, s)| {
                        let field = format!("sources[{i}].subscriptions[{j}].stream");
                        (&s.topic, s.stream.as_deref(), field)
                    })
                    .collect(),
                super::SourceSpec::Nats(nats) => (nats.subjects.value.iter().enumerate())
                    .map(|(j, s)| {
                        let field = format!("sources[{i}].subjects[{j}].stream");
                        (&s.subject, s.stream.as_deref(), field)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (at, stream, field) in named {
                let Some(stream) = stream else { continue };
                if graph.stream_id(stream).is_none() {
                    graph
                        .declare_stream(stream, Bounds::default(), None)
                        .map_err(|error| self.error_at(at, field, error.to_string()))?;
                }
            }
        }
        let mut specs = Vec::with_capacity(self.nodes.len() + self.constraints.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let policy = self.policy(&node.policy, format!("nodes[{i}].policy"))?;
            let frame_node = dav2d_frames::nodes::FRAME_NODES.contains(&node.kind.value.as_str());
            let python = node.kind.value == "python";
            self.python_fields(i, node, python)?;
            let window = self.node_window(i, node)?;
            if let (Some(text), true) = (&node.window, frame_node || node.kind.value == "processor")
            {
                return Err(self.error_at(
                    text,
                    format!("nodes[{i}].window"),
                    format!(
                        "{} reads the newest frame; remove `window`",
                        node.kind.value
                    ),
                ));
            }
            let input = &node.inputs[0];
            let spec = if python {
                self.python_node(i, node, window)?
            } else if node.kind.value == "processor" {
                let settings = self.processor_settings(i, node)?;
                let processor = dav2d_infer::Processor::new(settings).map_err(|e| {
                    self.error_at(&node.name, format!("nodes[{i}].processor"), e.to_string())
                })?;
                let logic = dav2d_infer::ProcessorNode::new(processor);
                NodeSpec::custom(
                    node.name.value.clone(),
                    vec![dav2d_core::InputSpec::new(input.value.clone(), 1)],
                    Box::new(logic),
                )
            } else if frame_node {
                let logic = self.frame_node(i, node)?;
                let window = logic.window();
                NodeSpec::custom(
                    node.name.value.clone(),
                    vec![dav2d_core::InputSpec::new(input.value.clone(), window)],
                    Box::new(logic),
                )
            } else {
                self.builtin_node(i, node, window)?
            };
            let mut spec = spec.with_policy(policy).with_priority(node.priority);
            spec.deadband = node.deadband;
            // A frame node reads a whole frame: off the wave by default; a
            // processor node always is.
            spec.offload = node.offload.unwrap_or(frame_node) || node.kind.value == "processor";
            specs.push(spec);
        }
        for (i, constraint) in self.constraints.iter().enumerate() {
            let spec = self.constraint_spec(i, constraint)?;
            let policy = self.policy(&constraint.policy, format!("constraints[{i}].policy"))?;
            specs.push(NodeSpec {
                name: constraint.name.value.clone(),
                inputs: vec![InputSpec {
                    policy,
                    ..InputSpec::new(constraint.input.value.clone(), 1)
                }],
                logic: LogicSpec::Constraint(spec),
                priority: constraint.priority,
                deadband: None,
                offload: false,
            });
        }
        graph
            .register_all(specs)
            .map_err(|error| self.locate(error))?;
        self.check_outputs(graph)
    }

    /// Finds where in the file a graph error comes from.
    fn locate(&self, error: GraphError) -> ConfigError {
        let message = error.to_string();
        let by_name = |name: &str| -> Option<ConfigError> {
            if let Some((i, node)) = self
                .nodes
                .iter()
                .enumerate()
                .find(|(_, n)| n.name.value == name)
            {
                return Some(self.error_at(
                    &node.name,
                    format!("nodes[{i}].name"),
                    message.clone(),
                ));
            }
            self.constraints
                .iter()
                .enumerate()
                .find(|(_, c)| c.name.value == name)
                .map(|(i, c)| {
                    self.error_at(&c.name, format!("constraints[{i}].name"), message.clone())
                })
        };
        let by_input = |node: &str, input: &str| -> Option<ConfigError> {
            let written = self.nodes.iter().enumerate().find_map(|(i, n)| {
                let j = n.inputs.iter().position(|x| x.value == input)?;
                (n.name.value == node).then_some((i, n, j))
            });
            if let Some((i, n, j)) = written {
                return Some(self.error_at(
                    &n.inputs[j],
                    Self::input_field(i, n, j),
                    message.clone(),
                ));
            }
            self.constraints
                .iter()
                .enumerate()
                .find(|(_, c)| c.name.value == node && c.input.value == input)
                .map(|(i, c)| {
                    self.error_at(&c.input, format!("constraints[{i}].input"), message.clone())
                })
        };
        let located = match &error {
            GraphError::UnknownInput { node, input, .. } => by_input(node, input),
            GraphError::ZeroWindow { node, input } => by_input(node, input),
            GraphError::Cycle { path } => path.first().and_then(|name| by_name(name)),
            GraphError::DuplicateName { name, .. } => {
                // Point at the second definition.
                let names = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (&n.name, format!("nodes[{i}].name")))
                    .chain(
                        self.constraints
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (&c.name, format!("constraints[{i}].name"))),
                    );
                let mut matching = names.filter(|(n, _)| &n.value == name).collect::<Vec<_>>();
                matching
                    .pop()
                    .map(|(n, field)| self.error_at(n, field, message.clone()))
            }
            GraphError::Invalid { node, .. }
            | GraphError::InvalidStream { stream: node, .. }
            | GraphError::UnknownName { name: node, .. } => by_name(node),
        };
        located.unwrap_or_else(|| ConfigError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
        })
    }
}
