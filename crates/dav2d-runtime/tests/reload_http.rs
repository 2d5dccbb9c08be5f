//! Hot reload of the HTTP API itself, through its own `POST /config`: the
//! request that asked for it is answered, the API comes back on the same
//! port with its new settings (here another token), and an `/events`
//! stream of the old one ends (a client reconnects). On port 0 it would
//! come back elsewhere, so there it is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use common::request;

fn config(port: u16, token: &str) -> String {
    format!(
        "streams:\n  - name: t\nhttp:\n  bind: 127.0.0.1:{port}\n  token: {token}\n\
         tcp:\n  enabled: false\npersistence:\n  enabled: false\n"
    )
}

/// `POST /config` as `dav2d run` answers it: the YAML reloaded with no
/// overrides.
struct Posted(dav2d_runtime::Reloader);

impl dav2d_runtime::ConfigReloader for Posted {
    fn reload_yaml(&self, text: &str) -> Result<(u64, Vec<String>), String> {
        let config = dav2d_runtime::Config::parse(text, Path::new("POST /config"))
            .map_err(|error| error.to_string());
        (self.0)
            .reload_config(config, &dav2d_runtime::Overrides::default())
            .map(|applied| (applied.version, applied.changes))
    }
}

fn post(address: SocketAddr, token: &str, path: &str, body: &str) -> common::Response {
    let bearer = format!("Bearer {token}");
    request(
        address,
        "POST",
        path,
        &[("Authorization", &bearer)],
        body.as_bytes(),
    )
}

#[test]
fn post_config_restarts_the_http_api_on_its_port_with_its_new_settings() {
    let port = brokers::free_port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (runtime, _graph) = brokers::start(&config(port, "one"));
    runtime
        .health()
        .offer_reloader(Arc::new(Posted(runtime.reloader())));
    let sample = r#"{"key":"k","value":1}"#;
    assert_eq!(post(address, "one", "/ingest/t", sample).status, 200);
    // An event stream open on the old API.
    let mut events = std::net::TcpStream::connect(address).unwrap();
    events
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        events,
        "GET /events?names=t HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer one\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while common::find(&seen, b"\r\n\r\n").is_none() {
        let n = events.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream closed before its headers");
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));

    // The API's own POST /config restarts it: the request is answered.
    let answer = post(address, "one", "/config", &config(port, "two"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = common::json(&answer);
    assert_eq!(
        answer["changes"],
        serde_json::json!(["source http: restarted with its new settings"]),
        "{answer}"
    );
    // The old event stream ends (a client reconnects to the new API).
    loop {
        match events.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => panic!("the old /events stream did not end: {error}"),
        }
    }
    // Back on the same port, with the new token only.
    assert_eq!(post(address, "two", "/ingest/t", sample).status, 200);
    assert_eq!(post(address, "one", "/ingest/t", sample).status, 401);

    // On port 0 it would come back elsewhere: refused, nothing changed.
    let error = runtime
        .reloader()
        .reload_config(
            dav2d_runtime::Config::parse(&config(0, "two"), Path::new("v.yaml"))
                .map_err(|e| e.to_string()),
            &dav2d_runtime::Overrides::default(),
        )
        .unwrap_err();
    assert!(error.contains("port 0"), "{error}");
    assert_eq!(post(address, "two", "/ingest/t", sample).status, 200);
    runtime.stop();
}
