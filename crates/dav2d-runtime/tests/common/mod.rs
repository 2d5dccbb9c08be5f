//! Helpers of the HTTP and TCP tests: a runtime serving a small graph on
//! loopback, and a raw HTTP/1.1 client that controls exactly what is sent.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test file uses some.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use dav2d_core::{
    Bounds, Builtin, EdgePolicy, Graph, GraphOptions, ManualClock, NodeSpec, SharedGraph,
};
use dav2d_runtime::{HttpConfig, Plan, Runtime, TcpConfig};

pub struct Server {
    pub graph: SharedGraph,
    pub runtime: Runtime,
}

pub fn start_with(configure: impl FnOnce(&mut Plan)) -> Server {
    let mut graph = Graph::new(
        GraphOptions::default(),
        Arc::new(ManualClock::new(1_000_000_000)),
    );
    graph
        .declare_stream(
            "temp",
            Bounds {
                min: Some(-50.0),
                max: Some(150.0),
                finite_only: true,
            },
            None,
        )
        .unwrap();
    graph
        .register(NodeSpec::builtin(
            "double",
            "temp",
            Builtin::Scale { a: 2.0, b: 0.0 },
        ))
        .unwrap();
    graph
        .register(
            NodeSpec::builtin("every", "strict", Builtin::Scale { a: 1.0, b: 0.0 })
                .with_policy(EdgePolicy::All),
        )
        .unwrap();
    let graph = SharedGraph::new(graph);
    let mut config = Plan {
        http: Some(HttpConfig {
            listen: dav2d_runtime::ListenConfig::loopback(0),
            max_body: 1 << 20,
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(500),
            ..HttpConfig::default()
        }),
        tcp: Some(TcpConfig {
            listen: dav2d_runtime::ListenConfig::loopback(0),
            max_line: 64 << 10,
            ..TcpConfig::default()
        }),
        ..Plan::default()
    };
    configure(&mut config);
    let runtime = Runtime::start(config, graph.clone()).unwrap();
    Server { graph, runtime }
}

pub fn start() -> Server {
    start_with(|_| {})
}

impl Server {
    pub fn http(&self) -> SocketAddr {
        self.runtime.address("http").unwrap()
    }

    pub fn latest(&self, name: &str, key: &str) -> Option<f64> {
        self.graph
            .lock()
            .latest(name, key)
            .unwrap()
            .and_then(|r| r.sample)
            .and_then(|s| s.value.as_f64())
    }
}

pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

pub fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

pub fn read_response(stream: &mut impl Read) -> Response {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(error) => panic!("reading the response failed: {error}"),
        };
        raw.extend_from_slice(&buffer[..n]);
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length || n == 0 {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                let body =
                    String::from_utf8_lossy(&raw[end + 4..(end + 4 + length).min(raw.len())])
                        .to_string();
                return Response {
                    status,
                    headers: head,
                    body,
                };
            }
        }
        assert!(
            n > 0,
            "the server closed the connection without a response: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = connect(address);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut stream)
}

pub fn post_json(address: SocketAddr, path: &str, body: &str) -> Response {
    request(
        address,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

pub fn json(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body))
}

/// Posts `body` to `/ingest/temp` and checks the answer's accepted/rejected
/// counts and the reasons of the rejections.
pub fn check(server: &Server, body: &str, status: u16, accepted: u64, reasons: &[(u64, &str)]) {
    let response = post_json(server.http(), "/ingest/temp", body);
    assert_eq!(response.status, status, "{body} -> {}", response.body);
    let answer = json(&response);
    assert_eq!(answer["accepted"], accepted, "{body} -> {answer}");
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), reasons.len(), "{body} -> {answer}");
    for (error, (index, part)) in errors.iter().zip(reasons) {
        assert_eq!(error["index"], *index, "{body} -> {answer}");
        let text = error["error"].as_str().unwrap();
        assert!(text.contains(part), "{body}: expected '{part}' in '{text}'");
    }
}
