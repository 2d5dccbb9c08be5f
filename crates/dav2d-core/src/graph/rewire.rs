//! Re-wiring a running node in place (what a hot reload does when a node's
//! inputs, edge policies, windows, priority, deadband or logic change): the
//! node keeps its place in the evaluation order, its output stream (so its
//! readers are untouched), its keys and a constraint's alert states and
//! timers; it leaves the streams it no longer reads, joins the ones it now
//! reads, and every key it holds or can now see is evaluated again at once
//! in a wave whose transitions carry the cause `reload`.

use super::register::{immediate, node_logic, with_span};
use super::{Graph, NodeLogic, UNRESOLVED};
use crate::error::GraphError;
use crate::ids::{NodeId, StreamId};
use crate::info::NodeKind;
use crate::spec::{EdgePolicy, LogicSpec, NodeSpec};

/// Why a node cannot be re-wired in place.
fn refused(name: &str, why: &str) -> GraphError {
    GraphError::Invalid {
        node: name.to_string(),
        message: format!(
            "{why}; it cannot be re-wired in place (stop and start with the new config)"
        ),
    }
}

impl Graph {
    /// Gives the running node `spec.name` the inputs, priority, deadband and
    /// logic of `spec` (with `keep_logic`, its custom logic stays the one
    /// running, and `spec.logic` is only checked). The node keeps its
    /// output, keys and, when it stays a constraint, each key's alert state
    /// and timers; a built-in keeps its memory when it reads the same
    /// inputs and stays the same built-in. Every input must already exist
    /// and come before the node in evaluation order (an input stream, or a
    /// node registered earlier), so no cycle can form. Offloaded nodes are
    /// refused. Changes nothing on an error. Returns the waves settled.
    pub fn rewire(&mut self, spec: NodeSpec, keep_logic: bool) -> Result<u64, GraphError> {
        let name = spec.name.clone();
        let Some(output) = self.stream_id(&name) else {
            return Err(self.unknown_name(&name));
        };
        let Some(id) = self.streams[output.index()].producer else {
            return Err(refused(&name, "it is an input stream, not a node"));
        };
        if self.nodes[id.index()].offload.is_some() || spec.offload {
            return Err(refused(&name, "it is offloaded (or would be)"));
        }
        if keep_logic && self.nodes[id.index()].kind != NodeKind::Custom {
            return Err(refused(&name, "only custom logic can be kept as it runs"));
        }
        self.validate_spec(&spec)?;
        let inputs = self.resolve_earlier(id, &spec)?;

        // Leave the old inputs, then join the new ones.
        let old: Vec<(StreamId, EdgePolicy, Option<i64>)> = (self.nodes[id.index()].inputs.iter())
            .map(|i| (i.stream, i.policy, i.span))
            .collect();
        let mut left: Vec<StreamId> = old.iter().map(|(s, _, _)| *s).collect();
        left.dedup();
        for stream in left {
            self.detach(stream, id);
        }
        let mut node_inputs = Vec::with_capacity(inputs.len());
        let mut consumers = Vec::with_capacity(inputs.len());
        for (index, (&stream, input)) in inputs.iter().zip(&spec.inputs).enumerate() {
            let (node_input, consumer) = self.attach_input(id, index, stream, input, &spec.logic);
            node_inputs.push(node_input);
            consumers.push((stream, consumer));
        }
        let same_inputs = old.len() == node_inputs.len()
            && (old.iter().zip(&node_inputs)).all(|((s, p, span), new)| {
                *s == new.stream && *p == new.policy && *span == new.span
            });

        // The logic, its description and what each key keeps of it.
        let span = spec.inputs.iter().find_map(|i| i.span_ns);
        let node = &mut self.nodes[id.index()];
        let was_constraint = node.kind == NodeKind::Constraint;
        let kept_memory = match (&node.logic, &spec.logic) {
            (NodeLogic::Builtin(old), LogicSpec::Builtin(new)) => {
                same_inputs && std::mem::discriminant(old) == std::mem::discriminant(new)
            }
            _ => false,
        };
        if keep_logic {
            let base = (node.description.split_once(" over "))
                .map_or(node.description.clone(), |(logic, _)| logic.to_string());
            node.description = with_span(base, span);
        } else {
            (node.kind, node.logic, node.description) = node_logic(spec.logic, false, span);
        }
        let keeps_states = was_constraint && node.kind == NodeKind::Constraint;
        let now = self.clock.now_ns();
        for key in &mut node.keys {
            key.inputs = vec![UNRESOLVED; node_inputs.len()].into_boxed_slice();
            if !kept_memory {
                key.memory = None;
            }
            if !keeps_states {
                key.constraint = crate::constraint::ConstraintKeyState {
                    last_update_ns: now,
                    ..Default::default()
                };
            }
        }
        node.immediate = immediate(node.kind, false, &node_inputs);
        node.inputs = node_inputs;
        node.priority = spec.priority;
        node.deadband = spec.deadband;

        // Every key its new inputs hold gets its place; then every key again.
        for (stream, consumer) in consumers {
            let c = self.streams[stream.index()].consumers[consumer];
            for slot in 0..self.streams[stream.index()].slots.len() as u32 {
                if self.streams[stream.index()].slots[slot as usize]
                    .series
                    .count
                    > 0
                {
                    self.resolve_downstream(stream, slot, consumer, c);
                }
            }
        }
        Ok(self.reevaluate_for_reload(id))
    }

    /// The streams `spec`'s inputs name, each an input stream or a node
    /// evaluated before `id`.
    fn resolve_earlier(&self, id: NodeId, spec: &NodeSpec) -> Result<Vec<StreamId>, GraphError> {
        let mut streams = Vec::with_capacity(spec.inputs.len());
        for input in &spec.inputs {
            let Some(stream) = self.stream_id(&input.name) else {
                return Err(GraphError::UnknownInput {
                    node: spec.name.clone(),
                    input: input.name.clone(),
                    hint: crate::error::did_you_mean(
                        &input.name,
                        self.streams.iter().map(|s| &*s.name),
                    ),
                });
            };
            if let Some(producer) = self.streams[stream.index()].producer
                && producer.index() >= id.index()
            {
                return Err(refused(
                    &spec.name,
                    &format!(
                        "its new input '{}' is evaluated after it (registered later)",
                        input.name
                    ),
                ));
            }
            streams.push(stream);
        }
        Ok(streams)
    }

    /// Removes every consumer entry of `node` from `stream`, with its place
    /// in every key's downstream list.
    fn detach(&mut self, stream: StreamId, node: NodeId) {
        let s = &mut self.streams[stream.index()];
        while let Some(at) = s.consumers.iter().rposition(|c| c.node == node) {
            s.consumers.remove(at);
            for slot in &mut s.slots {
                slot.downstream.remove(at);
            }
        }
        s.has_all_consumer = s.consumers.iter().any(|c| c.policy == EdgePolicy::All);
        if s.numeric_reader == Some(node) {
            let nodes = &self.nodes;
            s.numeric_reader = (s.consumers.iter()).map(|c| c.node).find(|n| {
                matches!(
                    nodes[n.index()].logic,
                    NodeLogic::Builtin(_) | NodeLogic::Constraint(_)
                )
            });
        }
    }
}
