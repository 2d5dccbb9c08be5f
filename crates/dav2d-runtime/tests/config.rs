//! Config errors name the file, line, column and field; good configs build
//! the graph they describe.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::Path;
use std::sync::Arc;

use dav2d_core::{Graph, GraphOptions, ManualClock};
use dav2d_runtime::Config;

#[path = "common/graphs.rs"]
mod graphs;
use graphs::strict_graph;

/// Parses and builds `yaml`; the error text must be `expected` exactly.
fn check(yaml: &str, expected: &str) {
    let result = Config::parse(yaml, Path::new("test.yaml"))
        .and_then(|config| config.build(&mut strict_graph()));
    match result {
        Ok(()) => panic!("expected an error: {expected}"),
        Err(error) => assert_eq!(error.to_string(), expected, "for config:\n{yaml}"),
    }
}

/// Like [`check`], but only requires the error to start with `prefix` and contain `part`.
fn check_contains(yaml: &str, prefix: &str, part: &str) {
    let result = Config::parse(yaml, Path::new("test.yaml"))
        .and_then(|config| config.build(&mut strict_graph()));
    let error = result.expect_err("expected an error").to_string();
    assert!(
        error.starts_with(prefix) && error.contains(part),
        "got: {error}"
    );
}

const STREAM: &str = "streams:\n  - name: temp\n";

#[test]
fn the_demo_builds() {
    let config = Config::demo().unwrap();
    let mut graph = strict_graph();
    config.build(&mut graph).unwrap();
    let names: Vec<String> = graph.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        vec![
            "temp_avg",
            "temp_ewma",
            "temp_rate",
            "temp_peak",
            "overheat"
        ]
    );
}

#[test]
fn graph_errors_point_at_their_line() {
    check(
        &format!(
            "{STREAM}nodes:\n  - name: avg\n    kind: moving_average\n    input: tmp\n    n: 5\n"
        ),
        "test.yaml:6:12: nodes[0].input: node 'avg' reads 'tmp', which is neither a declared stream nor a node (did you mean 'temp'?)",
    );
    check(
        &format!(
            "{STREAM}nodes:\n  - name: a\n    kind: delta\n    input: b\n  - name: b\n    kind: delta\n    input: a\n"
        ),
        "test.yaml:4:11: nodes[0].name: the graph would have a cycle: a -> b -> a; a node cannot depend on its own output",
    );
    check(
        &format!(
            "{STREAM}nodes:\n  - name: d\n    kind: delta\n    input: temp\nconstraints:\n  - name: d\n    input: temp\n    trip: 1\n"
        ),
        "test.yaml:8:11: constraints[0].name: the name 'd' is already taken by another node in the same registration; streams, nodes and constraints share one namespace, so pick another name",
    );
}

#[test]
fn field_errors_say_what_was_expected() {
    check(
        &format!("{STREAM}nodes:\n  - name: avg\n    kind: moving_avg\n    input: temp\n"),
        "test.yaml:5:11: nodes[0].kind: unknown node kind 'moving_avg'; expected one of moving_average, ewma, min, max, sum, rate, delta, clamp, scale",
    );
    check(
        &format!("{STREAM}nodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n"),
        "test.yaml:5:11: nodes[0].n: moving_average needs `n`",
    );
    check(
        &format!(
            "{STREAM}nodes:\n  - name: avg\n    kind: sum\n    input: temp\n    n: 3\n    policy: every\n"
        ),
        "test.yaml:8:13: nodes[0].policy: unknown policy 'every'; expected latest or all",
    );
    check(
        &format!(
            "{STREAM}constraints:\n  - name: hot\n    input: temp\n    trip: 80\n    for: soon\n"
        ),
        "test.yaml:7:10: constraints[0].for: 'soon' is not a duration (expected number at 0); write e.g. 500ms, 2s or 1m",
    );
    check(
        &format!("{STREAM}constraints:\n  - name: hot\n    input: temp\n    trip: 80\n    reset: 90\n"),
        "test.yaml:4:11: constraints[0]: node 'hot': an 'above' constraint needs reset <= trip, got trip=80 reset=90"
            .replace("node 'hot': ", "")
            .as_str(),
    );
}

