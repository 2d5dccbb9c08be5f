//! Scale-out on a real `nats-server -js`: three instances in one test
//! process, samples POSTed to one of them are forwarded into the
//! partitioned stream, the partitions are spread over the instances by
//! leases, one instance stops mid-stream without handing anything over (as
//! a killed process would), the survivors take its partitions over from
//! its checkpoints when the leases expire, and at the end every key's
//! latest value, window, `all`-edge aggregation and constraint state equals
//! a single-instance run over the same input, and `/state` on one instance
//! answers for every key. (`crates/dav2d-cli/tests/cluster.rs` does the
//! same with `dav2d run` processes and SIGKILL.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brokers::{
    CLUSTER_GRAPH, KeyState, NatsServer, free_port, gauge, key_state, keys_held_otherwise, start,
};
use dav2d_core::{
    Builtin, ConstraintSpec, EdgePolicy, Graph, GraphOptions, NodeSpec, SharedGraph, SystemClock,
    Value,
};
use dav2d_runtime::Runtime;

const KEYS: usize = 1_000;
const SAMPLES: usize = 100_000;

fn yaml(port: u16, instance: usize, http: u16) -> String {
    format!(
        "{CLUSTER_GRAPH}\
         cluster:\n  url: nats://127.0.0.1:{port}\n  partitions: 8\n  instance: i{instance}\n  lease_ttl: 1s\n  checkpoint_every: 100ms\n  publish_every: 100ms\n\
         http:\n  bind: 127.0.0.1:{http}\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    )
}

/// The i-th sample: (key, value, ts).
fn sample(i: usize) -> (String, f64, i64) {
    let key = format!("k{}", (i * 7) % KEYS);
    let value = 40.0 + ((i * 31) % 47) as f64;
    (key, value, 1_700_000_000_000_000_000 + i as i64)
}

/// Sends one request; the status and the body.
fn request(address: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(address: SocketAddr, path: &str) -> (u16, String) {
    request(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

fn post(address: SocketAddr, from: usize, to: usize) {
    let records: Vec<serde_json::Value> = (from..to)
        .map(|i| {
            let (key, value, ts) = sample(i);
            serde_json::json!({"stream": "temperature", "key": key, "value": value, "ts": ts})
        })
        .collect();
    let body = serde_json::Value::Array(records).to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /ingest/temperature HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `value` as `/state` writes it, read back as the answers are (serde_json
/// may read a float's shortest text one ulp off; both sides alike).
fn json(value: &Value) -> serde_json::Value {
    let written = match value {
        Value::Float(f) => serde_json::json!(f),
        Value::Str(s) => serde_json::json!(&**s),
        other => panic!("unexpected {other:?}"),
    };
    serde_json::from_str(&written.to_string()).unwrap()
}

/// The keys whose `/state` at `address` differs from `expected`.
fn differing_over_http(address: SocketAddr, expected: &[(String, KeyState)]) -> Vec<String> {
    expected
        .iter()
        .filter(|(key, (avg, _, smooth, hot, seq))| {
            let read = |name: &str| -> Option<serde_json::Value> {
                let (status, body) = get(address, &format!("/state/{name}?key={key}"));
                (status == 200).then(|| serde_json::from_str(&body).unwrap())
            };
            let value = |name: &str| read(name).map(|r| r["value"].clone());
            value("avg") != Some(json(avg))
                || value("smooth") != Some(json(smooth))
                || value("hot") != Some(json(hot))
                || read("temperature").map(|r| r["seq"].clone()) != Some(serde_json::json!(seq))
        })
        .map(|(key, _)| key.clone())
        .collect()
}

#[test]
fn partitions_move_to_the_survivors_and_every_key_ends_as_on_one_instance() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // The single-instance run over the same input.
    let reference = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
    {
        let mut graph = reference.lock();
        graph
            .register_all(vec![
                NodeSpec::builtin("avg", "temperature", Builtin::MovingAverage { n: 3 }),
                NodeSpec::builtin("smooth", "temperature", Builtin::Ewma { alpha: 0.25 })
                    .with_policy(EdgePolicy::All),
                NodeSpec::constraint(
                    "hot",
                    "avg",
                    ConstraintSpec {
                        reset: Some(55.0),
                        ..ConstraintSpec::above(60.0)
                    },
                ),
            ])
            .unwrap();
        for i in 0..SAMPLES {
            let (key, value, ts) = sample(i);
            graph
                .push("temperature", &key, Value::Float(value), Some(ts))
                .unwrap();
            graph.run_wave();
        }
    }
    let instances: Vec<(Runtime, SharedGraph)> = (0..3)
        .map(|i| start(&yaml(server.port, i, free_port())))
        .collect();
    let addresses: Vec<SocketAddr> = instances
        .iter()
        .map(|(runtime, _)| runtime.address("http").unwrap())
        .collect();
    let address = addresses[0];
    // Until every partition has an owner (leases are claimed after a TTL),
    // the forwarded samples wait in the stream; nothing is lost meanwhile.
    let half = SAMPLES / 2;
    for chunk in (0..half).step_by(1000) {
        post(address, chunk, (chunk + 1000).min(half));
    }
    let mut instances = instances.into_iter();
    let (first, second, third) = (
        instances.next().unwrap(),
        instances.next().unwrap(),
        instances.next().unwrap(),
    );
    // The partitions are spread: every instance applies some keys.
    let holds = |graph: &SharedGraph| {
        (0..KEYS)
            .filter(|k| key_state(graph, &format!("k{k}")).is_some())
            .count()
    };
    brokers::wait_for("every instance to own partitions", || {
        [&first.1, &second.1, &third.1].iter().all(|g| holds(g) > 0)
    });
    let moved: Vec<String> = (0..KEYS)
        .map(|k| format!("k{k}"))
        .filter(|key| key_state(&third.1, key).is_some())
        .collect();
    assert!(
        !moved.is_empty() && moved.len() < KEYS,
        "{} keys on the third",
        moved.len()
    );
    // The third has checkpointed its partitions (all of the first half is
    // in the stream, so it goes idle and checkpoints within 100 ms).
    brokers::wait_for("the third instance to checkpoint", || {
        gauge(addresses[2], "dav2d_cluster_checkpoints_written") > 0
    });
    let loaded = |addresses: &[SocketAddr]| -> u64 {
        addresses
            .iter()
            .map(|a| gauge(*a, "dav2d_cluster_checkpoints_loaded"))
            .sum()
    };
    let loaded_before = loaded(&addresses[..2]);
    // The third instance stops without handing its partitions over.
    third.0.stop();
    for chunk in (half..SAMPLES).step_by(1000) {
        post(address, chunk, (chunk + 1000).min(SAMPLES));
    }
    let survivors = [&first.1, &second.1];
    let expected: Vec<(String, KeyState)> = (0..KEYS)
        .map(|k| {
            let key = format!("k{k}");
            let state = key_state(&reference, &key).unwrap();
            (key, state)
        })
        .collect();
    // Exactly one survivor holds each key (its partition's owner), and it
    // holds what the single instance holds: waited for, then reported.
    let wrong_keys = || keys_held_otherwise(&expected, &survivors);
    dav2d_testkit::holds_within(Duration::from_secs(30), || wrong_keys().is_empty());
    let wrong = wrong_keys();
    assert!(
        wrong.is_empty(),
        "{} keys differ from the single-instance run: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    // The survivors started the third's partitions from its checkpoints.
    assert!(loaded(&addresses[..2]) > loaded_before);
    // `/state` on one instance answers for every key: its own from its
    // graph, the others' from the bucket their owners publish to.
    let mut differing: Vec<String> = expected.iter().map(|(key, _)| key.clone()).collect();
    dav2d_testkit::holds_within(Duration::from_secs(30), || {
        let again: Vec<(String, KeyState)> = expected
            .iter()
            .filter(|(key, _)| differing.contains(key))
            .cloned()
            .collect();
        differing = differing_over_http(address, &again);
        differing.is_empty()
    });
    assert!(
        differing.is_empty(),
        "/state differs for {} keys: {:?}; the first: {:?} expected {:?}",
        differing.len(),
        &differing[..differing.len().min(10)],
        ["avg", "smooth", "hot", "temperature"].map(|name| get(
            address,
            &format!("/state/{name}?key={}", differing[0])
        )
        .1),
        expected.iter().find(|(key, _)| *key == differing[0]),
    );
    first.0.stop();
    second.0.stop();
}
