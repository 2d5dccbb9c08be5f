//! Hot reload of `dav2d run --watch`: a changed threshold applies in place
//! keeping windows and alert states (its keys across it transition once,
//! marked as caused by the reload), a new node is evaluated from the
//! windows already held, a removed one retires, a re-wired one changes in
//! place keeping its states, and a bad config (SIGHUP)
//! changes nothing; each counted in `dav2d_reloads_total` and the spec's
//! version.

use super::{http_address, request, request_with, scratch_config, spawn_run, spawn_titled, stop};
use std::io::{Read, Write};
use std::process::Command;

fn config(trip: &str, extra: &str) -> String {
    format!(
        "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    n: 2\n{extra}\
         constraints:\n  - name: hot\n    input: avg\n    trip: {trip}\npersistence:\n  enabled: false\n"
    )
}

fn body(answer: &str) -> &str {
    answer.split("\r\n\r\n").nth(1).unwrap_or("")
}

fn version(address: &str) -> u64 {
    let answer = request(address, "GET", "/healthz", "");
    let health: serde_json::Value = serde_json::from_str(body(&answer)).unwrap();
    health["version"].as_u64().unwrap()
}

fn value(address: &str, name: &str, key: &str) -> serde_json::Value {
    let answer = request(address, "GET", &format!("/state/{name}?key={key}"), "");
    serde_json::from_str::<serde_json::Value>(body(&answer)).unwrap()["value"].clone()
}

