//! An owner applies its partitions in the order JetStream stored them, its
//! own messages and other instances' alike: two clustered instances on a
//! real `nats-server -js` are POSTed samples of the same keys at once, so
//! every partition interleaves both instances' messages; then every message
//! of the stream, read back in order, is POSTed to an instance without
//! clustering, and every key's window, average, `all`-edge ewma, alert and
//! sample count on its owner equal that replay's. And producers that POST
//! to one instance at once (their batches' acknowledgements awaited side by
//! side) each find their batches in the stream in the order they sent them,
//! every sample once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use brokers::{
    CLUSTER_GRAPH, KeyState, NatsServer, free_port, gauge, key_state, keys_held_otherwise, start,
};
use dav2d_core::SharedGraph;

const KEYS: usize = 40;
const BATCHES: usize = 150;
const BATCH: usize = 20;

fn graph_yaml(extra: &str, http: u16) -> String {
    format!(
        "{CLUSTER_GRAPH}{extra}http:\n  bind: 127.0.0.1:{http}\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    )
}

fn clustered(port: u16, instance: usize) -> String {
    graph_yaml(
        &format!(
            "cluster:\n  url: nats://127.0.0.1:{port}\n  partitions: 4\n  instance: o{instance}\n  lease_ttl: 1s\n  publish_every: 100ms\n"
        ),
        free_port(),
    )
}

/// POSTs `body` to `path`; the status line.
fn post(address: SocketAddr, path: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or("").to_string()
}

/// Batch `b` of producer `t`: the same keys from both producers, their
/// timestamps interleaved.
fn batch(t: usize, b: usize) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..BATCH)
        .map(|j| {
            let i = b * BATCH + j;
            serde_json::json!({
                "stream": "temperature",
                "key": format!("k{}", (i * 7 + t) % KEYS),
                "value": 40.0 + ((i * 31 + t * 17) % 47) as f64,
                "ts": 1_700_000_000_000_000_000_i64 + (2 * i + t) as i64,
            })
        })
        .collect();
    serde_json::Value::Array(records).to_string().into_bytes()
}

/// Every message of the cluster's input stream, in stream order.
fn stream_messages(port: u16) -> Vec<(String, Vec<u8>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream.get_stream(dav2d_cluster::STREAM).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            let message = stream.get_raw_message(sequence).await.unwrap();
            messages.push((message.subject.to_string(), message.payload.to_vec()));
        }
        messages
    })
}

#[test]
fn an_owner_applies_its_own_and_others_messages_in_the_streams_order() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let owners: Vec<_> = (0..2).map(|i| start(&clustered(server.port, i))).collect();
    let addresses: Vec<SocketAddr> = owners
        .iter()
        .map(|(runtime, _)| runtime.address("http").unwrap())
        .collect();
    // Both own partitions before anything is sent, so each publishes to
    // its own partitions as their owner.
    brokers::wait_for("both instances to own two partitions", || {
        addresses
            .iter()
            .all(|a| gauge(*a, "dav2d_cluster_partitions_owned") == 2)
    });
    std::thread::scope(|scope| {
        for (t, address) in addresses.iter().enumerate() {
            scope.spawn(move || {
                for b in 0..BATCHES {
                    let status = post(*address, "/upload", &batch(t, b));
                    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                }
            });
        }
    });
    // The stream, replayed in its order on one instance without clustering.
    let messages = stream_messages(server.port);
    assert!(messages.len() >= 2 * BATCHES, "{} messages", messages.len());
    let (replay_runtime, replay) = start(&graph_yaml("", free_port()));
    let replay_address = replay_runtime.address("http").unwrap();
    for (subject, payload) in &messages {
        // `dav2d.in.<p>.<stream>`
        let stream = subject.splitn(4, '.').nth(3).unwrap();
        // 422: every sample of the message came too late for its key, on
        // the owner as here.
        let status = post(replay_address, &format!("/ingest/{stream}"), payload);
        assert!(
            status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 422"),
            "{status}"
        );
    }
    let expected: Vec<(String, KeyState)> = (0..KEYS)
        .map(|k| {
            let key = format!("k{k}");
            let state = key_state(&replay, &key).unwrap();
            (key, state)
        })
        .collect();
    let holders: Vec<&SharedGraph> = owners.iter().map(|(_, g)| g).collect();
    let wrong_keys = || keys_held_otherwise(&expected, &holders);
    dav2d_testkit::holds_within(Duration::from_secs(30), || wrong_keys().is_empty());
    let wrong = wrong_keys();
    assert!(
        wrong.is_empty(),
        "{} keys differ from the stream replayed in order: {:?}; the first on its owner {:?}, replayed {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)],
        owners
            .iter()
            .filter_map(|(_, g)| key_state(g, &wrong[0]))
            .collect::<Vec<_>>(),
        expected.iter().find(|(key, _)| *key == wrong[0]),
    );
    replay_runtime.stop();
    for (runtime, _) in owners {
        runtime.stop();
    }
}

#[test]
fn producers_forwarding_at_once_find_their_batches_in_the_stream_in_their_order() {
    const PRODUCERS: usize = 4;
    const SENT: usize = 60;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (runtime, _graph) = start(&clustered(server.port, 0));
    let address = runtime.address("http").unwrap();
    brokers::wait_for("the instance to own every partition", || {
        gauge(address, "dav2d_cluster_partitions_owned") == 4
    });
    // Producer t's sample j of batch b has the value t * 1e6 + b * 100 + j.
    std::thread::scope(|scope| {
        for t in 0..PRODUCERS {
            scope.spawn(move || {
                for b in 0..SENT {
                    let records: Vec<serde_json::Value> = (0..BATCH)
                        .map(|j| {
                            serde_json::json!({
                                "stream": "temperature",
                                "key": format!("p{t}-k{}", j % 10),
                                "value": (t * 1_000_000 + b * 100 + j) as f64,
                                "ts": 1_700_000_000_000_000_000_i64 + (b * BATCH + j) as i64,
                            })
                        })
                        .collect();
                    let body = serde_json::Value::Array(records).to_string();
                    let status = post(address, "/upload", body.as_bytes());
                    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                }
            });
        }
    });
    // Every batch was answered only once acknowledged: all are stored.
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); PRODUCERS];
    for (_, payload) in stream_messages(server.port) {
        let samples: Vec<serde_json::Value> = serde_json::from_slice(&payload).unwrap();
        for sample in samples {
            let value = sample["value"].as_f64().unwrap() as u64;
            seen[(value / 1_000_000) as usize].push(value % 1_000_000);
        }
    }
    for (t, values) in seen.iter().enumerate() {
        let sent: Vec<u64> = (0..SENT as u64)
            .flat_map(|b| (0..BATCH as u64).map(move |j| b * 100 + j))
            .collect();
        let mut stored = values.clone();
        stored.sort_unstable();
        assert_eq!(stored, sent, "producer {t}: every sample once");
        // One message per partition of a batch: within a partition the
        // samples keep the batch's order, so the key's own order is what
        // the stream must keep across batches.
        for k in 0..10 {
            let of_key: Vec<u64> = values
                .iter()
                .copied()
                .filter(|v| v % 100 % 10 == k)
                .collect();
            assert!(
                of_key.windows(2).all(|w| w[0] < w[1]),
                "producer {t}, key k{k}: stored out of the order sent: {of_key:?}"
            );
        }
    }
    runtime.stop();
}
