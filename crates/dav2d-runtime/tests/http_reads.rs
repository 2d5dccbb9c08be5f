//! The HTTP read routes over real loopback sockets: state, graph, metrics,
//! health, events, and that they answer while the engine is held.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::*;

#[derive(Debug, Default)]
struct FakeStatus {
    problem: std::sync::Mutex<Option<String>>,
}

impl dav2d_component::Health for FakeStatus {
    fn status(&self) -> Result<(), String> {
        match self.problem.lock().unwrap().clone() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    fn gauges(&self) -> Vec<dav2d_component::Gauge> {
        vec![dav2d_component::Gauge {
            name: "file_actions_remaining_today",
            help: "File actions left today",
            value: 159_990,
        }]
    }
}

#[test]
fn state_graph_metrics_and_health_answer() {
    let server = start();
    post_json(
        server.http(),
        "/ingest/temp",
        r#"[{"key": "a", "value": 10}, {"key": "b", "value": 20}, {"key": "b", "value": 999}]"#,
    );
    let one = request(server.http(), "GET", "/state/double?key=b", &[], b"");
    assert_eq!(json(&one)["value"], 40.0);
    let all = json(&request(server.http(), "GET", "/state/double", &[], b""));
    assert_eq!(all["keys"]["a"]["value"], 20.0);
    let missing = request(server.http(), "GET", "/state/dubble", &[], b"");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("did you mean 'double'"));
    let graph = json(&request(server.http(), "GET", "/graph", &[], b""));
    assert_eq!(graph["nodes"][0]["name"], "double");
    assert_eq!(graph["nodes"][0]["inputs"][0]["name"], "temp");
    assert!(graph["nodes"][0]["inputs"][0]["span_seconds"].is_null());
    assert_eq!(graph["nodes"][0]["window_overflow"], 0);
    // Beside the live graph, what the runtime started (as `check` lists it).
    assert_eq!(graph["sources"][0]["kind"], "http");
    assert_eq!(graph["sources"][1]["kind"], "tcp");
    assert!(graph["metrics"]["values"].is_array(), "{graph}");
    let metrics = request(server.http(), "GET", "/metrics", &[], b"");
    for line in [
        r#"dav2d_samples_received_total{component="http",kind="http"} 3"#,
        r#"dav2d_samples_accepted_total{component="http",kind="http"} 2"#,
        r#"dav2d_samples_rejected_total{component="http",kind="http",reason="above_max",stage="engine"} 1"#,
        "dav2d_evaluations_total 2",
        "dav2d_parse_seconds_count 1",
        r#"dav2d_node_evaluations_total{node="double"} 2"#,
        r#"dav2d_component_up{component="http",kind="http"} 1"#,
        r#"dav2d_component_up{component="tcp",kind="tcp"} 1"#,
    ] {
        assert!(
            metrics.body.contains(line),
            "missing '{line}' in:\n{}",
            metrics.body
        );
    }
    assert_eq!(
        request(server.http(), "GET", "/healthz", &[], b"").status,
        200
    );
}

