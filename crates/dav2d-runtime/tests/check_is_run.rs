//! What `dav2d check` passes is what `dav2d run` builds: the names sinks,
//! metrics and persistence read are checked against the built graph, two
//! components may not share a name, a frame source cannot feed a numeric
//! stream, an unknown field names the closest valid one, broker sources
//! declare the streams they name, and `--data off` leaves no store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::Path;

use dav2d_core::Graph;
use dav2d_runtime::{Config, Overrides, Plan, Spec};

#[path = "common/graphs.rs"]
mod graphs;
use graphs::strict_graph;

/// Parses, plans and builds `yaml` as `dav2d check` does.
fn build(yaml: &str) -> Result<(Plan, Graph), String> {
    let config = Config::parse(yaml, Path::new("test.yaml")).map_err(|e| e.to_string())?;
    let plan = Plan::new(config, Overrides::default()).map_err(|e| e.to_string())?;
    let mut graph = strict_graph();
    plan.build(&mut graph).map_err(|e| e.to_string())?;
    Ok((plan, graph))
}

fn error(yaml: &str) -> String {
    match build(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(error) => error,
    }
}

const GRAPH: &str = "streams:\n  - name: temperature\nconstraints:\n  - name: overheat\n    input: temperature\n    trip: 80\n";

#[test]
fn a_misspelt_sink_name_is_refused_at_its_line_with_the_closest_name() {
    let yaml = format!(
        "{GRAPH}sinks:\n  - kind: webhook\n    url: http://127.0.0.1:9/alerts\n    names: [overheet]\n"
    );
    assert_eq!(
        error(&yaml),
        "test.yaml:10:13: sinks[0].names[0]: 'overheet' is not a stream, node or constraint of this graph (did you mean 'overheat'?)"
    );
    let yaml = format!(
        "{GRAPH}sinks:\n  - kind: mqtt\n    url: mqtt://127.0.0.1:1883\n    names: [overheat, temp_avg]\n"
    );
    assert!(
        error(&yaml).starts_with("test.yaml:10:23: sinks[0].names[1]: 'temp_avg' is not"),
        "{}",
        error(&yaml)
    );
    let yaml = format!("{GRAPH}persistence:\n  streams: [temprature]\n");
    assert!(
        error(&yaml).contains("persistence.streams[0]: 'temprature' is not a stream")
            && error(&yaml).contains("did you mean 'temperature'?"),
        "{}",
        error(&yaml)
    );
}

#[test]
fn two_components_with_one_name_are_refused() {
    let yaml = "sources:\n  - kind: http\n    name: api\n    bind: 127.0.0.1:0\n  - kind: tcp\n    name: api\n    bind: 127.0.0.1:0\n";
    assert_eq!(
        error(yaml),
        "test.yaml:5:11: sources[1].name: 'api' is already the name of sources[0]; a component's name labels its metrics and health, give each its own"
    );
    let yaml = "sinks:\n  - kind: persistence\n    name: http\n    dir: x\n";
    assert!(
        error(yaml).contains("'http' is already the name of the top-level `http` section"),
        "{}",
        error(yaml)
    );
}

#[test]
fn a_frame_source_cannot_feed_a_numeric_stream() {
    let yaml = "streams:\n  - name: cam\n    type: number\nsources:\n  - kind: frames\n    url: synthetic:64x48@10\n    stream: cam\n";
    assert!(
        error(yaml).starts_with("test.yaml:7:13: sources[0].stream: a frames source makes frames, but stream 'cam' is declared `type: number`"),
        "{}",
        error(yaml)
    );
    let yaml = "streams:\n  - name: cam\n    min: 0\nsources:\n  - kind: frames\n    url: synthetic:64x48@10\n    stream: cam\n";
    assert!(error(yaml).contains("declared with numeric bounds"));
    // Declared as frames, or not declared at all: fine.
    build("streams:\n  - name: cam\n    type: frame\nsources:\n  - kind: frames\n    url: synthetic:64x48@10\n    stream: cam\n").unwrap();
    build("streams:\n  - name: cam\nsources:\n  - kind: frames\n    url: synthetic:64x48@10\n    stream: cam\nnodes:\n  - name: luma\n    kind: mean_luma\n    input: cam\n").unwrap();
}

#[test]
fn an_unknown_field_names_the_closest_valid_one() {
    let node =
        "streams:\n  - name: t\nnodes:\n  - name: avg\n    kind: moving_average\n    input: t\n";
    for written in ["windw: 5s", "windw: 50"] {
        assert_eq!(
            error(&format!("{node}    {written}\n")),
            "test.yaml:7:12: nodes[0].windw: moving_average takes no field `windw`; did you mean `window`? it takes name, kind, input, inputs, policy, priority, deadband, offload, window, max_samples, n"
        );
    }
    assert_eq!(
        error(&format!("{node}    n: five\n")),
        "test.yaml:7:8: nodes[0].n: `n` of moving_average is a number, got 'five'"
    );
    assert_eq!(
        error("sources:\n  - kind: synthetic\n    stream: t\n    steps: -1\n"),
        "test.yaml:4:12: steps: expected a whole number >= 0, got '-1'"
    );
    let unknown = error("streams:\n  - name: t\n    finite: true\n");
    assert!(
        unknown.starts_with("test.yaml:3:5: finite: unknown field `finite`; did you mean `finite_only`? valid here: name, min, max, finite_only"),
        "{unknown}"
    );
}

