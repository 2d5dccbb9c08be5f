//! The NATS source and sink against a real `nats-server -js` (Debian's
//! package) on a loopback port of the test's own, spoken to by a raw
//! protocol client: core subjects map to streams and keys, outputs are
//! published with `Nats-Msg-Id`, and a JetStream durable consumer loses no
//! message the server acknowledged across a SIGKILL and restart of the
//! server. Skipped (saying why) only when nats-server is not installed,
//! unless `DAV2D_REQUIRE_BROKERS` is set (as `make test` does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use brokers::{NatsServer as Server, latest, missing, start, wait_for};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use dav2d_core::Value;

/// A raw NATS protocol client: enough to publish, subscribe and read.
struct Raw {
    out: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        Self::connect_as(port, "")
    }

    /// Connects with `fields` added to CONNECT (`"user":"u","pass":"p",`).
    fn connect_as(port: u16, fields: &str) -> Raw {
        let out = TcpStream::connect(("127.0.0.1", port)).unwrap();
        out.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw {
            reader: BufReader::new(out.try_clone().unwrap()),
            out,
        };
        let mut info = String::new();
        raw.reader.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO"), "{info}");
        raw.send(&format!(
            "CONNECT {{{fields}\"verbose\":false,\"headers\":true}}\r\n"
        ));
        raw
    }

    fn send(&mut self, text: &str) {
        self.out.write_all(text.as_bytes()).unwrap();
    }

    fn publish(&mut self, subject: &str, payload: &str) {
        self.send(&format!("PUB {subject} {}\r\n{payload}\r\n", payload.len()));
    }

    /// Publishes and waits for JetStream's acknowledgement; whether it came.
    fn publish_acked(&mut self, subject: &str, payload: &str, n: usize) -> bool {
        let inbox = format!("ack.{n}");
        self.send(&format!(
            "SUB {inbox} {n}\r\nPUB {subject} {inbox} {}\r\n{payload}\r\n",
            payload.len()
        ));
        loop {
            let Some((subject, body)) = self.next_message() else {
                return false;
            };
            if subject == inbox {
                self.send(&format!("UNSUB {n}\r\n"));
                return body.contains("\"seq\"");
            }
        }
    }

    /// The next MSG or HMSG (subject, payload and headers as text).
    fn next_message(&mut self) -> Option<(String, String)> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.first().copied() {
                Some("PING") => self.send("PONG\r\n"),
                Some("MSG") | Some("HMSG") => {
                    let total: usize = parts.last()?.parse().ok()?;
                    let mut body = vec![0u8; total + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut body).ok()?;
                    return Some((
                        parts[1].to_string(),
                        String::from_utf8_lossy(&body).to_string(),
                    ));
                }
                _ => {}
            }
        }
    }
}

const QUIET: &str =
    "http:\n  enabled: false\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n";

#[test]
fn core_subjects_map_to_streams_and_outputs_carry_a_message_id() {
    let Some(server) = Server::start() else {
        return;
    };
    let yaml = format!(
        "streams:\n  - name: temperature\nnodes:\n  - name: avg\n    kind: moving_average\n    n: 2\n    input: temperature\n\
         sources:\n  - kind: nats\n    url: nats://127.0.0.1:{port}\n    subjects:\n      - subject: plant.{{key}}.temperature\n        stream: temperature\n\
         sinks:\n  - kind: nats\n    url: nats://127.0.0.1:{port}\n    names: [avg]\n    subject: out.{{stream}}.{{key}}\n{QUIET}",
        port = server.port
    );
    let (runtime, graph) = start(&yaml);
    let mut client = Raw::connect(server.port);
    client.send("SUB out.> 1\r\n");
    wait_for("the source to subscribe", || {
        client.publish("plant.probe.temperature", "0");
        client.send("PING\r\n");
        std::thread::sleep(Duration::from_millis(20));
        latest(&graph, "temperature", "probe").is_some()
    });
    let before = graph.lock().stats();
    client.publish("plant.b1.temperature", "20");
    client.publish("plant.b1.temperature", "{\"value\": 22}");
    client.publish(
        "plant.b2.temperature",
        "[{\"value\": 1}, {\"value\": true}, {\"value\": 3}]",
    );
    client.publish("plant.b3.temperature", "{broken");
    wait_for("the samples", || {
        latest(&graph, "avg", "b1") == Some(Value::Float(21.0))
    });
    wait_for("the batch", || {
        latest(&graph, "temperature", "b2") == Some(Value::Float(3.0))
    });
    let stats = graph.lock().stats();
    assert_eq!(
        (
            stats.accepted - before.accepted,
            stats.rejected - before.rejected
        ),
        (4, 1),
        "{stats:?}"
    );
    // The sink published avg's updates, each with a Nats-Msg-Id.
    let mut found = false;
    let mut seen = Vec::new();
    for _ in 0..2000 {
        let Some((subject, body)) = client.next_message() else {
            break;
        };
        seen.push(subject.clone());
        if subject == "out.avg.b1" && body.contains("\"value\":21.0") {
            assert!(body.contains("Nats-Msg-Id: avg/b1/"), "{body}");
            found = true;
            break;
        }
    }
    assert!(found, "avg's update for b1 was published; saw {seen:?}");
    runtime.stop();
}

