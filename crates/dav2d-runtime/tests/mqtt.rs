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
#[path = "common/mosquitto.rs"]
mod mosquitto;

use brokers::{binary, latest, missing, start, wait_for};
use mosquitto::{Broker, config, publisher, subscribed};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dav2d_core::Value;
use dav2d_runtime::{Config, Plan};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

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
    // The first message is the retained one; the sink may still be
    // publishing the newest average, which then follows live.
    let mut first_retained = None;
    let mut last = None;
    for event in connection.iter().take(200) {
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            first_retained.get_or_insert(p.retain);
            let payload = String::from_utf8_lossy(&p.payload).to_string();
            let json: serde_json::Value = serde_json::from_str(&payload).unwrap();
            let newest = json["value"].as_f64() == Some(21.0);
            last = Some(payload);
            if newest {
                break;
            }
        }
    }
    assert_eq!(
        first_retained,
        Some(true),
        "the first message was the retained one"
    );
    let payload = last.expect("the retained output arrived");
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
