//! The webhook sink against a local HTTP receiver on loopback: every
//! constraint transition arrives as an Alertmanager alert (started on trip,
//! ended on reset), a failed POST is retried, and a transition the receiver
//! never takes is counted as failed while the engine goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dav2d_core::Value;

/// A receiver answering 500 to its first `fail_first` requests, then 204;
/// what it received, in order.
struct Receiver {
    address: SocketAddr,
    bodies: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    seen: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let (kept, count) = (Arc::clone(&bodies), Arc::clone(&seen));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                // One connection may carry several requests (keep-alive).
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let status = if n < fail_first {
                        "500 Internal Server Error"
                    } else {
                        kept.lock()
                            .unwrap()
                            .push((path, serde_json::from_slice(&body).unwrap()));
                        "204 No Content"
                    };
                    write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
                }
            }
        });
        Receiver {
            address,
            bodies,
            seen,
        }
    }
}

fn gauge(runtime: &dav2d_runtime::Runtime, name: &str) -> u64 {
    let address = runtime.address("http").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            rest.split_once("} ")
                .map(|(_, v)| v.trim().parse().unwrap())
        })
        .unwrap_or(0)
}

#[test]
fn transitions_reach_an_alertmanager_receiver_retried_and_counted() {
    let receiver = Receiver::start(1);
    let yaml = format!(
        "streams:\n  - name: t\nconstraints:\n  - name: hot\n    input: t\n    trip: 50\n    reset: 45\n\
         sinks:\n  - kind: webhook\n    url: http://{}/api/v2/alerts\n    format: alertmanager\n    tries: 3\n\
         http:\n  bind: 127.0.0.1:0\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n",
        receiver.address
    );
    let (runtime, graph) = brokers::start(&yaml);
    let push = |value: f64| {
        let mut graph = graph.lock();
        graph
            .push("t", "dev-17", Value::Float(value), None)
            .unwrap();
        graph.run_wave();
    };
    push(60.0); // ok -> tripped (the first POST fails once and is retried)
    brokers::wait_for("the trip to arrive", || {
        receiver.bodies.lock().unwrap().len() == 1
    });
    push(40.0); // tripped -> ok
    brokers::wait_for("the reset to arrive", || {
        receiver.bodies.lock().unwrap().len() == 2
    });
    let bodies = receiver.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|(path, _)| path == "/api/v2/alerts"));
    let (trip, reset) = (&bodies[0].1[0], &bodies[1].1[0]);
    assert_eq!(trip["labels"]["alertname"], "hot");
    assert_eq!(trip["labels"]["key"], "dev-17");
    assert_eq!(trip["labels"]["state"], "tripped");
    assert!(trip["startsAt"].as_str().unwrap().ends_with('Z'));
    assert!(reset["endsAt"].is_string(), "{reset}");
    assert_eq!(receiver.seen.load(Ordering::SeqCst), 3);
    // Counted once the answer is read (just after the receiver kept it).
    brokers::wait_for("both to be counted as sent", || {
        gauge(&runtime, "dav2d_webhook_sent") == 2
    });
    assert_eq!(gauge(&runtime, "dav2d_webhook_retries"), 1);
    // A receiver that is gone: the transition is tried 3 times, counted as
    // failed, and the engine keeps applying samples meanwhile.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_address = dead.local_addr().unwrap();
    drop(dead);
    let yaml = yaml.replace(&receiver.address.to_string(), &dead_address.to_string());
    let (second, graph) = brokers::start(&yaml);
    {
        let mut graph = graph.lock();
        graph.push("t", "dev-9", Value::Float(70.0), None).unwrap();
        graph.run_wave();
    }
    brokers::wait_for("the failure to be counted", || {
        gauge(&second, "dav2d_webhook_failed") == 1
    });
    assert_eq!(gauge(&second, "dav2d_webhook_retries"), 2);
    assert_eq!(
        brokers::latest(&graph, "hot", "dev-9"),
        Some(Value::Str("tripped".into()))
    );
    second.stop();
    runtime.stop();
}

#[test]
fn a_receiver_answering_an_endless_body_costs_at_most_the_answer_limit() {
    // A receiver that answers 200 with a chunked body it never ends; it
    // writes until the sink closes the connection (or 1 GiB, a bound).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (count, ended) = (Arc::clone(&written), Arc::clone(&closed));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "x".repeat(64 << 10));
            while count.load(Ordering::SeqCst) < 1 << 30 {
                if stream.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
                count.fetch_add(64 << 10, Ordering::SeqCst);
            }
            ended.fetch_add(1, Ordering::SeqCst);
        }
    });
    let yaml = format!(
        "streams:\n  - name: t\nconstraints:\n  - name: hot\n    input: t\n    trip: 50\n\
         sinks:\n  - kind: webhook\n    url: http://{address}/alerts\n\
         http:\n  bind: 127.0.0.1:0\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    );
    let (runtime, graph) = brokers::start(&yaml);
    {
        let mut graph = graph.lock();
        graph.push("t", "k", Value::Float(60.0), None).unwrap();
        graph.run_wave();
    }
    // The 200 counts; the sink stopped reading and closed the connection.
    brokers::wait_for("the transition to count as sent", || {
        gauge(&runtime, "dav2d_webhook_sent") == 1
    });
    brokers::wait_for("the receiver to see the connection closed", || {
        closed.load(Ordering::SeqCst) == 1
    });
    // What it could write is the answer limit plus what the sockets buffer.
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 64 << 20, "the sink took {sent} bytes of the answer");
    runtime.stop();
}