#[test]
fn a_jetstream_consumer_loses_nothing_acknowledged_across_a_server_crash() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let yaml = format!(
        "streams:\n  - name: temperature\n\
         sources:\n  - kind: nats\n    url: nats://127.0.0.1:{port}\n    subjects:\n      - subject: plant.{{key}}.temperature\n        stream: temperature\n    jetstream:\n      stream: PLANT\n      durable: dav2d-test\n{QUIET}",
        port = server.port
    );
    let (runtime, graph) = start(&yaml);
    let mut client = Raw::connect(server.port);
    // The source creates the JetStream stream; until then nothing acknowledges.
    wait_for("the JetStream stream", || {
        client.publish_acked("plant.probe.temperature", "0", 0)
    });
    let mut acknowledged = Vec::new();
    for i in 1..=100 {
        if client.publish_acked(&format!("plant.k{i}.temperature"), &i.to_string(), i) {
            acknowledged.push(i);
        }
    }
    server.restart();
    let mut client = Raw::connect(server.port);
    for i in 101..=200 {
        if client.publish_acked(&format!("plant.k{i}.temperature"), &i.to_string(), i) {
            acknowledged.push(i);
        }
    }
    assert!(
        acknowledged.len() >= 150,
        "{} acknowledged",
        acknowledged.len()
    );
    assert_eq!(
        missing(&graph, "temperature", &acknowledged),
        Vec::<usize>::new(),
        "acknowledged by the server, never applied"
    );
    runtime.stop();
}

/// What JetStream says of consumer `durable` of `stream`.
fn consumer_info(client: &mut Raw, stream: &str, durable: &str) -> serde_json::Value {
    client.send(&format!(
        "SUB info 900\r\nPUB $JS.API.CONSUMER.INFO.{stream}.{durable} info 0\r\n\r\n"
    ));
    let mut info = serde_json::Value::Null;
    while let Some((subject, body)) = client.next_message() {
        if subject == "info" {
            let start = body.find('{').unwrap_or(0);
            info = serde_json::from_str(body[start..].trim()).unwrap();
            break;
        }
    }
    client.send("UNSUB 900\r\n");
    info
}

#[test]
fn a_consumer_waits_ack_wait_for_an_acknowledgement_as_configured() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut client = Raw::connect(server.port);
    for (written, nanos) in [
        ("", 10_000_000_000u64),
        ("      ack_wait: 2s\n", 2_000_000_000),
    ] {
        let yaml = format!(
            "streams:\n  - name: temperature\n\
             sources:\n  - kind: nats\n    url: nats://127.0.0.1:{port}\n    subjects:\n      - subject: plant.{{key}}.temperature\n        stream: temperature\n    jetstream:\n      stream: WAIT\n      durable: dav2d-wait\n{written}{QUIET}",
            port = server.port,
        );
        let (runtime, graph) = start(&yaml);
        wait_for("the consumer", || {
            client.publish_acked("plant.probe.temperature", "0", 0)
                && latest(&graph, "temperature", "probe").is_some()
        });
        // The second run finds the consumer the first made, and changes it.
        let info = consumer_info(&mut client, "WAIT", "dav2d-wait");
        assert_eq!(info["config"]["ack_wait"].as_u64(), Some(nanos), "{info}");
        runtime.stop();
    }
}

