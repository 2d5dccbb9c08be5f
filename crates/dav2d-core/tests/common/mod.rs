//! Helpers of the engine tests: graphs on a manual clock and custom logic
//! from closures.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test file uses some.

use std::sync::Arc;

use dav2d_core::{
    CustomLogic, Evaluation, Graph, GraphOptions, InputSpec, ManualClock, NodeSpec, Outcome,
};

pub const SECOND: i64 = 1_000_000_000;

pub fn graph() -> (Graph, ManualClock) {
    let clock = ManualClock::new(1_000 * SECOND);
    (
        Graph::new(GraphOptions::default(), Arc::new(clock.clone())),
        clock,
    )
}

pub fn strict_graph() -> Graph {
    let options = GraphOptions {
        auto_create_streams: false,
        ..GraphOptions::default()
    };
    Graph::new(options, Arc::new(ManualClock::new(0)))
}

pub fn latest_f64(graph: &Graph, name: &str, key: &str) -> Option<f64> {
    graph
        .latest(name, key)
        .ok()
        .flatten()
        .and_then(|r| r.sample)
        .and_then(|s| s.value.as_f64())
}

/// Custom logic from a closure over the input windows' numbers.
pub struct FnLogic<F>(pub F);

impl<F> CustomLogic for FnLogic<F>
where
    F: FnMut(&str, &[Vec<f64>]) -> Outcome + Send,
{
    fn evaluate_batch(&mut self, _node: &str, batch: &mut [Evaluation]) {
        for item in batch {
            let windows: Vec<Vec<f64>> = item.inputs.iter().map(|w| w.numbers().to_vec()).collect();
            item.outcome = (self.0)(&item.key, &windows);
        }
    }

    fn describe(&self) -> String {
        "test".to_string()
    }
}

pub fn custom<F>(name: &str, inputs: &[(&str, usize)], f: F) -> NodeSpec
where
    F: FnMut(&str, &[Vec<f64>]) -> Outcome + Send + 'static,
{
    let inputs = inputs.iter().map(|(n, w)| InputSpec::new(*n, *w)).collect();
    NodeSpec::custom(name, inputs, Box::new(FnLogic(f)))
}
