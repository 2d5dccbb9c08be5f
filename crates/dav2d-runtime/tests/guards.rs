//! The doors' guards, over loopback: connection limits, the body budget,
//! the `Host` check, `/state` pages, TCP auth and timeouts, and TLS on both
//! listeners with a certificate the test generates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dav2d_runtime::{HttpConfig, TcpConfig};
use tokio_rustls::rustls;

fn metric(server: &Server, line_start: &str) -> f64 {
    let text = request(server.http(), "GET", "/metrics", &[], b"").body;
    text.lines()
        .filter(|line| line.starts_with(line_start))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The connections `component`'s listener has open, from the health board
/// (what `/metrics` exports as `dav2d_connections_open`; read in process,
/// since a scrape would be a connection of its own).
fn open_connections(server: &Server, component: &str) -> i64 {
    (server.runtime.health().gauges().into_iter())
        .find(|(name, _, gauge)| name == component && gauge.name == "connections_open")
        .map_or(0, |(_, _, gauge)| gauge.value)
}

fn http_with(configure: impl FnOnce(&mut HttpConfig)) -> Server {
    start_with(|plan| {
        if let Some(http) = plan.http.as_mut() {
            configure(http);
        }
    })
}

fn tcp_with(configure: impl FnOnce(&mut TcpConfig)) -> Server {
    start_with(|plan| {
        if let Some(tcp) = plan.tcp.as_mut() {
            configure(tcp);
        }
    })
}

fn read_line(stream: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = stream.read(&mut byte) {
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).to_string()
}

#[test]
fn http_connections_past_the_limit_get_503_and_the_rest_are_served() {
    let server = http_with(|http| {
        http.listen.max_connections = 2;
        http.header_timeout = Duration::from_secs(5);
    });
    let held: Vec<TcpStream> = (0..2).map(|_| connect(server.http())).collect();
    // Both held connections are accepted before the third arrives (the
    // listener counts them: `dav2d_connections_open`).
    dav2d_testkit::wait_for("the two held connections to be open", || {
        open_connections(&server, "http") >= 2
    });
    let mut third = connect(server.http());
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let refused = read_response(&mut third);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused
            .headers
            .to_ascii_lowercase()
            .contains("retry-after: 1"),
        "{}",
        refused.headers
    );
    assert!(refused.body.contains("http.max_connections"));
    drop(held);
    // Once the held ones close, new connections are served again.
    dav2d_testkit::wait_for("the server to serve again", || {
        request(server.http(), "GET", "/healthz", &[], b"").status == 200
    });
    // The third was counted (and any tried before the server saw the held
    // ones close). A scrape that itself comes while the last connection is
    // still counted open is answered 503 and reads as 0: it is tried again.
    dav2d_testkit::wait_for("the refusal to be counted in /metrics", || {
        metric(
            &server,
            r#"dav2d_samples_rejected_total{component="http",kind="http",reason="too_many_connections""#,
        ) >= 1.0
    });
}

