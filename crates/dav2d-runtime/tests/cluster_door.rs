//! The cluster's subjects are a door too: a sample published straight to
//! `dav2d.in.<p>.<stream>` on the cluster's NATS is applied by the owner of
//! partition `p` only if its key hashes to `p`; one that does not is refused
//! and counted as `wrong_partition` (against a real `nats-server -js`
//! that takes one user, which `cluster.url` carries).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use brokers::{NatsServer, latest, start, wait_for};
use dav2d_core::Value;

/// Publishes `payload` to `subject` over the NATS protocol, as any client
/// of the cluster's server could.
fn publish(port: u16, subject: &str, payload: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut info = String::new();
    reader.read_line(&mut info).unwrap();
    let mut out = stream;
    write!(
        out,
        "CONNECT {{\"verbose\":false,\"user\":\"dav2d\",\"pass\":\"s3cret\"}}\r\nPUB {subject} {}\r\n{payload}\r\nPING\r\n",
        payload.len()
    )
    .unwrap();
    // PONG: the server has the message.
    let mut line = String::new();
    while !line.starts_with("PONG") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
}

#[test]
fn a_sample_published_to_another_keys_partition_is_refused_and_counted() {
    // The cluster's NATS takes one user, given in cluster.url.
    let Some(server) = NatsServer::start_with(&["--user", "dav2d", "--pass", "s3cret"]) else {
        return;
    };
    let partitions = 4;
    let yaml = format!(
        "streams:\n  - name: temperature\ncluster:\n  url: nats://dav2d:s3cret@127.0.0.1:{}\n  partitions: {partitions}\n  instance: solo\n  lease_ttl: 1s\n\
         http:\n  enabled: false\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n",
        server.port
    );
    let (runtime, graph) = start(&yaml);
    // What check and /graph show of it: the user, never the password.
    let plan = dav2d_runtime::Plan::new(
        dav2d_runtime::Config::parse(&yaml, std::path::Path::new("c.yaml")).unwrap(),
        dav2d_runtime::Overrides::default(),
    )
    .unwrap();
    let shown = dav2d_runtime::Spec::of_plan(&graph.lock(), &plan).to_json();
    assert!(
        shown.contains("nats://dav2d@127.0.0.1") && !shown.contains("s3cret"),
        "{shown}"
    );
    // Two keys of different partitions.
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let home = dav2d_cluster::partition(&keys[0], partitions);
    let stranger = keys
        .iter()
        .find(|k| dav2d_cluster::partition(k, partitions) != home)
        .unwrap();
    // Published to the first key's partition: one sample of its own key,
    // one of a key that hashes elsewhere.
    let subject = format!("dav2d.in.{home}.temperature");
    wait_for("the owner to apply its partition", || {
        publish(
            server.port,
            &subject,
            &format!(r#"[{{"key":"{}","value":1}}]"#, keys[0]),
        );
        latest(&graph, "temperature", &keys[0]) == Some(Value::Float(1.0))
    });
    publish(
        server.port,
        &subject,
        &format!(
            r#"[{{"key":"{stranger}","value":2}},{{"key":"{}","value":3}}]"#,
            keys[0]
        ),
    );
    wait_for("the good sample beside it", || {
        latest(&graph, "temperature", &keys[0]) == Some(Value::Float(3.0))
    });
    assert_eq!(latest(&graph, "temperature", stranger), None);
    let refused = runtime.metrics().encode();
    assert!(
        refused
            .lines()
            .any(|l| l.contains("reason=\"wrong_partition\"") && !l.ends_with(" 0")),
        "{}",
        refused
            .lines()
            .filter(|l| l.contains("rejected"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    runtime.stop();
}