#[test]
fn syntax_and_shape_errors_have_a_location() {
    check_contains(
        "streams:\n  - name: temp\n    colour: blue\n",
        "test.yaml:3:5",
        "colour",
    );
    check_contains("nodes: [\n", "test.yaml:", "");
    check_contains(
        "constraints:\n  - name: hot\n    input: temp\n    trip: hot\n",
        "test.yaml:4:11",
        "",
    );
}

#[test]
fn a_missing_file_is_named() {
    let error = Config::load(Path::new("/nonexistent/dav2d.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("/nonexistent/dav2d.yaml: cannot read the config file"),
        "{error}"
    );
}

#[test]
fn durations_accept_units_and_plain_seconds() {
    let yaml = format!(
        "{STREAM}constraints:\n  - name: hot\n    input: temp\n    trip: 80\n    for: 1.5\n    stale_after: 2m\nrun:\n  tick: 20ms\n"
    );
    let config = Config::parse(&yaml, Path::new("t.yaml")).unwrap();
    let mut graph = strict_graph();
    config.build(&mut graph).unwrap();
    assert_eq!(
        graph.nodes()[0].logic,
        "constraint(above trip=80 reset=80 for=1.5s stale_after=120s)"
    );
    assert_eq!(config.tick().unwrap(), std::time::Duration::from_millis(20));
}

#[test]
fn sources_and_sinks_are_lists_tagged_by_kind() {
    check(
        "sources:\n  - kind: kafka\n    topic: x\n",
        "test.yaml:2:5: kind: unknown sources kind 'kafka'; expected one of: synthetic, http, tcp, frames, mqtt, nats",
    );
    check(
        "sinks:\n  - kind: kafka\n",
        "test.yaml:2:5: kind: unknown sinks kind 'kafka'; expected one of: persistence, mqtt, nats, webhook",
    );
    check(
        "sources:\n  - kind: mqtt\n    url: mqtt://127.0.0.1:1883\n    subscriptions:\n      - topic: plant/{key}/t\n",
        "test.yaml:5:16: sources[0].subscriptions[0].topic: names no stream: put {stream} in the topic or give stream:",
    );
    check(
        "sources:\n  - kind: mqtt\n    url: tcp://x\n    subscriptions:\n      - topic: a/{stream}\n",
        "test.yaml:3:10: sources[0].url: 'tcp://x' is not an MQTT URL; write mqtt://127.0.0.1:1883, or mqtts://host:8883 for TLS",
    );
    check(
        "persistence:\n  enabled: false\nsources:\n  - kind: nats\n    url: nats://h:4222\n    subjects:\n      - subject: a.{key}.{stream}\n    jetstream:\n      stream: S\n      ack: durable\n",
        "test.yaml:10:12: sources[0].jetstream.ack: ack: durable waits for persistence, which is off; turn persistence on or use ack: applied",
    );
    check(
        "sources:\n  - kind: nats\n    url: nats://h:4222\n    subjects:\n      - subject: a.>.{key}\n",
        "test.yaml:5:18: sources[0].subjects[0].subject: 'a.>.{key}': > may only be the last level",
    );
    check(
        "sinks:\n  - kind: mqtt\n    url: mqtt://h\n    qos: 2\n",
        "test.yaml:4:10: sinks[0].qos: QoS 2 is not taken; give 0 or 1",
    );
    check_contains(
        "sources:\n  - stream: temp\n    kind: synthetic\n",
        "test.yaml:2:",
        "each entry of sources starts with `kind:`",
    );
    // A field of the kind's section that is not there is located on its line.
    check_contains(
        "sources:\n  - kind: tcp\n    bind: 127.0.0.1:0\n    max_lines: 3\n",
        "test.yaml:",
        "unknown field `max_lines`",
    );
    // Values are checked with their own line and field.
    check(
        "sources:\n  - kind: http\n    bind: nowhere\n",
        "test.yaml:3:11: sources[0].bind: 'nowhere' is not an address (invalid socket address syntax); write e.g. 127.0.0.1:8080",
    );
    check(
        "sources:\n  - kind: synthetic\n    stream: temp\n    devices: 0\n",
        "test.yaml:2:11: sources[0]: a synthetic source needs 1 <= devices <= 1000000 and 0 < rate_hz <= 100000, got devices=0 rate_hz=100",
    );
    check(
        "sinks:\n  - kind: persistence\n    fsync: sometimes\n",
        "test.yaml:3:12: sinks[0].fsync: unknown fsync policy 'sometimes'; expected always, batch or off",
    );
}

#[test]
fn a_plan_names_every_component_once() {
    let config = Config::parse(
        "streams:\n  - name: temp\nsources:\n  - kind: synthetic\n    stream: temp\n  - kind: synthetic\n    stream: temp\n  - kind: tcp\n    name: plant-floor\n    bind: 127.0.0.1:0\nsinks:\n  - kind: persistence\n    dir: /tmp/elsewhere\n",
        Path::new("test.yaml"),
    )
    .unwrap();
    let plan = dav2d_runtime::Plan::new(config, dav2d_runtime::Overrides::default()).unwrap();
    let names: Vec<&str> = plan.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["synthetic", "synthetic-2", "plant-floor"]);
    assert_eq!(plan.sinks[0].name, "persistence-2");
    assert!(plan.http.is_some() && plan.tcp.is_some() && plan.persistence.is_some());
}

