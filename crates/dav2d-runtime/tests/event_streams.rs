//! A thousand `/events` clients on loopback: they cost no OS thread each,
//! and every one of them receives an update. Alone in its test binary, so
//! the thread count (`/proc/self/task`) is this test's only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use dav2d_core::{Builtin, Graph, GraphOptions, ManualClock, NodeSpec, SharedGraph};
use dav2d_runtime::{HttpConfig, Plan, Runtime};

const CLIENTS: usize = 1000;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Lets this process hold a socket pair per client.
fn allow_open_files(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted as libc::rlim_t {
            limit.rlim_cur = (wanted as libc::rlim_t).min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

/// Reads from `stream` until `needle` arrived (bounded by the read timeout).
fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) {
    let mut buffer = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(seen));
        seen.extend_from_slice(&buffer[..n]);
    }
}

#[test]
fn a_thousand_event_streams_add_no_thread_each() {
    allow_open_files(4 * CLIENTS as u64 + 256);
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(ManualClock::new(1)));
    graph
        .register(NodeSpec::builtin(
            "double",
            "temp",
            Builtin::Scale { a: 2.0, b: 0.0 },
        ))
        .unwrap();
    let graph = SharedGraph::new(graph);
    let plan = Plan {
        http: Some(HttpConfig {
            listen: dav2d_runtime::ListenConfig::loopback(0),
            ..HttpConfig::default()
        }),
        ..Plan::default()
    };
    let runtime = Runtime::start(plan, graph).unwrap();
    let address = runtime.address("http").unwrap();
    let before = threads();
    let mut clients: Vec<(TcpStream, Vec<u8>)> = (0..CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream
                .write_all(b"GET /events?names=double HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            (stream, Vec::new())
        })
        .collect();
    for (stream, seen) in &mut clients {
        read_until(stream, seen, b"\r\n\r\n");
        assert!(
            String::from_utf8_lossy(seen).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(seen)
        );
    }
    let during = threads();
    assert!(
        during < before + 32,
        "{CLIENTS} event streams took {} threads ({before} before, {during} during)",
        during - before
    );
    let mut post = TcpStream::connect(address).unwrap();
    let body = r#"[{"stream": "temp", "key": "a", "value": 4}]"#;
    write!(
        post,
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\"accepted\":1"), "{answer}");
    for (stream, seen) in &mut clients {
        read_until(stream, seen, b"\"value\":8.0");
    }
    drop(clients);
    runtime.stop();
}
