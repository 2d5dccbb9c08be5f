//! Frame sources and frame nodes from a YAML config: a `kind: frames`
//! source feeds its stream, frame nodes and a constraint over them run, and
//! bad URLs and parameters are located errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

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
    let (luma, thumb) = dav2d_testkit::wait_until("the frame nodes' first outputs", || {
        let locked = graph.lock();
        let value = |name: &str| {
            locked
                .latest(name, "")
                .ok()
                .flatten()
                .and_then(|r| r.sample)
        };
        Some((value("luma")?.value, value("thumb")?.value))
    });
    assert!(matches!(thumb, Value::Frame(_)), "{thumb:?}");
    let luma = Some(luma);
    // Frames came in through the one door: counted for the source, so the
    // summary screen and `/metrics` show them.
    dav2d_testkit::wait_for("the frames counted for the source", || {
        let totals = runtime.metrics().totals();
        totals.received >= 1 && totals.accepted >= 1
    });
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
            "frames.yaml:12:12: nodes[1].depth: downscale takes no field `depth`; it takes name, kind, input, inputs, policy, priority, deadband, offload, width, height",
        ),
        (
            CONFIG.replace(
                "    stream: camera\n",
                "    stream: camera\n    token: ' '\n",
            ),
            "frames.yaml:22:12: sources[0].token: an empty token would turn auth off",
        ),
        (
            CONFIG.replace(
                "synthetic:32x16@200?format=rgb8",
                "tcp://127.0.0.1:7071?idle_timeout=-1",
            ),
            "frames.yaml:20:10: sources[0].url: idle_timeout=-1 in 'tcp://127.0.0.1:7071?idle_timeout=-1' must be a number of seconds",
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

#[test]
fn a_tcp_frames_source_from_yaml_takes_producers_with_the_http_token() {
    use std::io::{BufRead, BufReader, Write};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "streams:\n  - name: camera\n    type: frame\nsources:\n  - kind: frames\n    url: tcp://127.0.0.1:{port}\n    stream: camera\nhttp:\n  enabled: false\n  token: abc\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    );
    let config = Config::parse(&yaml, Path::new("frames.yaml")).unwrap();
    let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
    let runtime = Runtime::start(
        Plan::new(config, Overrides::default()).unwrap(),
        graph.clone(),
    )
    .unwrap();
    let layout = dav2d_frames::PixelFormat::Rgb8.layout(4, 2).unwrap();
    let header = dav2d_frames::tcp::encode_header(&layout, 42);
    let mut wrong = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    wrong.write_all(b"AUTH abd\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&wrong).read_line(&mut answer).unwrap();
    assert!(answer.contains("AUTH <token>"), "{answer}");
    // A producer that sends a whole large frame without the line still
    // reads why it was closed: the source drains instead of resetting.
    let big = dav2d_frames::PixelFormat::Rgb8.layout(2048, 2048).unwrap();
    let mut hasty = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    hasty
        .write_all(&dav2d_frames::tcp::encode_header(&big, 1))
        .unwrap();
    hasty.write_all(&vec![1u8; big.size]).unwrap();
    let mut answer = String::new();
    BufReader::new(&hasty).read_line(&mut answer).unwrap();
    assert!(answer.contains("AUTH <token>"), "{answer}");
    let mut producer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    producer.write_all(b"AUTH abc\n").unwrap();
    producer.write_all(&header).unwrap();
    producer.write_all(&vec![7u8; layout.size]).unwrap();
    let sample = dav2d_testkit::wait_until("the frame sent with the token", || {
        graph
            .lock()
            .latest("camera", "")
            .ok()
            .flatten()
            .and_then(|r| r.sample)
    });
    runtime.stop();
    let Value::Frame(frame) = &sample.value else {
        panic!("{:?}", sample.value);
    };
    assert_eq!(
        (frame.0.info().ts_ns, frame.0.bytes()),
        (42, &[7u8; 24][..])
    );
}
