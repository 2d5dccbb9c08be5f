//! Removing a node from a running graph (what a hot reload does with a node
//! or constraint the new config no longer has): its logic is never run
//! again, its name is free for a new node, and reading it says it was
//! removed. Its slot stays where it is (nodes and streams are indices).

use super::{Graph, NodeLogic};
use crate::error::GraphError;

impl Graph {
    /// Retires the node or constraint `name`, which no other live node may
    /// read (retire its readers first). Its output's keys and values are
    /// gone from every read; a node registered later may take its name.
    pub fn retire(&mut self, name: &str) -> Result<(), GraphError> {
        let Some(stream) = self.stream_id(name) else {
            return Err(self.unknown_name(name));
        };
        let Some(id) = self.streams[stream.index()].producer else {
            return Err(GraphError::Invalid {
                node: name.to_string(),
                message: "it is an input stream, not a node; streams change only with a restart"
                    .to_string(),
            });
        };
        let readers: Vec<String> = (self.streams[stream.index()].consumers.iter())
            .filter(|c| !matches!(self.nodes[c.node.index()].logic, NodeLogic::Retired))
            .map(|c| self.nodes[c.node.index()].name.to_string())
            .collect();
        if !readers.is_empty() {
            return Err(GraphError::Invalid {
                node: name.to_string(),
                message: format!("{} still read it; remove those too", readers.join(", ")),
            });
        }
        let node = &mut self.nodes[id.index()];
        node.logic = NodeLogic::Retired;
        node.immediate = false;
        node.pending.clear();
        node.description = format!("{} (removed)", node.description);
        self.stream_ids.remove(name);
        self.republish_description();
        Ok(())
    }
}