/// The config of the reload test: the constraint, the webhook `alerts` to
/// `alerts`, an `audit` webhook to `audit`, and `extra` sources.
fn reload_config(alerts: SocketAddr, audit: SocketAddr, extra: &str) -> String {
    format!(
        "streams:\n  - name: t\nconstraints:\n  - name: hot\n    input: t\n    trip: 50\n    reset: 45\n\
         sinks:\n  - kind: webhook\n    name: alerts\n    url: http://{alerts}/a\n    names: [hot]\n\
         \x20 - kind: webhook\n    name: audit\n    url: http://{audit}/b\n    names: [hot]\n{extra}\
         http:\n  bind: 127.0.0.1:0\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    )
}

#[test]
fn a_reload_restarts_a_changed_sink_alone_and_starts_and_stops_listed_sources() {
    let (first, second, audit) = (Receiver::start(0), Receiver::start(0), Receiver::start(0));
    let yaml = reload_config(first.address, audit.address, "");
    let (runtime, graph) = brokers::start(&yaml);
    let push = |value: f64| {
        let mut graph = graph.lock();
        graph.push("t", "k", Value::Float(value), None).unwrap();
        graph.run_wave();
    };
    push(60.0);
    brokers::wait_for("the trip at both receivers", || {
        first.bodies.lock().unwrap().len() == 1 && audit.bodies.lock().unwrap().len() == 1
    });
    let reload = |yaml: &str| {
        let config = dav2d_runtime::Config::parse(yaml, std::path::Path::new("v.yaml")).unwrap();
        let plan = dav2d_runtime::Plan::new(config, dav2d_runtime::Overrides::default()).unwrap();
        runtime.reload(&plan)
    };
    // `alerts` moves to the second receiver; a TCP source is added.
    let port = brokers::free_port();
    let lines = format!("sources:\n  - kind: tcp\n    name: lines\n    bind: 127.0.0.1:{port}\n");
    let applied = reload(&reload_config(second.address, audit.address, &lines)).unwrap();
    assert_eq!(
        applied.changes,
        [
            "sink alerts: restarted with its new settings",
            "source lines: started"
        ]
    );
    assert_eq!(applied.version, 2);
    push(40.0);
    brokers::wait_for("the reset at the new receiver and at audit", || {
        second.bodies.lock().unwrap().len() == 1 && audit.bodies.lock().unwrap().len() == 2
    });
    assert_eq!(
        first.bodies.lock().unwrap().len(),
        1,
        "the old URL got nothing more"
    );
    assert_eq!(second.bodies.lock().unwrap()[0].0, "/a");
    // The new source takes samples.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(b"{\"stream\": \"t\", \"key\": \"tcp\", \"value\": 7}\n")
        .unwrap();
    brokers::wait_for("the TCP sample", || {
        brokers::latest(&graph, "t", "tcp") == Some(Value::Float(7.0))
    });
    drop(tcp);
    // Dropped again: stopped, its port closed; the rest untouched.
    let applied = reload(&reload_config(second.address, audit.address, "")).unwrap();
    assert_eq!(applied.changes, ["source lines: stopped"]);
    brokers::wait_for("the port to close", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    // The top-level TCP server is started (and stopped) alone too.
    let port = brokers::free_port();
    let top = reload_config(second.address, audit.address, "").replace(
        "tcp:\n  enabled: false",
        &format!("tcp:\n  bind: 127.0.0.1:{port}"),
    );
    assert_eq!(reload(&top).unwrap().changes, ["source tcp: started"]);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(b"{\"stream\": \"t\", \"key\": \"top\", \"value\": 8}\n")
        .unwrap();
    brokers::wait_for("the sample through the top-level TCP server", || {
        brokers::latest(&graph, "t", "top") == Some(Value::Float(8.0))
    });
    drop(tcp);
    // What only a restart changes is refused, and nothing changed.
    let moved = top.replace(
        "http:\n  bind: 127.0.0.1:0",
        "http:\n  bind: 127.0.0.1:0\n  token: abc",
    );
    let error = reload(&moved).unwrap_err();
    assert!(error.contains("port 0"), "{error}");
    push(60.0);
    brokers::wait_for("the next trip at the new receiver", || {
        second.bodies.lock().unwrap().len() == 2 && audit.bodies.lock().unwrap().len() == 3
    });
    runtime.stop();
}
