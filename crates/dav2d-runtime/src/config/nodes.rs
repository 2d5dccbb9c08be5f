//! The nodes of the config: an entry as written (`NodeConfig`, read field
//! by field so each is located on its line and a misspelt one names the
//! closest valid one), and its conversion into a core `NodeSpec` by kind:
//! a built-in, a frame node, a processor node or a Python function.

use dav2d_core::{Builtin, BuiltinError, InputSpec, NodeSpec, Window, WindowField};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Config, ConfigError};

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

impl Config {
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
                BuiltinError::WindowAndN { .. } | BuiltinError::WindowNotRead { .. } => {
                    match &node.window {
                        Some(text) => {
                            self.error_at(text, format!("nodes[{i}].window"), error.to_string())
                        }
                        None => self.error_at(&node.kind, format!("nodes[{i}]"), error.to_string()),
                    }
                }
            }
        })
    }

    /// The field an input of a node was written in.
    pub(crate) fn input_field(i: usize, node: &NodeConfig, j: usize) -> String {
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

    /// A node's window and its cap, read by core's [`Window::parse`] (the
    /// one reader Python's `window=` uses too), errors at their lines.
    pub(crate) fn node_window(
        &self,
        i: usize,
        node: &NodeConfig,
    ) -> Result<Option<Window>, ConfigError> {
        let written = node.window.as_ref().map(|w| w.value.as_str());
        let cap = node.max_samples.as_ref().map(|m| m.value);
        Window::parse(written, cap).map_err(|(field, message)| {
            let (at, name) = match (field, &node.window, &node.max_samples) {
                (WindowField::MaxSamples, _, Some(cap)) => (&cap.referenced, "max_samples"),
                (_, Some(window), _) => (&window.referenced, "window"),
                _ => (&node.name.referenced, "window"),
            };
            ConfigError {
                file: self.file.clone(),
                line: at.line(),
                column: at.column(),
                field: format!("nodes[{i}].{name}"),
                message,
            }
        })
    }

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

    /// A built-in node, over its window when it has one.
    pub(crate) fn builtin_node(
        &self,
        i: usize,
        node: &NodeConfig,
        window: Option<Window>,
    ) -> Result<NodeSpec, ConfigError> {
        let samples = match window {
            None => None,
            Some(Window::Count(count)) => Some(count),
            Some(Window::Span { cap, .. }) => Some(cap),
        };
        let builtin = self.builtin(i, node, samples)?;
        let spec = NodeSpec::builtin(
            node.name.value.clone(),
            node.inputs[0].value.clone(),
            builtin,
        );
        Ok(match window {
            Some(Window::Span { ns, cap }) => spec.with_span(ns, cap),
            Some(Window::Count(count)) => {
                let mut spec = spec;
                spec.inputs[0].window = count;
                spec
            }
            None => spec,
        })
    }

    /// A `kind: python` node: the function `logic:` names over its inputs.
    pub(crate) fn python_node(
        &self,
        i: usize,
        node: &NodeConfig,
        window: Option<Window>,
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
                    Some(Window::Count(count)) => InputSpec::new(name, count),
                    Some(Window::Span { ns, cap }) => InputSpec::over(name, ns, cap),
                }
            })
            .collect();
        Ok(NodeSpec::custom(node.name.value.clone(), inputs, made))
    }
}
