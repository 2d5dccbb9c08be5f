//! Registration: validating node specs, resolving inputs, the topological
//! order (priorities, cycle paths) and adding nodes and their keys.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::*;
use crate::described::{describe_constraint, describe_span};
use crate::error::{GraphError, did_you_mean};
use crate::ids::NodeId;
use crate::logic::Builtin;
use crate::value::ValueType;

impl Graph {
    /// Registers one node or constraint.
    pub fn register(&mut self, spec: NodeSpec) -> Result<NodeId, GraphError> {
        let ids = self.register_all(vec![spec])?;
        Ok(ids[0])
    }

    /// Registers several nodes at once. They may reference each other in any
    /// order; they are sorted topologically (higher priority first among
    /// independent nodes) and a cycle is reported with its path. Nothing is
    /// registered unless everything is valid.
    pub fn register_all(&mut self, specs: Vec<NodeSpec>) -> Result<Vec<NodeId>, GraphError> {
        let ids = self.register_batch(specs)?;
        self.republish_description();
        Ok(ids)
    }

    pub(super) fn register_batch(
        &mut self,
        specs: Vec<NodeSpec>,
    ) -> Result<Vec<NodeId>, GraphError> {
        let (order, new_streams) = self.plan_batch(&specs)?;
        Ok(self.apply_batch(specs, &order, new_streams))
    }

    /// Checks `spec` as registration would, except whether its inputs
    /// exist yet: its shape, its parameters, and that its name is free.
    pub fn check(&self, spec: &NodeSpec) -> Result<(), GraphError> {
        self.validate_spec(spec)?;
        match self.stream_id(&spec.name) {
            Some(id) => Err(GraphError::DuplicateName {
                name: spec.name.clone(),
                taken_by: self.taken_by(id),
            }),
            None => Ok(()),
        }
    }

    /// Whether every input of `spec` already names a stream, a node or a
    /// constraint (its own name aside, which is a cycle [`Self::check`] reports).
    pub fn inputs_exist(&self, spec: &NodeSpec) -> bool {
        spec.inputs
            .iter()
            .all(|input| input.name == spec.name || self.stream_id(&input.name).is_some())
    }

    /// Registers nodes that were given before their inputs existed, in any
    /// order (as [`Self::register_all`]). One that cannot be registered (a
    /// cycle, an input that is still unknown while streams must be declared,
    /// a name taken meanwhile) is left out with its error (a cycle: every
    /// node on it), and the rest are registered; the errors are returned,
    /// first found first.
    pub fn register_waiting(&mut self, mut specs: Vec<NodeSpec>) -> Vec<GraphError> {
        let mut errors = Vec::new();
        while !specs.is_empty() {
            match self.plan_batch(&specs) {
                Ok((order, new_streams)) => {
                    self.apply_batch(specs, &order, new_streams);
                    self.republish_description();
                    break;
                }
                Err(error) => {
                    // A cycle leaves out every node on it, so none of them
                    // becomes a stream the others read.
                    let culprits: Vec<String> = match &error {
                        GraphError::Cycle { path } => path.clone(),
                        other => other.node().map(str::to_string).into_iter().collect(),
                    };
                    let before = specs.len();
                    specs.retain(|spec| !culprits.contains(&spec.name));
                    errors.push(error);
                    if specs.len() == before {
                        break;
                    }
                }
            }
        }
        errors
    }

