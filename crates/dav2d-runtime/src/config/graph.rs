//! The graph part of the config: streams, nodes and constraints, converted
//! by hand into core specs and registered, with graph errors mapped back to
//! the line that caused them.

use std::time::Duration;

use dav2d_core::{
    Bounds, ConstraintSpec, Direction, EdgePolicy, Graph, GraphError, InputSpec, LogicSpec,
    NodeSpec, ValueType,
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
            Some(p) => EdgePolicy::from_name(&p.value).map_err(|m| self.error_at(p, field, m)),
        }
    }

    /// A frame node (`mean_luma`, `motion`, `grayscale`, `downscale` with
    /// `width` and `height`).
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
        // The streams sources name are declared as if written in `streams:`;
        // a frame source's carry frames.
        for (i, source) in self.sources.iter().enumerate() {
            for declared in source.section.declares(&format!("sources[{i}]")) {
                self.declare_for_source(graph, &declared)?;
            }
        }
        let specs = self.node_specs()?;
        graph
            .register_all(specs)
            .map_err(|error| self.locate(error))?;
        self.check_outputs(graph)?;
        self.check_window_budget(graph)
    }

    /// The nodes and constraints as the engine takes them, in config order
    /// (what [`Config::build`] registers; a hot reload retunes or adds from
    /// them).
    pub fn node_specs(&self) -> Result<Vec<NodeSpec>, ConfigError> {
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
        Ok(specs)
    }

    /// Declares a stream a source names (see [`super::SourceSection::declares`]):
    /// a plain one if the graph lacks it; a frame stream as `type: frame`,
    /// refusing one that `streams:` declares numeric.
    fn declare_for_source(
        &self,
        graph: &mut Graph,
        declared: &super::Declared<'_>,
    ) -> Result<(), ConfigError> {
        let (name, at) = (declared.stream, declared.written);
        let located = |message: String| self.error_at(at, declared.field.clone(), message);
        if !declared.frames {
            if graph.stream_id(name).is_none() {
                graph
                    .declare_stream(name, Bounds::default(), None)
                    .map_err(|error| located(error.to_string()))?;
            }
            return Ok(());
        }
        // A frame stream declared in `streams:` takes frames only if it says
        // `type: frame` (or `any`) or nothing about values.
        let written = self.streams.iter().find(|s| s.name.value == name);
        if let Some(stream) = written {
            let typed = stream.value_type.as_ref().map(|t| t.value.trim());
            let numeric = stream.min.is_some() || stream.max.is_some() || stream.finite_only;
            if numeric || !matches!(typed, None | Some("frame") | Some("any")) {
                let said = match typed {
                    Some(t) => format!("declared `type: {t}`"),
                    None => "declared with numeric bounds".to_string(),
                };
                return Err(located(format!(
                    "a frames source makes frames, but stream '{name}' is {said}; declare it `type: frame` (no min, max or finite_only) or feed another stream"
                )));
            }
        }
        if written.is_some_and(|s| s.value_type.is_some()) {
            return Ok(());
        }
        graph
            .declare_type(name, dav2d_core::ValueType::Frame)
            .map_err(|error| located(error.to_string()))
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
