//! Offloaded nodes in a running runtime: while an offloaded node's job is
//! held on a barrier by its worker, samples on a sibling path are applied
//! and visible, and `/state` answers; released, the offloaded output appears
//! and its children are evaluated; the inputs that arrived meanwhile are
//! conflated and counted. Real worker threads and sockets; waits are
//! bounded; nothing is timed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dav2d_core::{
    Builtin, CustomLogic, Evaluation, Graph, GraphOptions, InputSpec, NodeSpec, Outcome,
    SharedGraph, SubscriptionMode, SystemClock, Value,
};
use dav2d_runtime::{HttpConfig, Plan, Runtime};

const WAIT: Duration = Duration::from_secs(20);

/// Says when it starts, then waits for the test to release it.
struct Held {
    started: Sender<f64>,
    release: Mutex<Receiver<()>>,
}

impl CustomLogic for Held {
    fn evaluate_batch(&mut self, _node: &str, batch: &mut [Evaluation]) {
        for item in batch {
            let last = item.inputs[0].numbers().last().copied().unwrap_or(0.0);
            self.started.send(last).unwrap();
            self.release.lock().unwrap().recv_timeout(WAIT).unwrap();
            item.outcome = Outcome::Output(Value::Float(last * 10.0));
        }
    }

    fn describe(&self) -> String {
        "held".to_string()
    }
}

fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn slow_logic_never_holds_the_engine() {
    let (started, started_rx) = channel();
    let (release, release_rx) = channel();
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(SystemClock));
    graph
        .register(
            NodeSpec::custom(
                "slow",
                vec![InputSpec::new("temp", 1)],
                Box::new(Held {
                    started,
                    release: Mutex::new(release_rx),
                }),
            )
            .offloaded(),
        )
        .unwrap();
    graph
        .register(NodeSpec::builtin(
            "after",
            "slow",
            Builtin::Scale { a: 1.0, b: 1.0 },
        ))
        .unwrap();
    graph
        .register(NodeSpec::builtin(
            "double",
            "other",
            Builtin::Scale { a: 2.0, b: 0.0 },
        ))
        .unwrap();
    let after = graph
        .subscribe("after", SubscriptionMode::EveryChange, 16)
        .unwrap();
    let graph = SharedGraph::new(graph);
    let plan = Plan {
        http: Some(HttpConfig {
            listen: dav2d_runtime::ListenConfig::loopback(0),
            ..HttpConfig::default()
        }),
        workers: Some(1),
        ..Plan::default()
    };
    let runtime = Runtime::start(plan, graph.clone()).unwrap();
    let http = runtime.address("http").unwrap();
    let answer = request(http, "POST", "/ingest/temp", r#"{"key": "a", "value": 1}"#);
    assert!(answer.contains("\"accepted\":1"), "{answer}");
    assert_eq!(
        started_rx.recv_timeout(WAIT).unwrap(),
        1.0,
        "the worker runs the job"
    );
    // The job is held: the engine still takes and evaluates other samples.
    for value in [2, 3] {
        let body = format!(r#"{{"key": "a", "value": {value}}}"#);
        assert!(request(http, "POST", "/ingest/temp", &body).contains("\"accepted\":1"));
    }
    let answer = request(http, "POST", "/ingest/other", r#"{"key": "a", "value": 4}"#);
    assert!(answer.contains("\"accepted\":1"), "{answer}");
    let state = request(http, "GET", "/state/double?key=a", "");
    assert!(state.contains("\"value\":8.0"), "{state}");
    assert!(request(http, "GET", "/state/slow", "").starts_with("HTTP/1.1 200"));
    assert_eq!(
        graph
            .lock()
            .latest("double", "a")
            .unwrap()
            .unwrap()
            .sample
            .unwrap()
            .value,
        Value::Float(8.0)
    );
    // Released: the output appears and its child is evaluated; the next job
    // works on the newest input (3), the one in between (2) was conflated.
    release.send(()).unwrap();
    let update = after
        .next_timeout(WAIT)
        .expect("the child of the offloaded node ran");
    assert_eq!(update.value, Some(Value::Float(11.0)));
    assert_eq!(started_rx.recv_timeout(WAIT).unwrap(), 3.0);
    release.send(()).unwrap();
    let update = after.next_timeout(WAIT).unwrap();
    assert_eq!(update.value, Some(Value::Float(31.0)));
    let graph_json = request(http, "GET", "/graph", "");
    assert!(graph_json.contains("\"offload\":true"), "{graph_json}");
    let slow = graph
        .lock()
        .nodes()
        .into_iter()
        .find(|n| n.name == "slow")
        .unwrap();
    assert_eq!((slow.stats.evaluations, slow.stats.conflated), (2, 1));
    let metrics = request(http, "GET", "/metrics", "");
    assert!(
        metrics.contains("dav2d_node_lag_seconds{node=\"slow\"}"),
        "{metrics}"
    );
    runtime.stop();
}