#[test]
fn events_stream_node_changes() {
    let server = start();
    let mut stream = connect(server.http());
    stream
        .write_all(b"GET /events?names=double HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while find(&seen, b"\r\n\r\n").is_none() {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("text/event-stream"));
    post_json(
        server.http(),
        "/ingest/temp",
        r#"[{"key": "a", "value": 4}]"#,
    );
    for _ in 0..100 {
        if find(&seen, b"\"value\":8.0").is_some() {
            break;
        }
        let n = stream.read(&mut buffer).unwrap();
        seen.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("event: update")
            && text.contains(r#""name":"double""#)
            && text.contains(r#""value":8.0"#),
        "{text}"
    );
    let unknown = request(server.http(), "GET", "/events?names=nope", &[], b"");
    assert_eq!(unknown.status, 404);
}

#[test]
fn reads_answer_while_the_engine_is_held() {
    let server = start();
    post_json(
        server.http(),
        "/ingest/temp",
        r#"[{"key": "a", "value": 4}]"#,
    );
    // A test hook holding the engine lock, as a long wave would.
    let held = server.graph.lock();
    for path in [
        "/state/double?key=a",
        "/state/temp",
        "/graph",
        "/metrics",
        "/healthz",
    ] {
        let response = request(server.http(), "GET", path, &[], b"");
        assert_eq!(response.status, 200, "{path}: {}", response.body);
    }
    let state = json(&request(
        server.http(),
        "GET",
        "/state/double?key=a",
        &[],
        b"",
    ));
    assert_eq!(state["value"], 8.0, "the published state of the last wave");
    let graph = json(&request(server.http(), "GET", "/graph", &[], b""));
    assert_eq!(graph["nodes"][0]["evaluations"], 1);
    let missing = request(server.http(), "GET", "/state/dubble", &[], b"");
    assert!(
        missing.body.contains("did you mean 'double'"),
        "{}",
        missing.body
    );
    drop(held);
}

#[test]
fn other_parts_report_health_and_gauges_through_the_api() {
    let status = Arc::new(FakeStatus::default());
    let server = start();
    server
        .runtime
        .health()
        .pin("persistence", "persistence", status.clone());
    assert_eq!(
        request(server.http(), "GET", "/healthz", &[], b"").status,
        200
    );
    *status.problem.lock().unwrap() = Some("disk full; retrying".into());
    let degraded = request(server.http(), "GET", "/healthz", &[], b"");
    assert_eq!(degraded.status, 503);
    assert_eq!(
        json(&degraded)["problems"][0],
        "persistence: disk full; retrying"
    );
    let metrics = request(server.http(), "GET", "/metrics", &[], b"");
    assert!(
        metrics.body.lines().any(|line| line
            .starts_with("dav2d_file_actions_remaining_today{component=\"persistence\"")
            && line.ends_with(" 159990")),
        "{}",
        metrics.body
    );
    // Degraded is not down: samples are still taken.
    assert_eq!(
        post_json(
            server.http(),
            "/ingest/temp",
            r#"[{"key": "a", "value": 1}]"#
        )
        .status,
        200
    );
}

#[test]
fn metrics_export_the_values_of_the_names_a_config_lists_with_bounded_keys() {
    let yaml = "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: moving_average\n    n: 2\n    input: temp\n\
                constraints:\n  - name: hot\n    input: avg\n    trip: 5\n\
                metrics:\n  values: [avg, hot]\n  max_keys: 2\n\
                http:\n  bind: 127.0.0.1:0\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n";
    let config = dav2d_runtime::Config::parse(yaml, std::path::Path::new("m.yaml")).unwrap();
    let graph = dav2d_core::SharedGraph::new(dav2d_core::Graph::new(
        dav2d_core::GraphOptions::default(),
        std::sync::Arc::new(dav2d_core::SystemClock),
    ));
    let runtime = dav2d_runtime::Runtime::start(
        dav2d_runtime::Plan::new(config, dav2d_runtime::Overrides::default()).unwrap(),
        graph.clone(),
    )
    .unwrap();
    {
        let mut g = graph.lock();
        for key in ["a", "b", "c"] {
            g.push("temp", key, dav2d_core::Value::Float(10.0), None)
                .unwrap();
        }
        g.run_wave();
    }
    let address = runtime.address("http").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    assert!(
        text.contains("dav2d_value{name=\"avg\",key=\"a\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("dav2d_value{name=\"avg\",key=\"b\"} 10"),
        "{text}"
    );
    assert!(!text.contains("key=\"c\""), "two keys at most: {text}");
    // A constraint's keys as an enum: one series per state, 1 for its own.
    for (state, on) in [("tripped", 1), ("ok", 0), ("stale", 0)] {
        let series = format!(
            "dav2d_constraint_state{{constraint=\"hot\",key=\"a\",state=\"{state}\"}} {on}"
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
    assert!(!text.contains("dav2d_value{name=\"hot\""), "{text}");
    assert!(
        text.contains("dav2d_value_keys_left_out{name=\"avg\"} 1"),
        "{text}"
    );
    runtime.stop();
    // Names are checked against the built graph, as every name a config
    // reads: with the closest one, and a stream a source declares counts.
    let built = |yaml: &str| {
        let mut graph = dav2d_core::Graph::new(
            dav2d_core::GraphOptions {
                auto_create_streams: false,
                ..dav2d_core::GraphOptions::default()
            },
            std::sync::Arc::new(dav2d_core::ManualClock::new(0)),
        );
        dav2d_runtime::Config::parse(yaml, std::path::Path::new("m.yaml"))
            .and_then(|config| config.build(&mut graph))
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        built("streams:\n  - name: temp\nmetrics:\n  values: [tmep]\n").unwrap_err(),
        "m.yaml:4:12: metrics.values[0]: 'tmep' is not a stream, node or constraint of this graph (did you mean 'temp'?)"
    );
    built("sources:\n  - kind: synthetic\n    stream: temp\nmetrics:\n  values: [temp]\n").unwrap();
}

#[test]
fn a_conflated_event_stream_gets_the_newest_values_and_every_transition() {
    let server = start();
    server
        .graph
        .lock()
        .register(dav2d_core::NodeSpec::constraint(
            "hot",
            "temp",
            dav2d_core::ConstraintSpec::above(100.0),
        ))
        .unwrap();
    let mut stream = connect(server.http());
    write!(
        stream,
        "GET /events?conflate=1&names=temp,hot HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 65536];
    // Headers first: the hub covers both names once they are sent.
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).unwrap();
        seen.extend_from_slice(&buffer[..n]);
    }
    // 1000 waves: 50 samples at 50, 50 at 120, ... (10 trips), then 77.5.
    for i in 0..1001 {
        let value = match i {
            1000 => 77.5,
            i if i % 100 < 50 => 50.0,
            _ => 120.0,
        };
        let mut graph = server.graph.lock();
        graph
            .push("temp", "k", dav2d_core::Value::Float(value), None)
            .unwrap();
        graph.run_wave();
    }
    let text = loop {
        let text = String::from_utf8_lossy(&seen).to_string();
        if text.contains("\"value\":77.5") && text.matches("\"to\":\"tripped\"").count() >= 10 {
            break text;
        }
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended: {text}");
        seen.extend_from_slice(&buffer[..n]);
    };
    let updates = text.matches("\"name\":\"temp\"").count();
    assert!(
        updates < 1001,
        "{updates} updates of one key: not conflated"
    );
    assert_eq!(text.matches("\"to\":\"tripped\"").count(), 10, "{text}");
}