#[test]
fn stream_types_are_checked_where_they_are_written() {
    check(
        "streams:\n  - name: temp\n    type: strnig\n",
        "test.yaml:3:11: streams[0].type: unknown type 'strnig'; expected one of: number, string, bool, record, bytes, frame, any",
    );
    check_contains(
        "streams:\n  - name: label\n    type: string\nnodes:\n  - name: avg\n    kind: moving_average\n    input: label\n    n: 3\n",
        "test.yaml:5:",
        "it needs numbers, but stream 'label' is declared to take string values",
    );
}

#[test]
fn nodes_can_be_offloaded_from_yaml() {
    let config = Config::parse(
        "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    n: 3\n    offload: true\nrun:\n  workers: 2\n",
        Path::new("test.yaml"),
    )
    .unwrap();
    assert_eq!(config.workers().unwrap(), Some(2));
    let mut graph = strict_graph();
    config.build(&mut graph).unwrap();
    assert!(graph.nodes()[0].offload);
    assert!(graph.has_offloaded_nodes());
    check(
        "streams:\n  - name: temp\nnodes:\n  - name: smooth\n    kind: ewma\n    input: temp\n    alpha: 0.5\n    offload: true\n",
        "test.yaml:4:11: nodes[0].name: node 'smooth': ewma keeps its memory in the engine and cannot be offloaded",
    );
}

#[test]
fn values_a_user_types_are_bounded_never_a_panic() {
    check(
        "http:\n  token: \"\"\n",
        "test.yaml:2:10: http.token: an empty token would turn auth off; remove `token` to run without one, or set a secret",
    );
    for field in ["tick: 1e20", "tick: 2e19", "tick: 1000000000000 years"] {
        let yaml = format!("run:\n  {field}\n");
        check_contains(&yaml, "test.yaml:2:", "run.tick");
    }
    check_contains(
        "streams:\n  - name: temp\nconstraints:\n  - name: hot\n    input: temp\n    trip: 1\n    for: 1e19\n",
        "test.yaml:7:10: constraints[0].for:",
        "longer than the longest duration dav2d takes (100 years)",
    );
    check_contains(
        "http:\n  header_timeout: 99999999999999999999\n",
        "test.yaml:2:19: http.header_timeout:",
        "100 years",
    );
}