#[test]
fn processing_takes_one_value_for_every_channel_and_a_missing_model_is_refused() {
    let dir = std::env::temp_dir().join(format!("dav2d-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.onnx");
    std::fs::write(&model, b"not really a model, but a file").unwrap();
    let yaml = |path: &Path| {
        format!(
            "model_path: {}\nprocessing:\n  resolution: [8, 8]\n  mean: 0.5\n  std: 2\n",
            path.display()
        )
    };
    Config::parse(&yaml(&model), Path::new("test.yaml")).unwrap();
    let missing = Config::parse(&yaml(&dir.join("gone.onnx")), Path::new("test.yaml"))
        .expect_err("a model that does not exist")
        .to_string();
    assert!(
        missing.starts_with("test.yaml:1:13: model_path: model_path ")
            && missing.contains("does not exist"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn broker_sources_declare_the_streams_they_name() {
    let yaml = "sources:\n  - kind: mqtt\n    url: mqtt://127.0.0.1:1883\n    subscriptions:\n      - topic: plant/{key}/temperature\n        stream: temperature\n  - kind: nats\n    url: nats://127.0.0.1:4222\n    subjects:\n      - subject: plant.{key}.humidity\n        stream: humidity\nnodes:\n  - name: temp_avg\n    kind: moving_average\n    input: temperature\n    n: 5\n";
    let (plan, graph) = build(yaml).unwrap();
    assert!(graph.stream_id("temperature").is_some());
    assert!(graph.stream_id("humidity").is_some());
    let spec = Spec::of_plan(&graph, &plan);
    let mqtt = spec.sources.iter().find(|s| s.kind == "mqtt").unwrap();
    assert_eq!(mqtt.names, vec!["temperature".to_string()]);
}

#[test]
fn the_spec_lists_every_component_and_reads_back_as_it_was_written() {
    let yaml = format!(
        "{GRAPH}http:\n  bind: 127.0.0.1:0\n  token: s3cret\nsinks:\n  - kind: webhook\n    url: http://127.0.0.1:9/alerts\n    names: [overheat]\nmetrics:\n  values: [temperature]\n  max_keys: 5\npersistence:\n  dir: somewhere\n"
    );
    let (plan, graph) = build(&yaml).unwrap();
    let spec = Spec::of_plan(&graph, &plan);
    let kinds: Vec<(&str, &str)> = (spec.sources.iter().chain(&spec.sinks))
        .map(|c| (c.name.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("http", "http"),
            ("tcp", "tcp"),
            ("persistence", "persistence"),
            ("webhook", "webhook")
        ]
    );
    assert_eq!(spec.sources[0].token, Some(true));
    // The TCP server takes the HTTP token unless its own section gives one.
    assert_eq!(spec.sources[1].token, Some(true));
    assert_eq!(spec.metrics.values, vec!["temperature".to_string()]);
    assert_eq!(spec.metrics.max_keys, 5);
    assert_eq!(spec.persistence.as_ref().unwrap().dir, "somewhere");
    assert_eq!(spec.nodes[0].name, "overheat");
    // Plain data: JSON round trip, equal to itself, printable.
    let back: Spec = serde_json::from_str(&spec.to_json()).unwrap();
    assert_eq!(back, spec);
    let back: Spec = serde_saphyr::from_str(&spec.to_yaml()).unwrap();
    assert_eq!(back, spec, "{}", spec.to_yaml());
    let text = spec.to_string();
    for part in [
        "sources:",
        "http (http) 127.0.0.1:0, token required",
        "sinks:",
        "webhook (webhook) http://127.0.0.1:9/alerts <- overheat",
        "persistence: somewhere",
        "metrics: counters, and per-key values of temperature (at most 5 keys each)",
    ] {
        assert!(text.contains(part), "{part} in:\n{text}");
    }
}

#[test]
fn data_off_leaves_no_store_at_all() {
    let yaml = format!(
        "{GRAPH}sinks:\n  - kind: persistence\n    name: archive\n    dir: /mnt/archive/dav2d\n"
    );
    let config = Config::parse(&yaml, Path::new("test.yaml")).unwrap();
    let overrides = Overrides {
        data: Some(None),
        ..Overrides::default()
    };
    let plan = Plan::new(config, overrides).unwrap();
    assert!(plan.persistence.is_none());
    assert!(plan.sinks.is_empty(), "{:?}", plan.sinks);
}

#[test]
fn check_says_which_doors_are_open_without_a_token() {
    let doors = "sources:\n  - kind: frames\n    name: cam\n    url: tcp://127.0.0.1:7171\n    stream: camera\n  - kind: http\n    name: extra\n    bind: 127.0.0.1:8181\n";
    let (plan, graph) = build(doors).unwrap();
    let text = Spec::of_plan(&graph, &plan).to_string();
    assert!(
        text.contains("open without a token: http (127.0.0.1:8080), tcp (127.0.0.1:7070), cam (tcp://127.0.0.1:7171), extra (127.0.0.1:8181)"),
        "{text}"
    );
    // With http.token every door takes it: none is listed.
    let (plan, graph) = build(&format!("http:\n  token: s3cret\n{doors}")).unwrap();
    let text = Spec::of_plan(&graph, &plan).to_string();
    assert!(!text.contains("open without a token"), "{text}");
    assert!(
        text.contains("cam (frames) tcp://127.0.0.1:7171, token required"),
        "{text}"
    );
}
