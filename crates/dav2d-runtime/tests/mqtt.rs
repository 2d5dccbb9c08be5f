//! The MQTT source and sink against a real mosquitto (Debian's package) on
//! a loopback port of the test's own: topics map to streams and keys, every
//! payload shape decodes like HTTP and bad ones are rejected beside the good
//! ones, node outputs come back retained, and after the broker restarts the
//! source subscribes again by itself. Skipped (saying why) only when
//! mosquitto is not installed, unless `DAV2D_REQUIRE_BROKERS` is set (as
//! `make test` does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use brokers::{binary, free_port, latest, missing, start, wait_for};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use dav2d_core::{SharedGraph, Value};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// A mosquitto of the test's own, on loopback.
struct Broker {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Broker {
    fn start() -> Option<Broker> {
        Self::start_with("persistence false\n")
    }

    /// A broker with `extra` lines in its config (`{dir}` is its directory).
    fn start_with(extra: &str) -> Option<Broker> {
        let mosquitto = binary("mosquitto")?;
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("dav2d-mosquitto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Started as root, mosquitto drops to its own user: let it write here.
        let mut permissions = std::fs::metadata(&dir).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o777);
        std::fs::set_permissions(&dir, permissions).unwrap();
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n{}",
                extra.replace("{dir}", &dir.display().to_string())
            ),
        )
        .unwrap();
        let mut broker = Broker {
            child: None,
            dir,
            port,
        };
        broker.child = Some(broker.spawn(&mosquitto));
        Some(broker)
    }

    #[allow(clippy::zombie_processes)] // `stop` (and `Drop`) kill and wait for it.
    fn spawn(&self, mosquitto: &Path) -> Child {
        let child = Command::new(mosquitto)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let port = self.port;
        wait_for(&format!("mosquitto to listen on {port}"), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, so a persistent broker saves its sessions, then waits.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling a child process this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.terminate();
        self.child = Some(self.spawn(&binary("mosquitto").unwrap()));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A test client publishing with QoS 1 (its connection driven on a thread).
fn publisher(port: u16, id: &str) -> Client {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 256);
    std::thread::spawn(move || {
        for event in connection.iter() {
            if event.is_err() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    client
}

/// Waits until the source is subscribed: a probe sample published again
/// and again arrives.
fn subscribed(client: &Client, graph: &SharedGraph) {
    wait_for("the source to subscribe", || {
        client
            .publish(
                "plant/probe/temperature",
                QoS::AtLeastOnce,
                false,
                b"0".to_vec(),
            )
            .ok();
        std::thread::sleep(Duration::from_millis(20));
        latest(graph, "temperature", "probe").is_some()
    });
}

fn config(port: u16, clean_session: bool) -> String {
    format!(
        "streams:
  - name: temperature
nodes:
  - name: avg
    kind: moving_average
    n: 2
    input: temperature
sources:
  - kind: mqtt
    url: mqtt://127.0.0.1:{port}
    clean_session: {clean_session}
    subscriptions:
      - topic: plant/{{key}}/temperature
        stream: temperature
      - topic: site/{{key}}/{{stream}}
sinks:
  - kind: mqtt
    url: mqtt://127.0.0.1:{port}
    names: [avg]
    topic: out/{{stream}}/{{key}}
http:
  enabled: false
tcp:
  enabled: false
persistence:
  enabled: false
"
    )
}

#[test]
fn topics_map_to_streams_and_keys_and_outputs_come_back_retained() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (runtime, graph) = start(&config(broker.port, false));
    let client = publisher(broker.port, "test-publisher");
    subscribed(&client, &graph);
    let before = graph.lock().stats();
    for (topic, payload) in [
        ("plant/b1/temperature", "20"),
        ("plant/b1/temperature", "{\"value\": 22}"),
        (
            "site/b2/temperature",
            "[{\"value\": 1}, {\"value\": \"x\"}, {\"value\": 3}]",
        ),
        ("plant/b3/temperature", "not json {"),
        ("plant/b3/pressure", "5"),
    ] {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .unwrap();
    }
    wait_for("the samples to be applied", || {
        latest(&graph, "avg", "b1") == Some(Value::Float(21.0))
            && latest(&graph, "temperature", "b2") == Some(Value::Float(3.0))
    });
    // The bad element was rejected by the engine beside the good ones; the
    // bad payload at decoding and the unmatched topic never reached it.
    let stats = graph.lock().stats();
    let applied = (
        stats.accepted - before.accepted,
        stats.rejected - before.rejected,
    );
    assert_eq!(applied, (4, 1), "{stats:?}");
    assert_eq!(latest(&graph, "temperature", "b3"), None);

    // A late subscriber gets the latest output of avg for b1, retained.
    let mut options = MqttOptions::new("test-reader", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (reader, mut connection) = Client::new(options, 16);
    reader.subscribe("out/avg/b1", QoS::AtLeastOnce).unwrap();
    let mut retained = None;
    for event in connection.iter().take(50) {
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            retained = Some((p.retain, String::from_utf8_lossy(&p.payload).to_string()));
            break;
        }
    }
    let (was_retained, payload) = retained.expect("the retained output arrived");
    assert!(was_retained);
    let json: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        (json["name"].as_str(), json["key"].as_str()),
        (Some("avg"), Some("b1"))
    );
    assert_eq!(json["value"].as_f64(), Some(21.0));
    runtime.stop();
}

#[test]
fn after_the_broker_restarts_a_clean_session_subscribes_again() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let (runtime, graph) = start(&config(broker.port, true));
    let first = publisher(broker.port, "before-restart");
    subscribed(&first, &graph);
    first
        .publish(
            "plant/k1/temperature",
            QoS::AtLeastOnce,
            false,
            b"1".to_vec(),
        )
        .unwrap();
    wait_for("the first sample", || {
        latest(&graph, "temperature", "k1").is_some()
    });
    broker.restart();
    // The new broker knows no session: only a resubscription brings these in.
    let second = publisher(broker.port, "after-restart");
    wait_for(
        "the source to reconnect and resubscribe, and the sample to arrive",
        || {
            second
                .publish(
                    "plant/k2/temperature",
                    QoS::AtLeastOnce,
                    false,
                    b"2".to_vec(),
                )
                .ok();
            std::thread::sleep(Duration::from_millis(40));
            latest(&graph, "temperature", "k2") == Some(Value::Float(2.0))
        },
    );
    runtime.stop();
}

/// Publishes with QoS 1 and waits for the broker's PUBACK; whether it came.
fn publish_acked(
    client: &Client,
    connection: &mut rumqttc::Connection,
    topic: &str,
    payload: &str,
) -> bool {
    if client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .is_err()
    {
        return false;
    }
    for _ in 0..200 {
        match connection.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return true,
            Ok(Err(_)) => return false,
            _ => {}
        }
    }
    false
}

#[test]
fn nothing_the_broker_acknowledged_is_lost_across_a_broker_restart() {
    let Some(mut broker) = Broker::start_with("persistence true\npersistence_location {dir}/\n")
    else {
        return;
    };
    // A persistent session (clean_session: false) and QoS 1: the broker keeps
    // what dav2d has not acknowledged, and dav2d acknowledges after apply.
    let (runtime, graph) = start(&config(broker.port, false));
    let probe = publisher(broker.port, "probe");
    subscribed(&probe, &graph);
    let mut acknowledged = Vec::new();
    for round in 0..2 {
        let mut options = MqttOptions::new(format!("acked-{round}"), "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 16);
        for i in (round * 100)..(round * 100 + 100) {
            if publish_acked(
                &client,
                &mut connection,
                &format!("plant/k{i}/temperature"),
                &i.to_string(),
            ) {
                acknowledged.push(i);
            }
        }
        if round == 0 {
            broker.restart();
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
        "acknowledged by the broker, never applied"
    );
    runtime.stop();
}