    /// Validates `specs` and resolves their inputs (existing names, names in
    /// the batch, or streams to create): the order to add them in and the
    /// new streams. Changes nothing.
    fn plan_batch(&self, specs: &[NodeSpec]) -> Result<(Vec<usize>, Vec<String>), GraphError> {
        let mut batch_index: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, spec) in specs.iter().enumerate() {
            self.check(spec)?;
            if batch_index.insert(&spec.name, i).is_some() {
                return Err(GraphError::DuplicateName {
                    name: spec.name.clone(),
                    taken_by: "another node in the same registration".to_string(),
                });
            }
        }
        // Resolve inputs: existing names, names in this batch, or new streams.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        let mut new_streams: Vec<String> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for input in &spec.inputs {
                if let Some(&j) = batch_index.get(input.name.as_str()) {
                    deps[i].push(j);
                } else if self.stream_id(&input.name).is_none() {
                    if !self.options.auto_create_streams {
                        let known = self
                            .streams
                            .iter()
                            .map(|s| &*s.name)
                            .chain(specs.iter().map(|s| s.name.as_str()));
                        return Err(GraphError::UnknownInput {
                            node: spec.name.clone(),
                            input: input.name.clone(),
                            hint: did_you_mean(&input.name, known),
                        });
                    }
                    if !new_streams.contains(&input.name) {
                        new_streams.push(input.name.clone());
                    }
                }
            }
        }
        let order = topological_order(specs, &deps)?;
        Ok((order, new_streams))
    }

    /// Adds a planned batch ([`Self::plan_batch`]).
    fn apply_batch(
        &mut self,
        specs: Vec<NodeSpec>,
        order: &[usize],
        new_streams: Vec<String>,
    ) -> Vec<NodeId> {
        for name in new_streams {
            self.add_stream(&name, None, Bounds::default());
            self.guessed.push(Arc::from(name.as_str()));
        }
        let mut slots: Vec<Option<NodeSpec>> = specs.into_iter().map(Some).collect();
        let mut ids = vec![NodeId(0); slots.len()];
        for &i in order {
            if let Some(spec) = slots[i].take() {
                ids[i] = self.add_node(spec);
            }
        }
        ids
    }

    pub(super) fn validate_spec(&self, spec: &NodeSpec) -> Result<(), GraphError> {
        let invalid = |message: String| GraphError::Invalid {
            node: spec.name.clone(),
            message,
        };
        if spec.offload {
            match &spec.logic {
                LogicSpec::Constraint(_) => {
                    return Err(invalid(
                        "a constraint cannot be offloaded; it is cheap and its timers run in the engine"
                            .to_string(),
                    ));
                }
                LogicSpec::Builtin(Builtin::Ewma { .. }) => {
                    return Err(invalid(
                        "ewma keeps its memory in the engine and cannot be offloaded".to_string(),
                    ));
                }
                _ => {}
            }
        }
        if !matches!(spec.logic, LogicSpec::Custom(_)) {
            for input in &spec.inputs {
                let declared = self
                    .stream_id(&input.name)
                    .and_then(|id| self.streams[id.index()].declared_type);
                if let Some(declared) = declared
                    && !matches!(declared, ValueType::Number | ValueType::Any)
                {
                    return Err(invalid(format!(
                        "it needs numbers, but stream '{}' is declared to take {} values",
                        input.name,
                        declared.as_str()
                    )));
                }
            }
        }
        if spec.name.is_empty() {
            return Err(invalid("a node needs a non-empty name".to_string()));
        }
        if spec.inputs.is_empty() {
            return Err(invalid("a node needs at least one input".to_string()));
        }
        for input in &spec.inputs {
            if let Some(span) = input.span_ns {
                if span <= 0 {
                    return Err(invalid(format!(
                        "a time window on '{}' must be longer than 0, got {span} ns",
                        input.name
                    )));
                }
                if input.window == 0 || input.window >= MAX_WINDOW {
                    return Err(invalid(format!(
                        "max_samples of the time window on '{}' must be from 1 to {}, got {}",
                        input.name,
                        MAX_WINDOW - 1,
                        input.window
                    )));
                }
            }
            if input.window == 0 {
                return Err(GraphError::ZeroWindow {
                    node: spec.name.clone(),
                    input: input.name.clone(),
                });
            }
            if input.window > MAX_WINDOW {
                return Err(invalid(format!(
                    "a window of {} samples on '{}' is more than the {MAX_WINDOW} a key can keep",
                    input.window, input.name
                )));
            }
            if input.name == spec.name {
                return Err(GraphError::Cycle {
                    path: vec![spec.name.clone(), spec.name.clone()],
                });
            }
        }
        if let Some(deadband) = spec.deadband
            && !(deadband >= 0.0 && deadband.is_finite())
        {
            return Err(invalid(format!(
                "deadband must be a finite number >= 0, got {deadband}"
            )));
        }
        match &spec.logic {
            LogicSpec::Builtin(builtin) => {
                builtin.validate().map_err(invalid)?;
                if !builtin.reads_window() && spec.inputs.iter().any(|i| i.span_ns.is_some()) {
                    return Err(invalid(format!(
                        "{} reads only the newest sample; a time window does not apply to it",
                        builtin.kind()
                    )));
                }
                if spec.inputs.len() != 1 {
                    return Err(invalid(format!(
                        "{} reads exactly one input, got {}",
                        builtin.kind(),
                        spec.inputs.len()
                    )));
                }
            }
            LogicSpec::Constraint(constraint) => {
                constraint.validate().map_err(invalid)?;
                if spec.inputs.len() != 1 {
                    return Err(invalid(format!(
                        "a constraint reads exactly one input, got {}",
                        spec.inputs.len()
                    )));
                }
            }
            LogicSpec::Custom(_) => {}
        }
        Ok(())
    }

    pub(super) fn add_node(&mut self, spec: NodeSpec) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        let output = self.add_stream(&spec.name, Some(id), Bounds::default());
        let mut inputs = Vec::with_capacity(spec.inputs.len());
        let mut first_consumer = None;
        for (index, input) in spec.inputs.iter().enumerate() {
            let Some(stream) = self.stream_id(&input.name) else {
                continue; // Unreachable: inputs were resolved before.
            };
            let (node_input, consumer) = self.attach_input(id, index, stream, input, &spec.logic);
            first_consumer.get_or_insert((stream, consumer));
            inputs.push(node_input);
        }
        let span = spec.inputs.iter().find_map(|i| i.span_ns);
        let (kind, logic, description) = node_logic(spec.logic, spec.offload, span);
        self.nodes.push(Node {
            name: Arc::clone(&self.streams[output.index()].name),
            kind,
            output,
            immediate: immediate(kind, spec.offload, &inputs),
            inputs,
            logic,
            description,
            priority: spec.priority,
            deadband: spec.deadband,
            keys: Vec::new(),
            queued: Vec::new(),
            pending: Vec::new(),
            stats: NodeStats::default(),
            offload: spec.offload.then(offload::Offload::default),
        });
        // Evaluate the new node for every key its inputs already hold.
        if let Some((stream, consumer)) = first_consumer {
            let slot_count = self.streams[stream.index()].slots.len() as u32;
            for slot in 0..slot_count {
                if self.streams[stream.index()].slots[slot as usize]
                    .series
                    .count
                    > 0
                {
                    self.mark_consumer(stream, slot, consumer);
                }
            }
        }
        id
    }

    /// Makes node `id` a consumer of `stream` as its input `index` (a
    /// window long enough for `logic`, the stream's capacity grown to it):
    /// the node's side of the edge and the consumer's place in the stream.
    pub(super) fn attach_input(
        &mut self,
        id: NodeId,
        index: usize,
        stream: StreamId,
        input: &InputSpec,
        logic: &LogicSpec,
    ) -> (NodeInput, usize) {
        let window = match logic {
            LogicSpec::Builtin(builtin) => input.window.max(builtin.window()),
            _ => input.window,
        };
        // A time window keeps one sample more than its cap, to tell a
        // cap that cut the window from one that did not.
        self.ensure_capacity(stream, window + usize::from(input.span_ns.is_some()));
        let s = &mut self.streams[stream.index()];
        if !matches!(logic, LogicSpec::Custom(_)) && s.producer.is_none() {
            s.numeric_reader.get_or_insert(id);
        }
        s.consumers.push(Consumer {
            node: id,
            input: index,
            policy: input.policy,
        });
        s.has_all_consumer |= input.policy == EdgePolicy::All;
        let node_input = NodeInput {
            stream,
            window,
            policy: input.policy,
            span: input.span_ns,
        };
        (node_input, s.consumers.len() - 1)
    }
}

