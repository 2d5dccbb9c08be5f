//! A [`Spec`] built into a graph: the one function that turns the data a
//! spec is (`dav2d check --format json`, Python's `Graph.spec()`, a reload's
//! new spec) back into streams, nodes and constraints.
//!
//! Built-ins and constraints are rebuilt from the logic their entry names
//! (`moving_average(n=5)`, `constraint(above trip=80 reset=75 for=5s)`),
//! read back by `dav2d_core`'s description parsers. Logic that lives
//! outside the engine (a Python callable, a frame node, a processor) cannot
//! come from data alone: the caller's resolver supplies it by entry, and an
//! entry it cannot supply is an error naming the entry.

use std::fmt;

use dav2d_core::{
    Bounds, CustomLogic, EdgePolicy, Graph, GraphError, InputSpec, LatePolicy, LogicSpec, NodeSpec,
    ValueType,
};

use crate::spec::{NodeEntry, Spec, StreamSpec};

/// What supplies the logic a spec's entry names but cannot carry (Python,
/// frame and processor nodes): `None` when there is none for the entry.
pub type Resolve<'a> = dyn FnMut(&NodeEntry) -> Option<Box<dyn CustomLogic>> + 'a;

/// Why a spec does not build, with the field at fault (`nodes[3].logic`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpecError {
    /// The field, e.g. `streams[0].type`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

/// Seconds written as data, in ns: at least 0 and at most
/// [`dav2d_core::MAX_DURATION`].
fn seconds_to_ns(seconds: f64, field: &str) -> Result<i64, String> {
    let most = dav2d_core::MAX_DURATION.as_secs_f64();
    if !(seconds >= 0.0 && seconds <= most) {
        return Err(format!(
            "{field} must be between 0 and {most} seconds, got {seconds}"
        ));
    }
    Ok((seconds * 1e9).round() as i64)
}

impl StreamSpec {
    /// Declares the stream in `graph` with its bounds, history, type and
    /// late policy.
    pub fn declare(&self, graph: &mut Graph) -> Result<(), SpecError> {
        let at = |field: &str, message: String| SpecError {
            field: field.to_string(),
            message,
        };
        let bounds = Bounds {
            min: self.min,
            max: self.max,
            finite_only: self.finite_only,
        };
        let value_type = ValueType::from_name(&self.value_type).ok_or_else(|| {
            let known: Vec<&str> = ValueType::ALL.iter().map(|t| t.as_str()).collect();
            at(
                "type",
                format!(
                    "unknown type '{}'; expected one of: {}",
                    self.value_type,
                    known.join(", ")
                ),
            )
        })?;
        let late = self.late_policy().map_err(|m| at("late", m))?;
        graph
            .declare_stream(&self.name, bounds, Some(self.keep))
            .map_err(|e| at("name", e.to_string()))?;
        graph
            .declare_type(&self.name, value_type)
            .map_err(|e| at("type", e.to_string()))?;
        graph
            .set_late_policy(&self.name, late)
            .map_err(|e| at("late", e.to_string()))
    }

    /// The stream's late policy, as the engine takes it.
    fn late_policy(&self) -> Result<LatePolicy, String> {
        let allowed_ns = (self.allowed_lateness_seconds)
            .map(|s| seconds_to_ns(s, "allowed_lateness_seconds"))
            .transpose()?;
        match (self.late.as_str(), allowed_ns) {
            ("drop", None) => Ok(LatePolicy::Drop),
            ("insert", allowed) => Ok(LatePolicy::Insert {
                allowed_ns: allowed.unwrap_or(0),
            }),
            ("drop", Some(_)) => Err(
                "allowed_lateness_seconds needs late: insert (late samples are dropped otherwise)"
                    .to_string(),
            ),
            (other, _) => Err(format!(
                "unknown late policy '{other}'; expected drop or insert"
            )),
        }
    }
}

