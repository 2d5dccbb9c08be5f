//! TLS to the brokers: an MQTT source on `mqtts://` and a NATS source and
//! sink on `tls://`, each trusting the CA file the config names, against a
//! mosquitto and a nats-server serving a certificate the test generates;
//! a CA file that is not a certificate is refused at its line by `check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;
#[path = "common/mosquitto.rs"]
mod mosquitto;

use std::path::{Path, PathBuf};
use std::time::Duration;

use brokers::{NatsServer, latest, start, wait_for};
use dav2d_core::{Keys, Value};
use dav2d_runtime::Config;
use mosquitto::Broker;
use rumqttc::{Client, MqttOptions, QoS};

/// A self-signed certificate for 127.0.0.1, its key, in a folder the
/// brokers (which may drop to their own users) can read.
fn certificate(name: &str) -> PathBuf {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let folder =
        std::env::temp_dir().join(format!("dav2d-broker-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        folder.join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    for (path, mode) in [
        (folder.clone(), 0o755),
        (folder.join("cert.pem"), 0o644),
        (folder.join("key.pem"), 0o644),
    ] {
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, mode);
        std::fs::set_permissions(&path, permissions).unwrap();
    }
    folder
}

const QUIET: &str =
    "http:\n  enabled: false\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n";

#[test]
fn an_mqtt_source_reads_over_tls_trusting_its_ca_file() {
    let folder = certificate("mqtt");
    let Some(broker) = Broker::start_with(&format!(
        "certfile {0}/cert.pem\nkeyfile {0}/key.pem\npersistence false\n",
        folder.display()
    )) else {
        return;
    };
    let port = broker.port;
    let yaml = format!(
        "streams:\n  - name: temperature\nsources:\n  - kind: mqtt\n    url: mqtts://127.0.0.1:{port}\n    ca: {}/cert.pem\n    subscriptions:\n      - topic: plant/{{key}}/temperature\n        stream: temperature\n{QUIET}",
        folder.display()
    );
    let (runtime, graph) = start(&yaml);
    // The test's own client speaks TLS with the same trust.
    let tls = dav2d_component::BrokerTls {
        ca: Some(folder.join("cert.pem")),
    };
    let mut options = MqttOptions::new("tls-publisher", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.client_config().unwrap()),
        ));
    let (client, mut connection) = Client::new(options, 64);
    std::thread::spawn(move || for _ in connection.iter() {});
    wait_for("a sample over TLS", || {
        client
            .publish(
                "plant/k/temperature",
                QoS::AtLeastOnce,
                false,
                b"21".to_vec(),
            )
            .ok();
        std::thread::sleep(Duration::from_millis(20));
        latest(&graph, "temperature", "k") == Some(Value::Float(21.0))
    });
    runtime.stop();
    // Trusting another CA, the handshake fails and the health says so.
    let other = certificate("mqtt-other");
    let (runtime, _graph) = start(&yaml.replace(
        &format!("{}/cert.pem", folder.display()),
        &format!("{}/cert.pem", other.display()),
    ));
    dav2d_testkit::wait_until("the handshake's failure in the health", || {
        let problems = runtime.health().problems();
        (!problems.is_empty()).then_some(problems)
    });
    runtime.stop();
    // A CA file that is not one is refused where it is written.
    std::fs::write(other.join("cert.pem"), "not a certificate").unwrap();
    let error = Config::parse(
        &yaml.replace(
            &format!("{}/cert.pem", folder.display()),
            &format!("{}/cert.pem", other.display()),
        ),
        Path::new("t.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("t.yaml:6:9: sources[0].ca:"), "{error}");
    let _ = std::fs::remove_dir_all(&folder);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn a_nats_source_and_sink_go_over_tls_trusting_their_ca_file() {
    let folder = certificate("nats");
    let cert = folder.join("cert.pem").display().to_string();
    let key = folder.join("key.pem").display().to_string();
    let Some(server) = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        cert.as_str(),
        "--tlskey",
        key.as_str(),
    ]) else {
        return;
    };
    let port = server.port;
    // The sink publishes doubled over TLS; the source (`in`) gets those
    // messages over TLS (an update's JSON is not a sample, so each is then
    // rejected: the count of messages is what shows they came).
    let yaml = format!(
        "streams:\n  - name: temperature\n  - name: echo\nnodes:\n  - name: doubled\n    kind: scale\n    input: temperature\n    a: 2\n\
         sources:\n  - kind: nats\n    name: in\n    url: tls://127.0.0.1:{port}\n    ca: {cert}\n    subjects:\n      - subject: dav2d.out.doubled.{{key}}\n        stream: echo\n\
         sinks:\n  - kind: nats\n    url: tls://127.0.0.1:{port}\n    ca: {cert}\n    names: [doubled]\n{QUIET}"
    );
    let (runtime, graph) = start(&yaml);
    let intake = runtime.engine().intake().unwrap().clone();
    let mut value = 0.0;
    wait_for("the echo over TLS", || {
        // A new value each time: an unchanged output is not published again.
        value += 1.0;
        intake.push_numbers(
            "temperature",
            Keys::One("k"),
            &[value],
            None,
            dav2d_component::Admission::Wait,
        );
        std::thread::sleep(Duration::from_millis(20));
        runtime
            .health()
            .gauges()
            .iter()
            .any(|(c, _, g)| c == "in" && g.name == "broker_messages" && g.value > 0)
    });
    assert_eq!(
        latest(&graph, "doubled", "k"),
        Some(Value::Float(2.0 * value))
    );
    runtime.stop();
    let _ = std::fs::remove_dir_all(&folder);
}
