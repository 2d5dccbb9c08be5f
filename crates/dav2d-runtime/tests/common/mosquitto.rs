//! A mosquitto (Debian's package) of a test's own on a loopback port, the
//! test's MQTT clients, and the config the MQTT tests run.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test file uses some.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use dav2d_core::SharedGraph;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::brokers::{binary, free_port, latest, wait_for};

/// A mosquitto of the test's own, on loopback.
pub struct Broker {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

impl Broker {
    pub fn start() -> Option<Broker> {
        Self::start_with("persistence false\n")
    }

    /// A broker with `extra` lines in its config (`{dir}` is its directory).
    pub fn start_with(extra: &str) -> Option<Broker> {
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
    pub fn spawn(&self, mosquitto: &Path) -> Child {
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

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, so a persistent broker saves its sessions, then waits.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling a child process this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
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
pub fn publisher(port: u16, id: &str) -> Client {
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
pub fn subscribed(client: &Client, graph: &SharedGraph) {
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

pub fn config(port: u16, clean_session: bool) -> String {
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

/// A gauge of one component, as `/metrics` exports it.
pub fn gauge(runtime: &dav2d_runtime::Runtime, component: &str, name: &str) -> i64 {
    (runtime.health().gauges().into_iter())
        .find(|(c, _, g)| c == component && g.name == name)
        .map_or(-1, |(_, _, g)| g.value)
}

/// The first message a new subscriber to `topic` gets: (retained, payload).
pub fn first_message(port: u16, id: &str, topic: &str) -> (bool, serde_json::Value) {
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
