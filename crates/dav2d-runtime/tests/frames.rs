//! Frame sources and frame nodes from a YAML config: a `kind: frames`
//! source feeds its stream, frame nodes and a constraint over them run, and
//! bad URLs and parameters are located errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dav2d_core::{Graph, GraphOptions, SharedGraph, SystemClock, Value};
use dav2d_runtime::{Config, Overrides, Plan, Runtime};

const CONFIG: &str = "streams:
  - name: camera
    type: frame
nodes:
  - name: luma
    kind: mean_luma
    input: camera
  - name: thumb
    kind: downscale
    input: camera
    width: 8
    height: 4
constraints:
  - name: dark
    input: luma
    trip: 1
    direction: below
sources:
  - kind: frames
    url: synthetic:32x16@200?format=rgb8
    stream: camera
http:
  enabled: false
tcp:
  enabled: false
persistence:
  enabled: false
";

#[test]
fn a_frames_source_feeds_frame_nodes_from_yaml() {
    let config = Config::parse(CONFIG, Path::new("frames.yaml")).unwrap();
    let options = GraphOptions {
        auto_create_streams: false,
        ..GraphOptions::default()
    };
    let graph = SharedGraph::new(Graph::new(options, Arc::new(SystemClock)));
    let plan = Plan::new(config, Overrides::default()).unwrap();
    let runtime = Runtime::start(plan, graph.clone()).unwrap();
    let mut luma = None;
    for _ in 0..500 {
        let locked = graph.lock();
        let value = |name: &str| {
            locked
                .latest(name, "")
                .ok()
                .flatten()
                .and_then(|r| r.sample)
        };
        if let (Some(l), Some(thumb)) = (value("luma"), value("thumb")) {
            luma = Some(l.value);
            assert!(matches!(thumb.value, Value::Frame(_)), "{:?}", thumb.value);
            break;
        }
        drop(locked);
        std::thread::sleep(Duration::from_millis(10));
    }
    runtime.stop();
    let Some(Value::Float(luma)) = luma else {
        panic!("no luma came: {luma:?}");
    };
    assert!((0.0..=255.0).contains(&luma), "{luma}");
    assert!(graph.lock().latest("dark", "").unwrap().is_some());
}

#[test]
fn frame_sources_and_nodes_are_checked_where_they_are_written() {
    let cases = [
        (
            CONFIG.replace(
                "synthetic:32x16@200?format=rgb8",
                "synthetic:32x16?format=yuyv",
            ),
            "frames.yaml:20:10: sources[0].url: unknown pixel format 'yuyv'",
        ),
        (
            CONFIG.replace("    width: 8\n", "    width: 0\n"),
            "frames.yaml:11:12: nodes[1].width: width must be a whole number of pixels from 1 to 16384, got 0",
        ),
        (
            CONFIG.replace("    height: 4\n", "    depth: 4\n"),
            "frames.yaml:12:12: nodes[1].depth: downscale takes no 'depth'",
        ),
    ];
    for (yaml, expected) in cases {
        let error = Config::parse(&yaml, Path::new("frames.yaml"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with(expected), "{error}\nexpected: {expected}");
    }
}