#[test]
fn sizes_a_user_types_are_bounded_never_an_abort() {
    check(
        "streams:\n  - name: temp\n    keep: 1000000000000\n",
        "test.yaml:2:11: streams[0].name: stream 'temp': keep=1000000000000 is more than the 1048576 samples a key can keep",
    );
    check_contains(
        "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    n: 1e12\n",
        "test.yaml:5:11: nodes[0]:",
        "is more than the 1048576 samples a key can keep",
    );
}

#[test]
fn limits_and_listener_settings_are_bounded_where_they_are_written() {
    check(
        "limits:\n  keys: 0\n",
        "test.yaml:2:9: limits.keys: keys must be between 1 and 4294967295, got 0",
    );
    check_contains(
        "limits:\n  value_size: 2TiB\n",
        "test.yaml:2:15: limits.value_size:",
        "'2TiB'",
    );
    check_contains(
        "limits:\n  kyes: 5\n",
        "test.yaml:2:3:",
        "unknown field `kyes`",
    );
    check_contains(
        "ingest:\n  all_queue: 4611686018427387904\n",
        "test.yaml:2:14: ingest.all_queue:",
        "out of range; give a whole number from 1 to 1073741824",
    );
    check_contains(
        "ingest:\n  workers: 1000000\n",
        "test.yaml:2:12: ingest.workers:",
        "from 0 to 1024",
    );
    check_contains(
        "run:\n  workers: 1000000\n",
        "test.yaml:2:12: run.workers:",
        "from 1 to 64",
    );
    check_contains(
        "http:\n  max_connections: 0\n",
        "test.yaml:2:20: http.max_connections:",
        "from 1 to",
    );
    check_contains(
        "http:\n  max_body: 1GiB\n",
        "test.yaml:2:13: http.max_body:",
        "larger than one body may hold of ingest.body_budget",
    );
    check_contains(
        "tcp:\n  max_line: 8GiB\n",
        "test.yaml:2:13: tcp.max_line:",
        "more than a binary unit can carry",
    );
    check_contains(
        "tcp:\n  token: \" \"\n",
        "test.yaml:2:10: tcp.token:",
        "an empty token would turn auth off",
    );
    check_contains(
        "tcp:\n  idle_timeout: 1e30\n",
        "test.yaml:2:17: tcp.idle_timeout:",
        "100 years",
    );
    check_contains(
        "http:\n  tls:\n    cert: missing-cert.pem\n    key: missing-key.pem\n",
        "test.yaml:3:11: http.tls.cert:",
        "cannot read the certificate",
    );
    check_contains(
        "streams:\n  - name: temp\nsources:\n  - kind: synthetic\n    stream: temp\n    devices: 18446744073709551615\n",
        "test.yaml:4:11: sources[0]:",
        "devices <= 1000000",
    );
}

#[test]
fn the_limits_section_reaches_the_graph() {
    let config = Config::parse(
        "limits:\n  keys_per_stream: 2\n  key_length: 1KiB\n",
        Path::new("test.yaml"),
    )
    .unwrap();
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(ManualClock::new(0)));
    config.build(&mut graph).unwrap();
    assert_eq!(graph.options().limits.max_keys_per_stream, 2);
    assert_eq!(graph.options().limits.max_key_len, 1024);
    // The TCP source takes the HTTP token unless it has its own.
    let config = Config::parse("http:\n  token: s3cret\n", Path::new("test.yaml")).unwrap();
    assert_eq!(
        config.tcp().unwrap().unwrap().listen.token.as_deref(),
        Some("s3cret")
    );
}