fn reloads(address: &str, result: &str) -> u64 {
    let answer = request(address, "GET", "/metrics", "");
    let line = format!("dav2d_reloads_total{{result=\"{result}\"}} ");
    (answer.lines())
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_reload_retunes_in_place_adds_nodes_and_refuses_what_it_cannot_apply() {
    let (dir, path) = scratch_config("reload", &config("100", ""));
    let mut command = Command::new(env!("CARGO_BIN_EXE_dav2d"));
    command
        .args(["run", path.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .args(["--tcp", "off", "--refresh", "100ms", "--watch"]);
    let (mut child, title) = spawn_titled(&mut command);
    let address = http_address(&title);
    for (key, value) in [("a", 70), ("a", 72), ("b", 150), ("b", 150)] {
        let answer = request(
            &address,
            "POST",
            "/ingest/temp",
            &format!(r#"{{"key":"{key}","value":{value}}}"#),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(value(&address, "hot", "a"), "ok");
    assert_eq!(version(&address), 1);
    let mut events = std::net::TcpStream::connect(&address).unwrap();
    events
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        events,
        "GET /events?names=hot HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = events.read(&mut buffer).unwrap();
        seen.extend_from_slice(&buffer[..n]);
    }
    // A steady POST load while the config changes: no sample lost.
    let loader = {
        let address = address.clone();
        std::thread::spawn(move || {
            for i in 0..400 {
                let answer = request(
                    &address,
                    "POST",
                    "/ingest/temp",
                    &format!(r#"{{"key":"load","value":{}}}"#, i % 50),
                );
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            }
        })
    };
    // --watch: the file changes, the threshold applies live.
    std::fs::write(&path, config("60", "")).unwrap();
    dav2d_testkit::wait_for("the reload to apply", || version(&address) == 2);
    // The version is raised as the reload starts; its wave follows at once.
    dav2d_testkit::wait_for("a at 71 to be over 60 now", || {
        value(&address, "hot", "a") == "tripped"
    });
    assert_eq!(value(&address, "hot", "b"), "tripped", "b's state was kept");
    let text = loop {
        let text = String::from_utf8_lossy(&seen).to_string();
        if text.contains("\"cause\":\"reload\"") {
            break text;
        }
        let n = events.read(&mut buffer).unwrap();
        seen.extend_from_slice(&buffer[..n]);
    };
    assert!(text.contains("\"key\":\"a\""), "{text}");
    assert!(
        text.contains("event: reload\ndata: {\"version\":2}"),
        "{text}"
    );
    assert!(
        !text.contains("\"key\":\"b\""),
        "b did not transition: {text}"
    );
    assert_eq!(reloads(&address, "applied"), 1);
    loader.join().unwrap();
    let graph = request(&address, "GET", "/graph", "");
    let graph: serde_json::Value = serde_json::from_str(body(&graph)).unwrap();
    assert_eq!(
        graph["streams"][0]["accepted"], 404,
        "4 before, 400 during the reload"
    );
    assert_eq!(graph["version"], 2);
    // A new node is evaluated from the windows the stream already holds.
    let peak = "  - name: peak\n    kind: max\n    input: temp\n    n: 2\n";
    std::fs::write(&path, config("60", peak)).unwrap();
    dav2d_testkit::wait_for("the node to be added", || version(&address) == 3);
    dav2d_testkit::wait_for("its value from the window held", || {
        value(&address, "peak", "a") == 72.0
    });
    // A bad config: refused whole (SIGHUP), nothing changes.
    std::fs::write(&path, config("hot", peak)).unwrap();
    let before = reloads(&address, "refused");
    let hangup = |child: &std::process::Child| {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    hangup(&child);
    dav2d_testkit::wait_for("the reload to be refused", || {
        reloads(&address, "refused") > before
    });
    assert_eq!(version(&address), 3);
    assert_eq!(value(&address, "hot", "a"), "tripped");
    assert_eq!(value(&address, "peak", "a"), 72.0);
    // A node the config no longer has retires: reading it says so.
    std::fs::write(&path, config("60", "")).unwrap();
    hangup(&child);
    dav2d_testkit::wait_for("the node to be removed", || version(&address) == 4);
    dav2d_testkit::wait_for("reading it to say it was removed", || {
        request(&address, "GET", "/state/peak?key=a", "").starts_with("HTTP/1.1 404")
    });
    let gone = request(&address, "GET", "/state/peak?key=a", "");
    assert!(gone.contains("removed by a reload"), "{gone}");
    assert_eq!(value(&address, "hot", "a"), "tripped");
    // Re-wiring: hot reads temp itself now, avg gets a deadband; both in
    // place, hot's states kept (a, at 72 on temp, stays tripped).
    let rewired = config("60", "    deadband: 1\n").replace("input: avg", "input: temp");
    std::fs::write(&path, rewired).unwrap();
    hangup(&child);
    dav2d_testkit::wait_for("the re-wiring to apply", || version(&address) == 5);
    let graph = request(&address, "GET", "/graph", "");
    let graph: serde_json::Value = serde_json::from_str(body(&graph)).unwrap();
    let node = |name: &str| {
        let nodes = graph["nodes"].as_array().unwrap();
        nodes.iter().find(|n| n["name"] == name).unwrap().clone()
    };
    assert_eq!(node("hot")["inputs"][0]["name"], "temp", "{graph}");
    assert_eq!(node("avg")["deadband"], 1.0, "{graph}");
    assert_eq!(value(&address, "hot", "a"), "tripped");
    let answer = request(
        &address,
        "POST",
        "/ingest/temp",
        r#"{"key":"a","value":10}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    dav2d_testkit::wait_for("temp itself to clear a", || {
        value(&address, "hot", "a") == "ok"
    });
    assert_eq!(reloads(&address, "applied"), 4);
    stop(&mut child, "TERM");
    let _ = std::fs::remove_dir_all(dir);
}

/// POSTs `yaml` to `/config` with `token` (if any); the whole answer.
fn post_config(address: &str, token: Option<&str>, yaml: &str) -> String {
    post(address, token, "/config", yaml)
}

/// POSTs `body` to `path` with `token` (if any); the whole answer.
fn post(address: &str, token: Option<&str>, path: &str, body: &str) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    request_with(address, "POST", path, &auth, body)
}

#[test]
fn post_config_reloads_with_the_token_and_is_refused_without_one() {
    let with_token = |trip: &str| format!("{}http:\n  token: s3cret\n", config(trip, ""));
    let (dir, path) = scratch_config("post-config", &with_token("100"));
    let (mut child, title) = spawn_run(&path);
    let address = http_address(&title);
    assert!(post_config(&address, None, &with_token("60")).starts_with("HTTP/1.1 401"));
    let applied = post_config(&address, Some("s3cret"), &with_token("60"));
    assert!(applied.starts_with("HTTP/1.1 200"), "{applied}");
    assert!(body(&applied).contains("\"version\":2"), "{applied}");
    assert!(
        body(&applied).contains("hot: constraint(above trip=100"),
        "{applied}"
    );
    // A new stream is declared live, with its bounds.
    let pressure =
        |answer: &str| answer.starts_with("HTTP/1.1 200") && answer.contains("\"accepted\":1");
    let sample = r#"{"key":"p","value":5}"#;
    let unknown = post(&address, Some("s3cret"), "/ingest/pressure", sample);
    assert!(unknown.contains("not declared"), "{unknown}");
    let streams = "streams:\n  - name: temp\n  - name: pressure\n    max: 10\n";
    let added = with_token("60").replace("streams:\n  - name: temp\n", streams);
    let applied = post_config(&address, Some("s3cret"), &added);
    assert!(
        body(&applied).contains("stream pressure: added"),
        "{applied}"
    );
    let answer = post(&address, Some("s3cret"), "/ingest/pressure", sample);
    assert!(pressure(&answer), "{answer}");
    let over = post(
        &address,
        Some("s3cret"),
        "/ingest/pressure",
        r#"{"key":"p","value":50}"#,
    );
    assert!(over.contains("\"rejected\":1"), "{over}");
    // Its bounds change live; its type does not.
    let wider = added.replace("max: 10", "max: 100");
    let applied = post_config(&address, Some("s3cret"), &wider);
    assert!(
        body(&applied).contains("stream pressure: max 10 -> 100"),
        "{applied}"
    );
    let answer = post(
        &address,
        Some("s3cret"),
        "/ingest/pressure",
        r#"{"key":"p","value":50}"#,
    );
    assert!(pressure(&answer), "{answer}");
    let typed = wider.replace("max: 100", "max: 100\n    type: string");
    let refused = post_config(&address, Some("s3cret"), &typed);
    assert!(
        refused.starts_with("HTTP/1.1 422") && body(&refused).contains("from type"),
        "{refused}"
    );
    // A bad one: its located error, and nothing changed.
    let refused = post_config(&address, Some("s3cret"), &with_token("hot"));
    assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
    assert!(body(&refused).contains("POST /config:"), "{refused}");
    assert!(body(&refused).contains("\"version\":4"), "{refused}");
    stop(&mut child, "TERM");
    // Without a token the route is refused whatever the client.
    std::fs::write(&path, config("100", "")).unwrap();
    let (mut child, title) = spawn_run(&path);
    let address = http_address(&title);
    let forbidden = post_config(&address, None, &config("60", ""));
    assert!(forbidden.starts_with("HTTP/1.1 403"), "{forbidden}");
    assert!(forbidden.contains("needs http.token"), "{forbidden}");
    stop(&mut child, "TERM");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn with_persistence_a_reload_is_recorded_in_the_store() {
    let stored = |trip: &str| {
        config(trip, "").replace(
            "persistence:\n  enabled: false\n",
            "persistence:\n  dir: {data}\n",
        )
    };
    let (dir, path) = scratch_config("reload-store", &stored("100"));
    let data = dir.join("data");
    std::fs::write(
        &path,
        stored("100").replace("{data}", &data.display().to_string()),
    )
    .unwrap();
    let (mut child, title) = spawn_run(&path);
    let address = http_address(&title);
    std::fs::write(
        &path,
        stored("60").replace("{data}", &data.display().to_string()),
    )
    .unwrap();
    let sent = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    dav2d_testkit::wait_for("the reload to apply", || version(&address) == 2);
    stop(&mut child, "TERM");
    let inspect = Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args(["inspect", data.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("reloads: 1 recorded; the last made spec version 2")
            && text.contains("hot: constraint(above trip=100"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
