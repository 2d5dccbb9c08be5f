//! The MQTT source and sink under load and at their limits, against a real
//! mosquitto on a loopback port of the test's own: a burst and a backlog of
//! 20,000 applied whole and acknowledged once, a message over the limit
//! refused and acknowledged, an update over the sink's limit counted, the
//! retained state of a constraint, and a stall shown in the health.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;
#[path = "common/mosquitto.rs"]
mod mosquitto;

use brokers::{latest, missing, start, wait_for};
use mosquitto::{Broker, config, first_message, gauge, publisher, subscribed};

use std::time::Duration;

use dav2d_core::{SharedGraph, Value};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

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