impl NodeEntry {
    /// The entry as the engine takes it: a built-in or constraint from its
    /// logic text, anything else from `custom`.
    pub fn node_spec(&self, custom: &mut Resolve<'_>) -> Result<NodeSpec, SpecError> {
        let at = |field: &str, message: String| SpecError {
            field: field.to_string(),
            message,
        };
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for (j, input) in self.inputs.iter().enumerate() {
            let policy = EdgePolicy::from_name(&input.policy)
                .map_err(|m| at(&format!("inputs[{j}].policy"), m))?;
            let span_ns = (input.span_seconds)
                .map(|s| seconds_to_ns(s, "span_seconds"))
                .transpose()
                .map_err(|m| at(&format!("inputs[{j}].span_seconds"), m))?;
            inputs.push(InputSpec {
                policy,
                span_ns,
                ..InputSpec::new(input.name.clone(), input.window)
            });
        }
        let logic = match self.kind.as_str() {
            "constraint" => LogicSpec::Constraint(
                dav2d_core::constraint_from_description(&self.logic)
                    .map_err(|m| at("logic", m))?,
            ),
            "node" => match dav2d_core::builtin_from_description(&self.logic) {
                Ok(Some(builtin)) => LogicSpec::Builtin(builtin),
                Ok(None) => LogicSpec::Custom(custom(self).ok_or_else(|| {
                    at(
                        "logic",
                        format!(
                            "'{}' is no built-in, and its logic ({}) cannot be rebuilt from data; register it from its code (a Python node with Node(...).register(), a frame or processor node in the YAML config)",
                            self.name, self.logic
                        ),
                    )
                })?),
                Err(message) => return Err(at("logic", message)),
            },
            other => {
                return Err(at(
                    "kind",
                    format!("unknown kind '{other}'; expected node or constraint"),
                ));
            }
        };
        Ok(NodeSpec {
            name: self.name.clone(),
            inputs,
            logic,
            priority: self.priority,
            deadband: self.deadband,
            offload: self.offload,
        })
    }
}

impl Spec {
    /// Declares the spec's streams and registers its nodes and constraints
    /// into `graph` (the components are the runtime's to start): what a
    /// spec held as data runs as. Every entry is checked as a config's is
    /// (names, types, windows, parameters, cycles, unknown inputs with the
    /// closest name); an error names its field.
    pub fn build(&self, graph: &mut Graph, custom: &mut Resolve<'_>) -> Result<(), SpecError> {
        for (i, stream) in self.streams.iter().enumerate() {
            stream.declare(graph).map_err(|e| SpecError {
                field: format!("streams[{i}].{}", e.field),
                message: e.message,
            })?;
        }
        let mut specs = Vec::with_capacity(self.nodes.len());
        for (i, entry) in self.nodes.iter().enumerate() {
            let spec = entry.node_spec(custom).map_err(|e| SpecError {
                field: format!("nodes[{i}].{}", e.field),
                message: e.message,
            })?;
            specs.push(spec);
        }
        graph
            .register_all(specs)
            .map_err(|error| self.locate(error))?;
        Ok(())
    }

    /// The field a graph error comes from.
    fn locate(&self, error: GraphError) -> SpecError {
        let node = match &error {
            GraphError::UnknownInput { node, .. }
            | GraphError::ZeroWindow { node, .. }
            | GraphError::Invalid { node, .. }
            | GraphError::DuplicateName { name: node, .. }
            | GraphError::InvalidStream { stream: node, .. }
            | GraphError::UnknownName { name: node, .. } => Some(node.as_str()),
            GraphError::Cycle { path } => path.first().map(String::as_str),
        };
        let field = node
            .and_then(|name| self.nodes.iter().rposition(|n| n.name == name))
            .map_or_else(|| "nodes".to_string(), |i| format!("nodes[{i}]"));
        SpecError {
            field,
            message: error.to_string(),
        }
    }
}
