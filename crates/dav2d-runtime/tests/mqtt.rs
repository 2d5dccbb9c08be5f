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
use dav2d_runtime::{Config, Plan};
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
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1 << 20, 1 << 20);
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

/// A client publishing `count` QoS 1 messages `plant/k<i>/temperature` =
/// `i` (from `first`) as fast as the broker acknowledges them; returns once
/// the broker has acknowledged every one.
fn publish_burst(port: u16, id: &str, first: usize, count: usize) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 1024);
    let acks = std::thread::spawn(move || {
        let mut acked = 0;
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    if acked == count {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => panic!("the publisher's connection failed: {error}"),
            }
        }
    });
    for i in first..first + count {
        client
            .publish(
                format!("plant/k{i}/temperature"),
                QoS::AtLeastOnce,
                false,
                i.to_string().into_bytes(),
            )
            .unwrap();
    }
    acks.join().expect("the broker acknowledged every message");
    let _ = client.disconnect();
}

/// Samples the graph has accepted.
fn accepted(graph: &SharedGraph) -> u64 {
    graph.lock().stats().accepted
}

#[test]
fn a_burst_and_a_backlog_of_20000_are_applied_whole_and_acknowledged_once() {
    let Some(broker) = Broker::start_with("persistence false\nmax_queued_messages 100000\n") else {
        return;
    };
    let yaml = config(broker.port, false);
    // A burst, at the broker's pace, into a running source.
    let (runtime, graph) = start(&yaml);
    let probe = publisher(broker.port, "probe");
    subscribed(&probe, &graph);
    let before = accepted(&graph);
    publish_burst(broker.port, "burst", 0, 20_000);
    let expected: Vec<usize> = (0..20_000).collect();
    dav2d_testkit::wait_for("the burst of 20,000 to be applied", || {
        accepted(&graph) - before >= 20_000
    });
    assert_eq!(
        missing(&graph, "temperature", &expected),
        Vec::<usize>::new()
    );
    runtime.stop();
    // A backlog: 20,000 more wait in the persistent session while dav2d is away.
    publish_burst(broker.port, "backlog", 20_000, 20_000);
    let (runtime, graph) = start(&yaml);
    let expected: Vec<usize> = (20_000..40_000).collect();
    dav2d_testkit::wait_for("the backlog of 20,000 to be applied", || {
        accepted(&graph) >= 20_000
    });
    assert_eq!(
        missing(&graph, "temperature", &expected),
        Vec::<usize>::new()
    );
    runtime.stop();
    // Each was acknowledged: a third run of the same session gets none again,
    // only the probe sent after it subscribed.
    let (runtime, graph) = start(&yaml);
    subscribed(&probe, &graph);
    let _ = probe.publish(
        "plant/last/temperature",
        QoS::AtLeastOnce,
        false,
        b"1".to_vec(),
    );
    wait_for("the last probe", || {
        latest(&graph, "temperature", "last").is_some()
    });
    let stats = graph.lock().stats();
    assert_eq!(
        latest(&graph, "temperature", "k0"),
        None,
        "a message applied and acknowledged before came again ({stats:?})"
    );
    runtime.stop();
}

/// A gauge of one component, as `/metrics` exports it.
fn gauge(runtime: &dav2d_runtime::Runtime, component: &str, name: &str) -> i64 {
    (runtime.health().gauges().into_iter())
        .find(|(c, _, g)| c == component && g.name == name)
        .map_or(-1, |(_, _, g)| g.value)
}

/// The first message a new subscriber to `topic` gets: (retained, payload).
fn first_message(port: u16, id: &str, topic: &str) -> (bool, serde_json::Value) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (reader, mut connection) = Client::new(options, 16);
    reader.subscribe(topic, QoS::AtLeastOnce).unwrap();
    for event in connection.iter().take(200) {
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            let json = serde_json::from_slice(&p.payload).unwrap();
            return (p.retain, json);
        }
    }
    panic!("nothing arrived on {topic}");
}