/// What a node runs, as the engine keeps it: its kind, its logic (an
/// offloaded built-in runs as a job) and its description, with the time
/// window `span` (ns) of its inputs if any.
pub(super) fn node_logic(
    logic: LogicSpec,
    offload: bool,
    span: Option<i64>,
) -> (NodeKind, NodeLogic, String) {
    let (kind, logic, description) = match logic {
        LogicSpec::Builtin(builtin) if offload => (
            NodeKind::Builtin,
            NodeLogic::Custom(Box::new(crate::logic::BuiltinJob(builtin))),
            format!("{builtin} (offloaded)"),
        ),
        LogicSpec::Builtin(builtin) => (
            NodeKind::Builtin,
            NodeLogic::Builtin(builtin),
            builtin.to_string(),
        ),
        LogicSpec::Custom(custom) => {
            let description = custom.describe();
            (NodeKind::Custom, NodeLogic::Custom(custom), description)
        }
        LogicSpec::Constraint(constraint) => {
            let description = describe_constraint(&constraint);
            (
                NodeKind::Constraint,
                NodeLogic::Constraint(constraint),
                description,
            )
        }
    };
    (kind, logic, with_span(description, span))
}

/// `description` with the time window `span` (ns) it reads over, if any.
pub(super) fn with_span(description: String, span: Option<i64>) -> String {
    match span {
        Some(span) => format!("{description} over {}", describe_span(span)),
        None => description,
    }
}