#[test]
fn with_ack_durable_jetstream_messages_are_acknowledged_once_persisted() {
    let Some(server) = Server::start() else {
        return;
    };
    let data = std::env::temp_dir().join(format!("dav2d-nats-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let yaml = format!(
        "streams:\n  - name: temperature\n\
         sources:\n  - kind: nats\n    url: nats://127.0.0.1:{port}\n    subjects:\n      - subject: plant.{{key}}.temperature\n        stream: temperature\n    jetstream:\n      stream: PLANT\n      durable: dav2d-durable\n      ack: durable\n\
         http:\n  enabled: false\ntcp:\n  enabled: false\npersistence:\n  dir: {dir}\n  flush_interval: 50ms\n  streams: [temperature]\n",
        port = server.port,
        dir = data.display()
    );
    let (runtime, graph) = start(&yaml);
    let mut client = Raw::connect(server.port);
    wait_for("the JetStream stream", || {
        client.publish_acked("plant.probe.temperature", "0", 0)
    });
    for i in 1..=20 {
        assert!(client.publish_acked(&format!("plant.d{i}.temperature"), &i.to_string(), i));
    }
    wait_for("the samples", || {
        latest(&graph, "temperature", "d20") == Some(Value::Float(20.0))
    });
    // The consumer's acknowledgement floor reaches the last message: each was
    // acknowledged after the flush that made it durable.
    wait_for("the acknowledgements", || {
        let info = consumer_info(&mut client, "PLANT", "dav2d-durable");
        info["ack_floor"]["stream_seq"].as_u64().unwrap_or(0) >= 21
    });
    runtime.stop();
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_sink_stops_within_its_budget_while_the_server_is_down() {
    for jetstream in [false, true] {
        let Some(mut server) = Server::start() else {
            return;
        };
        let yaml = format!(
            "streams:\n  - name: temperature\nnodes:\n  - name: doubled\n    kind: scale\n    input: temperature\n    a: 2\nsinks:\n  - kind: nats\n    name: out\n    url: nats://127.0.0.1:{}\n    jetstream: {jetstream}\n{QUIET}",
            server.port
        );
        let (runtime, graph) = start(&yaml);
        wait_for("the sink to connect", || {
            runtime.health().problems().is_empty()
        });
        server.kill();
        let intake = runtime.engine().intake().unwrap().clone();
        let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values: Vec<f64> = (0..500).map(f64::from).collect();
        intake.push_numbers(
            "temperature",
            dav2d_core::Keys::Many(&keys),
            &values,
            None,
            dav2d_component::Admission::Wait,
        );
        wait_for("the updates", || {
            latest(&graph, "doubled", "k499") == Some(Value::Float(998.0))
        });
        // The stop ends although nothing can be delivered.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&done);
        let stopping = std::thread::spawn(move || {
            runtime.stop();
            flag.store(true, std::sync::atomic::Ordering::Release);
        });
        dav2d_testkit::wait_until_within(
            "the stop with the server down",
            Duration::from_secs(30),
            || {
                done.load(std::sync::atomic::Ordering::Acquire)
                    .then_some(())
            },
        );
        stopping.join().unwrap();
    }
}

#[test]
fn logins_come_from_the_url_or_the_fields() {
    let Some(server) = Server::start_with(&["--user", "dav2d", "--pass", "s3cret"]) else {
        return;
    };
    let port = server.port;
    let yaml = format!(
        "streams:\n  - name: temperature\nnodes:\n  - name: doubled\n    kind: scale\n    input: temperature\n    a: 2\n\
         sources:\n  - kind: nats\n    url: nats://dav2d:s3cret@127.0.0.1:{port}\n    subjects:\n      - subject: plant.{{key}}.temperature\n        stream: temperature\n\
         sinks:\n  - kind: nats\n    url: nats://127.0.0.1:{port}\n    username: dav2d\n    password: s3cret\n    names: [doubled]\n{QUIET}"
    );
    let (runtime, graph) = start(&yaml);
    let mut client = Raw::connect_as(port, "\"user\":\"dav2d\",\"pass\":\"s3cret\",");
    client.send("SUB dav2d.out.doubled.k 1\r\n");
    wait_for("the source to log in", || {
        client.publish("plant.k.temperature", "4");
        client.send("PING\r\n");
        std::thread::sleep(Duration::from_millis(20));
        latest(&graph, "temperature", "k").is_some()
    });
    let (subject, body) = client
        .next_message()
        .expect("the sink logged in and published");
    assert_eq!(subject, "dav2d.out.doubled.k");
    assert!(body.contains("\"value\":8"), "{body}");
    runtime.stop();
    // The wrong password: the connection is refused and the health says so.
    let (runtime, _graph) = start(&yaml.replace("dav2d:s3cret@", "dav2d:wrong@"));
    dav2d_testkit::wait_until("the refusal in the health", || {
        (!runtime.health().problems().is_empty()).then_some(())
    });
    runtime.stop();
}