#[test]
fn a_message_over_the_limit_is_refused_counted_and_acknowledged_and_the_rest_applied() {
    let Some(broker) = Broker::start_with("persistence false\n") else {
        return;
    };
    // A value may be 4 KiB: messages up to 68 KiB are taken.
    let yaml = config(broker.port, false).replace(
        "http:\n  enabled: false",
        "limits:\n  value_size: 4KiB\nhttp:\n  enabled: false",
    );
    let (runtime, graph) = start(&yaml);
    let client = publisher(broker.port, "sizes");
    subscribed(&client, &graph);
    // 20 KB (over the client library's own 10 KiB default): applied whole.
    let many: Vec<String> = (0..1000).map(|i| format!("{{\"value\": {i}}}")).collect();
    let batch = format!("[{}]", many.join(","));
    assert!(batch.len() > 10 << 10);
    client
        .publish(
            "site/big/temperature",
            QoS::AtLeastOnce,
            false,
            batch.into_bytes(),
        )
        .unwrap();
    // 100 KB: over the limit, refused.
    let huge = format!("[{}]", vec!["{\"value\": 1.5}"; 7000].join(","));
    assert!(huge.len() > 68 << 10);
    client
        .publish(
            "site/huge/temperature",
            QoS::AtLeastOnce,
            false,
            huge.into_bytes(),
        )
        .unwrap();
    for i in 0..20 {
        client
            .publish(
                format!("plant/k{i}/temperature"),
                QoS::AtLeastOnce,
                false,
                i.to_string().into_bytes(),
            )
            .unwrap();
    }
    let expected: Vec<usize> = (0..20).collect();
    assert_eq!(
        missing(&graph, "temperature", &expected),
        Vec::<usize>::new()
    );
    assert_eq!(
        latest(&graph, "temperature", "big"),
        Some(Value::Float(999.0))
    );
    assert_eq!(latest(&graph, "temperature", "huge"), None);
    wait_for("the refusal to be counted", || {
        gauge(&runtime, "mqtt", "broker_rejected") >= 1
    });
    assert_eq!(
        gauge(&runtime, "mqtt", "broker_reconnects"),
        0,
        "the connection held"
    );
    assert!(
        runtime.health().problems().is_empty(),
        "{:?}",
        runtime.health().problems()
    );
    runtime.stop();
    // Acknowledged: the same session's next run does not get it again.
    let (runtime, graph) = start(&yaml);
    subscribed(&client, &graph);
    client
        .publish(
            "plant/after/temperature",
            QoS::AtLeastOnce,
            false,
            b"1".to_vec(),
        )
        .unwrap();
    wait_for("a message after the restart", || {
        latest(&graph, "temperature", "after").is_some()
    });
    assert_eq!(
        gauge(&runtime, "mqtt", "broker_rejected"),
        0,
        "it came again"
    );
    runtime.stop();
}

#[test]
fn the_sink_counts_an_update_over_its_limit_keeps_its_connection_and_retains_states() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let port = broker.port;
    let yaml = format!(
        "streams:
  - name: temperature
  - name: notes
    type: string
constraints:
  - name: overheat
    input: temperature
    trip: 80
sources:
  - kind: mqtt
    url: mqtt://127.0.0.1:{port}
    subscriptions:
      - topic: site/{{key}}/{{stream}}
sinks:
  - kind: mqtt
    name: out
    url: mqtt://127.0.0.1:{port}
    names: [overheat, notes]
    topic: out/{{stream}}/{{key}}
    max_message: 2KiB
http:
  enabled: false
tcp:
  enabled: false
persistence:
  enabled: false
"
    );
    let (runtime, graph) = start(&yaml);
    let client = publisher(port, "sink-sizes");
    wait_for("the source to subscribe", || {
        client
            .publish(
                "site/probe/temperature",
                QoS::AtLeastOnce,
                false,
                b"1".to_vec(),
            )
            .ok();
        std::thread::sleep(Duration::from_millis(20));
        latest(&graph, "temperature", "probe").is_some()
    });
    // A 5 KB note: over the sink's 2 KiB, not published but counted.
    let note = format!("{{\"value\": \"{}\"}}", "x".repeat(5000));
    client
        .publish("site/a/notes", QoS::AtLeastOnce, false, note.into_bytes())
        .unwrap();
    wait_for("the note to be applied", || {
        latest(&graph, "notes", "a").is_some()
    });
    wait_for("the oversized update to be counted", || {
        gauge(&runtime, "out", "broker_rejected") >= 1
    });
    // The key trips, then a small note: both published on the same connection.
    for (topic, payload) in [
        ("site/k/temperature", "20"),
        ("site/k/temperature", "95"),
        ("site/b/notes", "{\"value\": \"short\"}"),
    ] {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .unwrap();
    }
    wait_for("the note to be applied", || {
        latest(&graph, "notes", "b").is_some()
    });
    let (retained, json) = first_message(port, "late-notes", "out/notes/b");
    assert!(retained);
    assert_eq!(json["value"], "short");
    // A late subscriber's retained message is the key's current state.
    let (retained, json) = first_message(port, "late-states", "out/overheat/k");
    assert!(retained);
    assert_eq!(json["value"], "tripped", "{json}");
    assert_eq!(gauge(&runtime, "out", "broker_reconnects"), 0);
    runtime.stop();
}

#[test]
fn a_source_whose_messages_the_engine_does_not_take_says_so_in_its_health() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let yaml = config(broker.port, false).replace(
        "    clean_session: false\n",
        "    clean_session: false\n    queue: 1\n",
    );
    let (runtime, graph) = start(&yaml);
    let client = publisher(broker.port, "stall");
    subscribed(&client, &graph);
    // The engine is held: the message in hand and the one queued wait, and
    // the source stops reading.
    let held = graph.lock();
    for i in 0..5 {
        client
            .publish(
                format!("plant/k{i}/temperature"),
                QoS::AtLeastOnce,
                false,
                i.to_string().into_bytes(),
            )
            .unwrap();
    }
    dav2d_testkit::wait_until_within("the stall to show", Duration::from_secs(40), || {
        let problems = runtime.health().problems();
        problems.iter().any(|p| p.contains("stalled")).then_some(())
    });
    drop(held);
    let expected: Vec<usize> = (0..5).collect();
    assert_eq!(
        missing(&graph, "temperature", &expected),
        Vec::<usize>::new()
    );
    wait_for("the stall to clear", || {
        runtime.health().problems().is_empty()
    });
    runtime.stop();
}