/// Whether a node evaluates the moment its input is written: native logic
/// (not offloaded) with a single `all` input, which is already final for
/// the sample (exactly what its wave would compute, without the queueing).
pub(super) fn immediate(kind: NodeKind, offload: bool, inputs: &[NodeInput]) -> bool {
    kind != NodeKind::Custom && !offload && inputs.len() == 1 && inputs[0].policy == EdgePolicy::All
}

/// Kahn's algorithm over a batch, taking higher priority first among ready
/// nodes; reports a cycle with its path.
pub(super) fn topological_order(
    specs: &[NodeSpec],
    deps: &[Vec<usize>],
) -> Result<Vec<usize>, GraphError> {
    let n = specs.len();
    let mut indegree = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, parents) in deps.iter().enumerate() {
        for &parent in parents {
            indegree[i] += 1;
            children[parent].push(i);
        }
    }
    let mut ready: BinaryHeap<(i32, std::cmp::Reverse<usize>)> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| (specs[i].priority, std::cmp::Reverse(i)))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some((_, std::cmp::Reverse(i))) = ready.pop() {
        order.push(i);
        for &child in &children[i] {
            indegree[child] -= 1;
            if indegree[child] == 0 {
                ready.push((specs[child].priority, std::cmp::Reverse(child)));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk parent edges among the unsorted nodes until one repeats.
    let start = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    while let Some(&next) = deps[current].iter().find(|&&p| indegree[p] > 0) {
        if let Some(position) = path.iter().position(|&p| p == next) {
            // In data-flow order, starting from the node listed first.
            let mut cycle: Vec<usize> = path[position..].iter().rev().copied().collect();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(at, _)| at);
            cycle.rotate_left(first);
            let mut cycle: Vec<String> = cycle.iter().map(|&i| specs[i].name.clone()).collect();
            cycle.push(cycle[0].clone());
            return Err(GraphError::Cycle { path: cycle });
        }
        path.push(next);
        current = next;
    }
    Err(GraphError::Cycle {
        path: path.iter().map(|&i| specs[i].name.clone()).collect(),
    })
}