#[test]
fn bodies_past_the_budget_get_503_with_retry_after() {
    let server = start_with(|plan| {
        plan.intake.body_budget = 64 << 10;
        if let Some(http) = plan.http.as_mut() {
            http.max_body = 64 << 10;
            http.body_timeout = Duration::from_secs(5);
        }
    });
    // A body that declares 60 KiB and sends it slowly holds most of the budget.
    let mut slow = connect(server.http());
    slow.write_all(
        b"POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 61440\r\n\r\n[",
    )
    .unwrap();
    dav2d_testkit::wait_for("the slow body to hold its share of the budget", || {
        metric(&server, "dav2d_body_budget_used_bytes") >= 61440.0
    });
    let body = format!("[{}]", vec![r#"{"key":"a","value":1}"#; 400].join(","));
    let refused = post_json(server.http(), "/ingest/temp", &body);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused
            .headers
            .to_ascii_lowercase()
            .contains("retry-after: 1")
    );
    assert!(
        refused.body.contains("ingest.body_budget"),
        "{}",
        refused.body
    );
    // A small body still fits beside it.
    let small = post_json(server.http(), "/ingest/temp", r#"{"key":"a","value":1}"#);
    assert_eq!(small.status, 200, "{}", small.body);
    // Once the slow body is gone, its share returns.
    drop(slow);
    let mut accepted = false;
    for _ in 0..50 {
        let response = post_json(server.http(), "/ingest/temp", &body);
        if response.status == 200 {
            accepted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(accepted, "the budget never came back");
    assert!(
        metric(
            &server,
            r#"dav2d_samples_rejected_total{component="http",kind="http",reason="body_budget""#
        ) >= 1.0
    );
}

#[test]
fn without_a_token_only_hosts_a_rebinding_page_cannot_name_are_served() {
    let server = http_with(|http| http.allowed_hosts = vec!["dav2d.internal".to_string()]);
    let with_host = |host: &str| {
        let mut stream = connect(server.http());
        stream
            .write_all(
                format!("GET /graph HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        read_response(&mut stream)
    };
    assert_eq!(with_host("localhost:8080").status, 200);
    assert_eq!(with_host("127.0.0.1").status, 200);
    assert_eq!(with_host("dav2d.internal").status, 200);
    let refused = with_host("attacker.example:8080");
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("http.allowed_hosts"),
        "{}",
        refused.body
    );
    // With a token the token is the guard: any host that carries it is served.
    let guarded = http_with(|http| http.listen.token = Some("s3cret".to_string()));
    let mut stream = connect(guarded.http());
    stream
        .write_all(b"GET /graph HTTP/1.1\r\nHost: dav2d.example\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).status, 200);
}

#[test]
fn state_is_served_in_pages() {
    let server = start();
    let body: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"key":"k{i:02}","value":{i}}}"#))
        .collect();
    let posted = post_json(
        server.http(),
        "/ingest/temp",
        &format!("[{}]", body.join(",")),
    );
    assert_eq!(posted.status, 200, "{}", posted.body);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(key) => format!("/state/temp?limit=10&after={key}"),
            None => "/state/temp?limit=10".to_string(),
        };
        let page = json(&request(server.http(), "GET", &path, &[], b""));
        let keys: Vec<String> = page["keys"].as_object().unwrap().keys().cloned().collect();
        assert!(keys.len() <= 10);
        seen.extend(keys);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(seen, expected);
    let whole = json(&request(server.http(), "GET", "/state/temp", &[], b""));
    assert_eq!(whole["keys"].as_object().unwrap().len(), 25);
    assert!(whole["next"].is_null());
    assert_eq!(
        request(server.http(), "GET", "/state/temp?limit=0", &[], b"").status,
        400
    );
    assert_eq!(
        request(server.http(), "GET", "/state/temp?limit=100000", &[], b"").status,
        400
    );
}

#[test]
fn tcp_takes_samples_only_after_the_auth_line() {
    let server = tcp_with(|tcp| tcp.listen.token = Some("s3cret".to_string()));
    let address = server.runtime.address("tcp").unwrap();
    let mut wrong = connect(address);
    wrong
        .write_all(b"AUTH guess\n{\"stream\":\"temp\",\"key\":\"x\",\"value\":1}\n")
        .unwrap();
    let answer = read_line(&mut wrong);
    assert!(answer.contains("AUTH <token>"), "{answer}");
    let mut none = connect(address);
    none.write_all(b"{\"stream\":\"temp\",\"key\":\"x\",\"value\":1}\n")
        .unwrap();
    assert!(read_line(&mut none).contains("AUTH <token>"));
    // Megabytes sent before the answer is read: the connection is drained,
    // not reset, so the answer still arrives.
    let mut hasty = connect(address);
    let line = b"{\"stream\":\"temp\",\"key\":\"x\",\"value\":1}\n";
    hasty.write_all(&line.repeat(100_000)).unwrap();
    assert!(read_line(&mut hasty).contains("AUTH <token>"));
    let mut good = connect(address);
    good.write_all(b"AUTH s3cret\r\n{\"stream\":\"temp\",\"key\":\"y\",\"value\":7}\n")
        .unwrap();
    good.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = read_line(&mut good);
    server.graph.lock().run_wave();
    assert_eq!(server.latest("temp", "y"), Some(7.0));
    assert_eq!(
        server.latest("temp", "x"),
        None,
        "nothing from the refused connections"
    );
}

#[test]
fn tcp_closes_idle_and_half_sent_connections_and_refuses_past_the_limit() {
    let server = tcp_with(|tcp| {
        tcp.idle_timeout = Duration::from_millis(300);
        tcp.partial_timeout = Duration::from_millis(300);
        tcp.listen.max_connections = 3;
    });
    let address = server.runtime.address("tcp").unwrap();
    let mut idle = connect(address);
    let mut half_line = connect(address);
    half_line.write_all(b"{\"stream\":\"temp\",").unwrap();
    let mut half_unit = connect(address);
    half_unit.write_all(b"DV2B\x00\x00\x01\x00\x01[").unwrap();
    dav2d_testkit::wait_for("the three TCP connections to be open", || {
        open_connections(&server, "tcp") >= 3
    });
    let mut fourth = connect(address);
    assert!(read_line(&mut fourth).contains("tcp.max_connections"));
    assert!(read_line(&mut idle).contains("tcp.idle_timeout"));
    assert!(read_line(&mut half_line).contains("tcp.partial_timeout"));
    assert!(read_line(&mut half_unit).contains("tcp.partial_timeout"));
    // A connection that keeps sending whole lines is never cut.
    let mut steady = connect(address);
    for i in 0..8 {
        steady
            .write_all(format!("{{\"stream\":\"temp\",\"key\":\"s\",\"value\":{i}}}\n").as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    steady.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = read_line(&mut steady);
    server.graph.lock().run_wave();
    assert_eq!(server.latest("temp", "s"), Some(7.0));
}

/// A self-signed certificate for `localhost` written to a temporary
/// folder, and a client config trusting it.
struct TestCert {
    folder: std::path::PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl TestCert {
    fn new(name: &str) -> TestCert {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let folder = std::env::temp_dir().join(format!("dav2d-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(
            folder.join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TestCert {
            folder,
            client: Arc::new(client),
        }
    }

    fn files(&self) -> dav2d_component::TlsFiles {
        dav2d_component::TlsFiles {
            cert: self.folder.join("cert.pem"),
            key: self.folder.join("key.pem"),
        }
    }

    fn connect(
        &self,
        address: std::net::SocketAddr,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(Arc::clone(&self.client), name).unwrap();
        rustls::StreamOwned::new(connection, connect(address))
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

#[test]
fn http_and_tcp_serve_tls_with_the_configured_certificate() {
    let cert = TestCert::new("both");
    let server = start_with(|plan| {
        if let Some(http) = plan.http.as_mut() {
            http.listen.tls = Some(cert.files());
            http.listen.token = Some("s3cret".to_string());
        }
        if let Some(tcp) = plan.tcp.as_mut() {
            tcp.listen.tls = Some(cert.files());
            tcp.listen.token = Some("s3cret".to_string());
        }
    });
    let mut https = cert.connect(server.http());
    https
        .write_all(b"POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{\"key\":\"h\",\"value\":3}\n")
        .unwrap();
    let answer = read_response(&mut https);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let mut tcp = cert.connect(server.runtime.address("tcp").unwrap());
    tcp.write_all(b"AUTH s3cret\n{\"stream\":\"temp\",\"key\":\"t\",\"value\":4}\n")
        .unwrap();
    tcp.flush().unwrap();
    tcp.conn.send_close_notify();
    let _ = tcp.flush();
    let _ = read_line(&mut tcp);
    // A plain-text client is told, readably, that the port speaks TLS.
    let mut plain = connect(server.http());
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let answer = read_response(&mut plain);
    assert_eq!(answer.status, 400);
    assert!(
        answer.body.contains("this port speaks TLS"),
        "{}",
        answer.body
    );
    let mut plain = connect(server.runtime.address("tcp").unwrap());
    plain.write_all(b"{\"stream\":\"temp\"}\n").unwrap();
    assert!(read_line(&mut plain).contains("this port speaks TLS"));
    let mut applied = false;
    for _ in 0..50 {
        server.graph.lock().run_wave();
        if server.latest("temp", "t") == Some(4.0) {
            applied = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(applied, "the TLS TCP sample was not applied");
    assert_eq!(server.latest("temp", "h"), Some(3.0));
}

#[test]
fn a_bad_certificate_is_a_clear_error() {
    let folder = std::env::temp_dir().join(format!("dav2d-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("cert.pem"), "not a certificate").unwrap();
    let files = dav2d_component::TlsFiles {
        cert: folder.join("cert.pem"),
        key: folder.join("missing.pem"),
    };
    let error = files.acceptor().err().unwrap();
    assert!(error.contains("holds no certificate"), "{error}");
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn a_lossless_subscriber_behind_holds_producers_back_instead_of_losing_updates() {
    let server = start();
    let subscription = server
        .graph
        .lock()
        .subscribe("double", dav2d_core::SubscriptionMode::Lossless, 4)
        .unwrap();
    let post = |key: &str| {
        post_json(
            server.http(),
            "/ingest/temp",
            &format!(r#"{{"key":"{key}","value":1}}"#),
        )
    };
    // Three updates wait: more than half of 4, so the producer is held back.
    for key in ["a", "b", "c"] {
        assert_eq!(post(key).status, 200);
    }
    let refused = post("d");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.body.contains("persistence is behind"),
        "{}",
        refused.body
    );
    assert_eq!(subscription.conflated(), 0, "nothing was merged away");
    // Once the subscriber catches up (a quarter or less waits), samples flow again.
    for _ in 0..3 {
        assert!(subscription.try_next().is_some());
    }
    assert_eq!(post("d").status, 200);
    assert_eq!(
        metric(
            &server,
            r#"dav2d_samples_rejected_total{component="http",kind="http",reason="sink_behind""#
        ),
        1.0
    );
    // A closed subscriber holds nobody back.
    for key in ["e", "f", "g"] {
        post(key);
    }
    subscription.close();
    assert_eq!(post("h").status, 200);
}

fn durable_server(name: &str) -> (Server, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("dav2d-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = start_with(|plan| {
        plan.persistence = Some(dav2d_runtime::PersistenceConfig {
            dir: dir.clone(),
            // Only durable acknowledgements flush in this test.
            flush_interval: Duration::from_secs(3600),
            checkpoint_interval: Duration::from_secs(3600),
            streams: vec!["temp".to_string()],
            ..dav2d_runtime::PersistenceConfig::default()
        });
    });
    (server, dir)
}

#[test]
fn ack_durable_answers_once_the_fsync_covering_the_batch_is_done() {
    let (server, dir) = durable_server("http");
    let flushed_before = metric(&server, "dav2d_persisted_records");
    let answer = post_json(
        server.http(),
        "/ingest/temp?ack=durable",
        r#"[{"key":"a","value":1},{"key":"b","value":2}]"#,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(json(&answer)["durable"], true);
    // The fsync happened before the answer: the records are counted durable,
    // and they are in the store's log now, read back from the files while
    // the store is still open (what a crash right after the answer leaves).
    assert!(metric(&server, "dav2d_persisted_records") >= flushed_before + 2.0);
    let mut on_disk = Vec::new();
    let query = dav2d_store::Query {
        name: Some("temp".to_string()),
        ..dav2d_store::Query::default()
    };
    dav2d_store::history::scan(
        &dir,
        &query,
        |_| {},
        |rows| {
            for i in 0..rows.len() {
                on_disk.push((rows.key[i].to_string(), rows.value[i]));
            }
            Ok(())
        },
    )
    .unwrap();
    on_disk.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        on_disk,
        vec![("a".to_string(), Some(1.0)), ("b".to_string(), Some(2.0))]
    );
    // Plain requests and unknown ack values.
    assert_eq!(
        post_json(
            server.http(),
            "/ingest/temp?ack=applied",
            r#"{"key":"c","value":1}"#
        )
        .status,
        200
    );
    assert_eq!(
        post_json(
            server.http(),
            "/ingest/temp?ack=soon",
            r#"{"key":"c","value":1}"#
        )
        .status,
        400
    );
    // Over TCP: `ACK durable` first, then a line per batch once it is on disk.
    let mut tcp = connect(server.runtime.address("tcp").unwrap());
    tcp.write_all(b"ACK durable\n{\"stream\":\"temp\",\"key\":\"t\",\"value\":5}\n")
        .unwrap();
    assert_eq!(read_line(&mut tcp), r#"{"durable_through_line":1}"#);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    // Without persistence there is nothing to wait for: said plainly.
    let memory = start();
    let refused = post_json(
        memory.http(),
        "/ingest/temp?ack=durable",
        r#"{"key":"a","value":1}"#,
    );
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("needs persistence"),
        "{}",
        refused.body
    );
    let mut tcp = connect(memory.runtime.address("tcp").unwrap());
    tcp.write_all(b"ACK durable\n").unwrap();
    assert!(read_line(&mut tcp).contains("needs persistence"));
}

#[test]
fn every_listener_entry_takes_the_http_token_unless_it_gives_its_own() {
    let yaml = "http:\n  bind: 127.0.0.1:0\n  token: s3cret\ntcp:\n  enabled: false\npersistence:\n  enabled: false\nsources:\n  - kind: http\n    name: extra\n    bind: 127.0.0.1:0\n  - kind: tcp\n    name: floor\n    bind: 127.0.0.1:0\n  - kind: http\n    name: own\n    bind: 127.0.0.1:0\n    token: other\n";
    let config = dav2d_runtime::Config::parse(yaml, std::path::Path::new("t.yaml")).unwrap();
    let plan = dav2d_runtime::Plan::new(config, dav2d_runtime::Overrides::default()).unwrap();
    let graph = dav2d_core::SharedGraph::new(dav2d_core::Graph::new(
        dav2d_core::GraphOptions::default(),
        Arc::new(dav2d_core::ManualClock::new(0)),
    ));
    let runtime = dav2d_runtime::Runtime::start(plan, graph).unwrap();
    let get = |name: &str, token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        request(
            runtime.address(name).unwrap(),
            "GET",
            "/graph",
            &headers,
            b"",
        )
        .status
    };
    assert_eq!(
        get("extra", None),
        401,
        "the extra listener needs the token"
    );
    assert_eq!(get("extra", Some("s3cret")), 200);
    assert_eq!(get("own", Some("s3cret")), 401, "its own token, not http's");
    assert_eq!(get("own", Some("other")), 200);
    // The TCP entry wants the AUTH line.
    let mut tcp = TcpStream::connect(runtime.address("floor").unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"{\"stream\":\"t\",\"key\":\"k\",\"value\":1}\n")
        .unwrap();
    assert!(read_line(&mut tcp).contains("AUTH <token>"));
    runtime.stop();
}

#[test]
fn an_http_11_request_without_host_is_refused_with_or_without_a_token() {
    for token in [None, Some("s3cret".to_string())] {
        let server = http_with(|http| http.listen.token = token.clone());
        let mut stream = connect(server.http());
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_response(&mut stream);
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body.contains("Host"), "{}", answer.body);
        // HTTP/1.0 may leave it out.
        let mut old = connect(server.http());
        old.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut old).status, 200);
    }
}

#[test]
fn a_cross_site_page_cannot_write_unless_its_origin_is_listed() {
    let server = http_with(|http| http.allowed_origins = vec!["https://dash.example".to_string()]);
    let post = |headers: &[(&str, &str)], value: u32| {
        let body = format!("{{\"stream\":\"temp\",\"key\":\"o{value}\",\"value\":{value}}}");
        request(server.http(), "POST", "/upload", headers, body.as_bytes()).status
    };
    // What a no-cors fetch from another site sends (no Content-Type).
    let evil = [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    assert_eq!(post(&evil, 1), 403);
    assert_eq!(
        post(&[("Origin", "https://evil.example")], 2),
        403,
        "an older browser"
    );
    // The same origin, a listed origin, and clients that are not pages pass.
    let same = [
        ("Origin", "http://localhost"),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    assert_eq!(post(&same, 3), 200);
    let listed = [
        ("Origin", "https://dash.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    assert_eq!(post(&listed, 4), 200);
    assert_eq!(post(&[], 5), 200);
    assert_eq!(server.latest("temp", "o1"), None);
    assert_eq!(server.latest("temp", "o2"), None);
    assert_eq!(server.latest("temp", "o5"), Some(5.0));
    // The listed origin gets CORS: its preflight, and leave to read answers.
    let preflight = request(
        server.http(),
        "OPTIONS",
        "/upload",
        &[
            ("Origin", "https://dash.example"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    let headers = preflight.headers.to_ascii_lowercase();
    assert!(
        headers.contains("access-control-allow-origin: https://dash.example"),
        "{headers}"
    );
    let read = request(server.http(), "GET", "/graph", &listed, b"");
    assert_eq!(read.status, 200);
    assert!(
        read.headers
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://dash.example")
    );
    let denied = request(server.http(), "GET", "/graph", &evil, b"");
    assert_eq!(denied.status, 403);
}

#[test]
fn one_connection_cannot_lock_the_others_out_of_the_body_budget() {
    let budget = 32 << 20;
    let max_body = dav2d_runtime::body_ceiling(budget);
    let server = start_with(|plan| {
        plan.intake.body_budget = budget;
        if let Some(http) = plan.http.as_mut() {
            http.max_body = max_body;
            http.body_timeout = Duration::from_secs(20);
        }
    });
    let small = || post_json(server.http(), "/ingest/temp", r#"{"key":"s","value":1}"#).status;
    // Announcing the largest body and sending none of it holds one step,
    // not what it announced.
    let mut idle = connect(server.http());
    write!(
        idle,
        "POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {max_body}\r\n\r\n"
    )
    .unwrap();
    dav2d_testkit::wait_for("the idle body to take its first step", || {
        metric(&server, "dav2d_body_budget_used_bytes") > 0.0
    });
    assert!(metric(&server, "dav2d_body_budget_used_bytes") <= f64::from(64 << 10));
    assert_eq!(small(), 200);
    drop(idle);
    // Sending nearly all of it, then stalling: it holds what it sent, and
    // the part kept for small bodies still takes a small POST.
    let mut greedy = connect(server.http());
    write!(
        greedy,
        "POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {max_body}\r\n\r\n["
    )
    .unwrap();
    greedy.write_all(&vec![b' '; max_body - 4096]).unwrap();
    dav2d_testkit::wait_for("the greedy body to hold what it sent", || {
        metric(&server, "dav2d_body_budget_used_bytes") >= (max_body - 4096) as f64
    });
    assert_eq!(small(), 200);
    // A second large body (more than socket buffers hold) does not fit
    // beside it, and is drained so its sender reads the 503, not a reset.
    let records = (max_body - (64 << 10)) / 23;
    let body = format!("[{}]", vec![r#"{"key":"b","value":1}"#; records].join(","));
    assert_eq!(post_json(server.http(), "/ingest/temp", &body).status, 503);
    drop(greedy);
}

#[test]
fn what_a_compressed_body_inflates_to_is_charged_to_the_body_budget() {
    let budget = 1 << 20;
    let server = start_with(|plan| {
        plan.intake.body_budget = budget;
        if let Some(http) = plan.http.as_mut() {
            http.max_body = dav2d_runtime::body_ceiling(budget);
            http.body_timeout = Duration::from_secs(20);
        }
    });
    // 5 KB of zstd that inflates to about 800 KB of valid samples.
    let samples: Vec<String> = (0..32_000)
        .map(|i| format!(r#"{{"key":"z{}","value":1}}"#, i % 100))
        .collect();
    let inflated = format!("[{}]", samples.join(","));
    assert!(inflated.len() > 700 << 10);
    let small = zstd::encode_all(inflated.as_bytes(), 19).unwrap();
    let post = || {
        request(
            server.http(),
            "POST",
            "/ingest/temp",
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "zstd"),
            ],
            &small,
        )
    };
    // Another body holds 400 KiB it really sent.
    let mut slow = connect(server.http());
    write!(
        slow,
        "POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n["
    )
    .unwrap();
    slow.write_all(&vec![b' '; 400 << 10]).unwrap();
    dav2d_testkit::wait_for("the slow body to hold what it sent", || {
        metric(&server, "dav2d_body_budget_used_bytes") >= f64::from(400 << 10)
    });
    // The compressed body is small, but what it inflates to does not fit.
    let refused = post();
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused
            .headers
            .to_ascii_lowercase()
            .contains("retry-after: 1")
    );
    drop(slow);
    dav2d_testkit::wait_for("the budget to come back and the body to fit", || {
        post().status == 200
    });
    assert_eq!(metric(&server, "dav2d_body_budget_used_bytes"), 0.0);
}
