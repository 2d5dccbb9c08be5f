//! Changing a running node's parameters in place (what a hot reload does
//! with a threshold, a reset level, `for:`, alpha, a window): the node keeps
//! its keys, windows, a constraint's states and timers, and every key it
//! holds is evaluated again at once with the new parameters, so a key now
//! on the other side of a new threshold transitions once, its transition
//! marked as caused by the reload.

use super::{Graph, NodeLogic};
use crate::constraint::ConstraintSpec;
use crate::error::GraphError;
use crate::logic::Builtin;
use crate::spec::{LogicSpec, NodeSpec};

/// Why a node cannot be retuned in place.
fn refused(name: &str, why: &str) -> GraphError {
    GraphError::Invalid {
        node: name.to_string(),
        message: format!("{why}; it cannot change in place (stop and start with the new config)"),
    }
}

impl Graph {
    /// Gives the built-in or constraint `name` new parameters of the same
    /// kind (`logic`), keeping its state: each key's window and a
    /// constraint's states and timers (a built-in's memory too, unless the
    /// built-in itself changes, as `ewma` to `moving_average`). Every key is
    /// then evaluated again with the new parameters in a wave of its own,
    /// whose transitions carry the cause `reload`. Offloaded and custom
    /// nodes, and time windows, are refused.
    pub fn retune(&mut self, name: &str, logic: LogicSpec) -> Result<u64, GraphError> {
        let Some(stream) = self.stream_id(name) else {
            return Err(self.unknown_name(name));
        };
        let Some(id) = self.streams[stream.index()].producer else {
            return Err(refused(name, "it is an input stream, not a node"));
        };
        let node = &self.nodes[id.index()];
        if node.offload.is_some() {
            return Err(refused(name, "it is offloaded"));
        }
        if node.inputs.len() != 1 || node.inputs[0].span.is_some() {
            return Err(refused(name, "it reads a time window or several inputs"));
        }
        let input = node.inputs[0].stream;
        let input_name = self.streams[input.index()].name.to_string();
        // The new parameters pass the checks registration makes.
        let probe = match &logic {
            LogicSpec::Builtin(builtin) => NodeSpec::builtin(name, input_name, *builtin),
            LogicSpec::Constraint(spec) => NodeSpec::constraint(name, input_name, *spec),
            LogicSpec::Custom(_) => return Err(refused(name, "its logic is custom")),
        };
        self.validate_spec(&probe)?;
        match (&self.nodes[id.index()].logic, probe.logic) {
            (NodeLogic::Builtin(old), LogicSpec::Builtin(new)) => {
                let old: Builtin = *old;
                let window = new.window().max(1);
                self.ensure_capacity(input, window);
                let node = &mut self.nodes[id.index()];
                node.inputs[0].window = window;
                if std::mem::discriminant(&old) != std::mem::discriminant(&new) {
                    for key in &mut node.keys {
                        key.memory = None;
                    }
                }
                node.description = new.to_string();
                node.logic = NodeLogic::Builtin(new);
            }
            (NodeLogic::Constraint(_), LogicSpec::Constraint(new)) => {
                let new: ConstraintSpec = new;
                let node = &mut self.nodes[id.index()];
                node.description = crate::described::describe_constraint(&new);
                node.logic = NodeLogic::Constraint(new);
            }
            _ => return Err(refused(name, "its kind changes (a built-in, a constraint)")),
        }
        Ok(self.reevaluate_for_reload(id))
    }

    /// Queues every key of node `id` and runs a wave of its own whose
    /// transitions carry the cause `reload` (after its parameters or wiring
    /// changed); returns the waves settled.
    pub(super) fn reevaluate_for_reload(&mut self, id: super::NodeId) -> u64 {
        let node = &mut self.nodes[id.index()];
        let wave = self.wave;
        for (out, queued) in node.queued.iter_mut().enumerate() {
            if *queued != wave {
                *queued = wave;
                node.pending.push(out as u32);
            }
        }
        if !node.pending.is_empty() {
            self.pending.insert(id.index());
        }
        self.cause = Some("reload");
        let settled = self.run_wave();
        self.cause = None;
        self.republish_description();
        settled
    }
}