#[test]
fn cluster_settings_out_of_range_name_their_line_and_field() {
    let cases = [
        (
            "cluster:\n  url: nats://127.0.0.1:4222\n  replicas: 9\n",
            "test.yaml:3:13: cluster.replicas: 9 is out of range; JetStream keeps 1 to 5 copies",
        ),
        (
            "cluster:\n  url: nats://127.0.0.1:4222\n  checkpoint_every: soon\n",
            "test.yaml:3:21: cluster.checkpoint_every: ",
        ),
    ];
    for (yaml, expected) in cases {
        let error = Config::parse(yaml, Path::new("test.yaml"))
            .and_then(|config| config.cluster(None))
            .expect_err("expected an error")
            .to_string();
        assert!(error.starts_with(expected), "got: {error}");
    }
    let config = Config::parse(
        "cluster:\n  url: nats://127.0.0.1:4222\n  checkpoint_every: 0s\n",
        Path::new("test.yaml"),
    )
    .unwrap();
    let cluster = config.cluster(None).unwrap().unwrap();
    assert_eq!(cluster.checkpoint_every, std::time::Duration::ZERO);
    assert_eq!(cluster.replicas, 1);
}

#[test]
fn a_stream_says_what_late_samples_do_and_a_wrong_policy_is_located() {
    check(
        "streams:\n  - name: t\n    late: sometimes\n",
        "test.yaml:3:11: streams[0].late: unknown late policy 'sometimes'; expected drop or insert",
    );
    check(
        "streams:\n  - name: t\n    allowed_lateness: 5s\n",
        "test.yaml:3:23: streams[0].allowed_lateness: allowed_lateness needs `late: insert` (late samples are dropped otherwise)",
    );
    let config = Config::parse(
        "streams:\n  - name: t\n    keep: 5\n    late: insert\n    allowed_lateness: 5s\n",
        Path::new("test.yaml"),
    )
    .unwrap();
    let mut graph = strict_graph();
    config.build(&mut graph).unwrap();
    let second = 1_000_000_000;
    graph
        .push("t", "k", dav2d_core::Value::Float(1.0), Some(10 * second))
        .unwrap();
    // 4 s late: kept in the window; 6 s late: refused.
    graph
        .push("t", "k", dav2d_core::Value::Float(2.0), Some(6 * second))
        .unwrap();
    assert!(
        graph
            .push("t", "k", dav2d_core::Value::Float(3.0), Some(4 * second))
            .is_err()
    );
    assert_eq!(graph.window("t", "k", 5).unwrap().numbers(), &[2.0, 1.0]);
}

#[test]
fn a_constraint_takes_pythons_spelling_for_() {
    let config = Config::parse(
        "streams:\n  - name: t\nconstraints:\n  - name: hot\n    input: t\n    trip: 5\n    for_: 500ms\n",
        Path::new("test.yaml"),
    )
    .unwrap();
    let mut graph = strict_graph();
    config.build(&mut graph).unwrap();
    let hot = graph.nodes().into_iter().find(|n| n.name == "hot").unwrap();
    assert!(hot.logic.contains("for=0.5s"), "{}", hot.logic);
}

#[test]
fn a_token_no_client_could_send_is_refused_at_its_line() {
    check_contains(
        "http:\n  token: pässwort\n",
        "test.yaml:2:10: http.token:",
        "printable ASCII without spaces",
    );
    check_contains(
        "tcp:\n  token: two words\n",
        "test.yaml:2:10: tcp.token:",
        "printable ASCII",
    );
}

#[test]
fn windows_one_key_could_not_fit_are_refused_at_their_keep() {
    let long = "streams:\n  - name: temp\n    keep: 1048576\nnodes:\n  - name: avg\n    kind: moving_average\n    n: 4\n    input: temp\n";
    // 32 MiB a key: the default 512 MiB holds 16 such keys (the run refuses
    // the 17th); a budget of 1 MiB could hold none.
    Config::parse(long, Path::new("test.yaml"))
        .and_then(|config| config.build(&mut strict_graph()))
        .unwrap();
    check_contains(
        &format!("{long}limits:\n  window_bytes: 1MiB\n"),
        "test.yaml:2:11: streams[0].keep:",
        "more than limits.window_bytes (1.0 MiB) holds: no key could be taken",
    );
}
