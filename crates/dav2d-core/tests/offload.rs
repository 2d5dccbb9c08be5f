//! Offloaded nodes, with the test as the worker: a wave hands the node's
//! keys to a job and moves on; newer inputs conflate while the job is out;
//! completing the job writes the output and evaluates its children; the
//! queue serves higher priorities first and lag is measured. No threads,
//! no timing: the clock is manual.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::sync::Arc;

use dav2d_core::{
    Builtin, CustomLogic, Evaluation, Graph, GraphOptions, InputSpec, ManualClock, NodeSpec,
    Outcome, Value,
};

const SECOND: i64 = 1_000_000_000;

/// The newest input times a factor.
struct Times(f64);

impl CustomLogic for Times {
    fn evaluate_batch(&mut self, _node: &str, batch: &mut [Evaluation]) {
        for item in batch {
            let last = item.inputs[0].numbers().last().copied().unwrap_or(0.0);
            item.outcome = Outcome::Output(Value::Float(last * self.0));
        }
    }

    fn describe(&self) -> String {
        format!("times({})", self.0)
    }
}

fn offloaded(name: &str, input: &str, factor: f64, priority: i32) -> NodeSpec {
    NodeSpec::custom(
        name,
        vec![InputSpec::new(input, 1)],
        Box::new(Times(factor)),
    )
    .with_priority(priority)
    .offloaded()
}

fn latest(graph: &Graph, name: &str) -> Option<f64> {
    graph
        .latest(name, "k")
        .unwrap()
        .and_then(|r| r.sample)
        .and_then(|s| s.value.as_f64())
}

fn node<'a>(nodes: &'a [dav2d_core::NodeInfo], name: &str) -> &'a dav2d_core::NodeInfo {
    nodes.iter().find(|n| n.name == name).unwrap()
}

#[test]
fn a_slow_node_runs_outside_the_wave_and_its_result_enters_a_later_one() {
    let clock = ManualClock::new(1_000 * SECOND);
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph.register(offloaded("slow", "s", 10.0, 0)).unwrap();
    graph
        .register(NodeSpec::builtin(
            "after",
            "slow",
            Builtin::Scale { a: 1.0, b: 1.0 },
        ))
        .unwrap();
    graph
        .register(NodeSpec::builtin(
            "fast",
            "s",
            Builtin::Scale { a: 2.0, b: 0.0 },
        ))
        .unwrap();
    let jobs = graph.jobs();
    graph.push("s", "k", Value::Float(1.0), None).unwrap();
    graph.run_wave();
    // The sibling path is evaluated in the wave; the slow node is not.
    assert_eq!(latest(&graph, "fast"), Some(2.0));
    assert_eq!(latest(&graph, "slow"), None);
    assert_eq!(jobs.len(), 1);
    // While the job is out, newer inputs replace older pending ones.
    let mut job = jobs.try_take().unwrap();
    assert_eq!((job.node(), job.keys()), ("slow", 1));
    for value in [2.0, 3.0] {
        graph.push("s", "k", Value::Float(value), None).unwrap();
        graph.run_wave();
    }
    assert_eq!(latest(&graph, "fast"), Some(6.0));
    assert!(jobs.is_empty(), "at most one job per node in flight");
    job.run();
    assert!(graph.complete(job));
    // The result (of the input it saw) is the output; its child ran; the
    // next job, for the newest input, is queued.
    assert_eq!(latest(&graph, "slow"), Some(10.0));
    assert_eq!(latest(&graph, "after"), Some(11.0));
    let mut job = jobs.try_take().expect("the newest input gets a job");
    job.run();
    graph.complete(job);
    assert_eq!(latest(&graph, "slow"), Some(30.0));
    assert_eq!(latest(&graph, "after"), Some(31.0));
    assert!(jobs.is_empty());
    let nodes = graph.nodes();
    let slow = node(&nodes, "slow");
    assert!(slow.offload);
    assert_eq!(slow.stats.evaluations, 2);
    assert_eq!(
        slow.stats.conflated, 1,
        "the input 2.0 was superseded by 3.0"
    );
    assert_eq!(slow.lag_ns, 0, "caught up");
    // Readers without the lock see the offloaded output too.
    let reads = graph.read_model();
    assert_eq!(
        reads
            .latest("slow", "k")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value,
        Value::Float(30.0)
    );
}

#[test]
fn under_overload_high_priority_keeps_up_while_low_priority_lags_and_conflates() {
    let clock = ManualClock::new(1_000 * SECOND);
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph.register(offloaded("high", "s", 1.0, 10)).unwrap();
    graph.register(offloaded("low", "s", 1.0, 0)).unwrap();
    let jobs = graph.jobs();
    // One saturated worker: one job per second while a sample arrives every second.
    for step in 0..20 {
        clock.advance(SECOND);
        graph
            .push("s", "k", Value::Float(step as f64), None)
            .unwrap();
        graph.run_wave();
        let mut job = jobs.try_take().unwrap();
        assert_eq!(
            job.node(),
            "high",
            "step {step}: the queue serves priority first"
        );
        job.run();
        graph.complete(job);
    }
    let nodes = graph.nodes();
    let (high, low) = (node(&nodes, "high"), node(&nodes, "low"));
    assert_eq!(latest(&graph, "high"), Some(19.0));
    assert_eq!(high.lag_ns, 0, "high priority keeps up");
    assert_eq!(latest(&graph, "low"), None);
    assert_eq!(low.lag_ns, 19 * SECOND as u64, "low priority's lag grows");
    // Its queue: the one key whose inputs changed while its job was out.
    assert_eq!((high.offload_waiting, low.offload_waiting), (0, 1));
    assert_eq!(
        low.stats.conflated, 18,
        "its pending inputs were conflated, counted"
    );
    // Once the worker has time, the low node catches up with the newest input.
    let mut job = jobs.try_take().unwrap();
    assert_eq!(job.node(), "low");
    job.run();
    graph.complete(job);
    let mut job = jobs.try_take().unwrap();
    job.run();
    graph.complete(job);
    assert_eq!(latest(&graph, "low"), Some(19.0));
    assert_eq!(node(&graph.nodes(), "low").lag_ns, 0);
    assert_eq!(node(&graph.nodes(), "low").offload_waiting, 0);
}

#[test]
fn offloading_is_refused_where_it_cannot_work() {
    let clock = ManualClock::new(0);
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock));
    let ewma = graph
        .register(NodeSpec::builtin("e", "s", Builtin::Ewma { alpha: 0.5 }).offloaded())
        .unwrap_err();
    assert!(ewma.to_string().contains("cannot be offloaded"), "{ewma}");
    // A stateless built-in can be offloaded: the same kernel on a worker.
    graph
        .register(NodeSpec::builtin("avg", "s", Builtin::MovingAverage { n: 2 }).offloaded())
        .unwrap();
    for value in [1.0, 3.0] {
        graph.push("s", "k", Value::Float(value), None).unwrap();
    }
    graph.run_wave();
    let mut job = graph.jobs().try_take().unwrap();
    job.run();
    graph.complete(job);
    assert_eq!(latest(&graph, "avg"), Some(2.0));
}