#[test]
fn logins_come_from_the_url_or_the_fields_or_the_environment() {
    // A broker that takes only known users (mosquitto_passwd, from Debian's
    // package, writes the password file). The sink's password comes from the
    // environment: cargo sets CARGO_PKG_NAME for the tests it runs.
    let Some(mosquitto_passwd) = binary("mosquitto_passwd") else {
        return;
    };
    let secret = std::env::var("CARGO_PKG_NAME").unwrap();
    let dir = std::env::temp_dir().join(format!("dav2d-mqtt-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwd = dir.join("passwd");
    let _ = std::fs::remove_file(&passwd);
    for (user, password) in [("reader", "r3ad"), ("writer", secret.as_str())] {
        let mut command = Command::new(&mosquitto_passwd);
        command.arg("-b");
        if !passwd.exists() {
            command.arg("-c");
        }
        let status = command.arg(&passwd).args([user, password]).status();
        assert!(status.is_ok_and(|s| s.success()), "mosquitto_passwd failed");
    }
    // Started as root, mosquitto drops to its own user: let it read the file.
    for (path, mode) in [(&dir, 0o755), (&passwd, 0o644)] {
        let mut permissions = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, mode);
        std::fs::set_permissions(path, permissions).unwrap();
    }
    let Some(broker) = Broker::start_with(&format!(
        "allow_anonymous false\npassword_file {}\npersistence false\n",
        passwd.display()
    )) else {
        return;
    };
    let port = broker.port;
    let yaml = format!(
        "streams:
  - name: temperature
sources:
  - kind: mqtt
    url: mqtt://reader:r3ad@127.0.0.1:{port}
    subscriptions:
      - topic: plant/{{key}}/temperature
        stream: temperature
sinks:
  - kind: mqtt
    name: out
    url: mqtt://127.0.0.1:{port}
    username: writer
    password: ${{CARGO_PKG_NAME}}
    names: [temperature]
    topic: out/{{stream}}/{{key}}
http:
  enabled: false
tcp:
  enabled: false
persistence:
  enabled: false
"
    );
    let (runtime, graph) = start(&yaml);
    // The test's own clients log in as the writer too.
    let login = |id: &str| {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_credentials("writer", secret.as_str());
        options
    };
    let (client, mut connection) = Client::new(login("test-writer"), 64);
    std::thread::spawn(move || for _ in connection.iter() {});
    wait_for("the source to log in and subscribe", || {
        client
            .publish(
                "plant/probe/temperature",
                QoS::AtLeastOnce,
                false,
                b"3".to_vec(),
            )
            .ok();
        std::thread::sleep(Duration::from_millis(20));
        latest(&graph, "temperature", "probe").is_some()
    });
    let (reader, mut connection) = Client::new(login("test-reader"), 16);
    reader
        .subscribe("out/temperature/probe", QoS::AtLeastOnce)
        .unwrap();
    let mut published = None;
    for event in connection.iter().take(200) {
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            published = Some(String::from_utf8_lossy(&p.payload).to_string());
            break;
        }
    }
    assert!(
        published.is_some_and(|p| p.contains("\"value\":3")),
        "the sink logged in and published"
    );
    assert!(
        runtime.health().problems().is_empty(),
        "{:?}",
        runtime.health().problems()
    );
    // The spec shows the user, never the password.
    let spec = dav2d_runtime::Spec::of_plan(
        &graph.lock(),
        &Plan::new(
            Config::parse(&yaml, Path::new("t.yaml")).unwrap(),
            dav2d_runtime::Overrides::default(),
        )
        .unwrap(),
    )
    .to_json();
    assert!(
        spec.contains("mqtt://reader@127.0.0.1") && !spec.contains("r3ad"),
        "{spec}"
    );
    runtime.stop();
    // A wrong password is refused by the broker, and the health says so.
    let (runtime, _graph) = start(&yaml.replace("reader:r3ad", "reader:wrong"));
    dav2d_testkit::wait_until("the refusal in the health", || {
        let problems = runtime.health().problems();
        (!problems.is_empty()).then_some(())
    });
    runtime.stop();
    // An unset variable and a login given twice are errors at their lines.
    let unset = Config::parse(
        &yaml.replace("${CARGO_PKG_NAME}", "${DAV2D_NO_SUCH_VARIABLE}"),
        Path::new("t.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        unset.contains(
            "sinks[0].password: the environment variable DAV2D_NO_SUCH_VARIABLE is not set"
        ),
        "{unset}"
    );
    let twice = Config::parse(
        &yaml.replace("url: mqtt://127.0.0.1", "url: mqtt://a:b@127.0.0.1"),
        Path::new("t.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        twice.contains("sinks[0].username: the URL gives a user already"),
        "{twice}"
    );
}
