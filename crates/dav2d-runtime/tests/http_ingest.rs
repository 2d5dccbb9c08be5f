//! The HTTP ingest routes, started by the runtime, over real loopback
//! sockets: every body format, bad input of every kind, limits, timeouts,
//! auth, backpressure, typed streams, parse-while-arriving. A raw HTTP/1.1
//! client controls exactly what is sent (and what is not). Waits are
//! bounded; nothing is timed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// Sends `body` to `/ingest/temp` in `parts` writes with a pause between
/// them, so the server sees it arrive in pieces.
fn post_in_parts(address: SocketAddr, body: &[u8], parts: usize) -> Response {
    let mut stream = connect(address);
    stream
        .write_all(
            format!(
                "POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    for part in body.chunks(body.len().div_ceil(parts)) {
        stream.write_all(part).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    read_response(&mut stream)
}

fn large_array(n: usize, key: impl Fn(usize) -> String) -> String {
    let samples: Vec<String> = (0..n)
        .map(|i| format!("{{\"key\": \"{}\", \"value\": {}}}", key(i), i % 100))
        .collect();
    format!("[{}]", samples.join(","))
}

#[test]
fn every_body_format_is_accepted() {
    let server = start();
    let address = server.http();
    let single = post_json(
        address,
        "/upload",
        r#"{"stream": "temp", "key": "a", "value": 21.5, "ts": 5}"#,
    );
    assert_eq!(
        (single.status, json(&single)["accepted"].as_u64()),
        (200, Some(1))
    );
    let array = post_json(
        address,
        "/ingest/temp",
        r#"[{"key": "b", "value": 1}, {"key": "c", "value": 2.5}]"#,
    );
    assert_eq!(json(&array)["accepted"], 2);
    let ndjson = request(
        address,
        "POST",
        "/upload",
        &[("Content-Type", "application/x-ndjson")],
        b"{\"stream\": \"temp\", \"key\": \"d\", \"value\": 3}\n\n{\"stream\": \"temp\", \"key\": \"e\", \"value\": 4}\n",
    );
    assert_eq!(json(&ndjson)["accepted"], 2);
    let columnar = post_json(
        address,
        "/upload",
        r#"{"stream": "temp", "keys": ["f", "g"], "values": [5, 6], "ts": [1, 2]}"#,
    );
    assert_eq!(json(&columnar)["accepted"], 2);
    let samples = br#"[{"key": "gz", "value": 7}]"#;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(samples).unwrap();
    let gzipped = request(
        address,
        "POST",
        "/ingest/temp",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip.finish().unwrap(),
    );
    assert_eq!(json(&gzipped)["accepted"], 1, "{}", gzipped.body);
    let zstd = zstd::encode_all(&br#"[{"key": "zs", "value": 8}]"#[..], 1).unwrap();
    let zstded = request(
        address,
        "POST",
        "/ingest/temp",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "zstd"),
        ],
        &zstd,
    );
    assert_eq!(json(&zstded)["accepted"], 1, "{}", zstded.body);
    for (key, value) in [
        ("a", 21.5),
        ("b", 1.0),
        ("c", 2.5),
        ("d", 3.0),
        ("e", 4.0),
        ("f", 5.0),
        ("g", 6.0),
        ("gz", 7.0),
        ("zs", 8.0),
    ] {
        assert_eq!(server.latest("temp", key), Some(value), "key {key}");
    }
    assert_eq!(server.latest("double", "g"), Some(12.0), "the graph ran");
}

#[test]
fn bad_records_are_rejected_with_their_reason_and_good_ones_applied() {
    let server = start();
    check(
        &server,
        r#"[{"key": "ok1", "value": 1},
            {"key": "hot", "value": 999},
            {"key": "str", "value": "warm"},
            {"key": 5, "value": 1},
            {"key": "nul", "value": null},
            {"key": "none"},
            {"key": "typo", "valu": 1},
            {"key": "big", "value": 1e999},
            {"key": "nan", "value": NaN},
            {"key": "inf", "value": Infinity},
            {"key": "deep", "value": {"a": {"b": 1}}},
            {"key": "arr", "value": [1, 2]},
            {"key": "ok2", "value": 2}]"#,
        200,
        2,
        &[
            (1, "accepts values <= 150"),
            (2, "has numeric bounds but got a string"),
            (3, "invalid type: integer `5`, expected a string"),
            (4, "value is null"),
            (5, "missing field `value`"),
            (6, "unknown field `valu`"),
            (7, "must be finite"),
            (8, "Invalid"),
            (9, "Invalid"),
            (10, "record field 'a': is nested"),
            (11, "value is an array"),
        ],
    );
    assert_eq!(
        (server.latest("temp", "ok1"), server.latest("temp", "ok2")),
        (Some(1.0), Some(2.0))
    );
    assert_eq!(server.latest("temp", "hot"), None);
    check(
        &server,
        r#"[{"key": "x", "value": "warm"}]"#,
        422,
        0,
        &[(0, "got a string")],
    );
    check(
        &server,
        r#"{"key": "x"}"#,
        422,
        0,
        &[(0, "missing field `value`")],
    );
    check(
        &server,
        r#"{"stream": "temp", "keys": ["a"], "values": [1, 2]}"#,
        422,
        0,
        &[(0, "1 keys for 2 values")],
    );
    let missing_stream = post_json(server.http(), "/upload", r#"[{"key": "a", "value": 1}]"#);
    assert!(
        json(&missing_stream)["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("missing field `stream`")
    );
}

#[test]
fn invalid_utf8_in_one_record_rejects_only_that_record() {
    let server = start();
    let mut body = br#"[{"key": "ok", "value": 1}, {"key": "bad"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#"", "value": 2}]"#);
    let response = request(
        server.http(),
        "POST",
        "/ingest/temp",
        &[("Content-Type", "application/json")],
        &body,
    );
    let answer = json(&response);
    assert_eq!(
        (
            response.status,
            answer["accepted"].as_u64(),
            answer["rejected"].as_u64()
        ),
        (200, Some(1), Some(1))
    );
    assert_eq!(answer["errors"][0]["index"], 1);
}

#[test]
fn broken_bodies_are_refused_whole_with_the_byte_offset() {
    let server = start();
    let cases = [
        (
            "[{\"key\": \"a\", \"value\": 1}",
            "at byte 25: the body ends inside the array",
        ),
        ("[{\"key\": \"a", "unterminated string"),
        ("[1] trailing", "after the end of the array"),
        ("", "the body is empty"),
    ];
    for (body, expected) in cases {
        let response = post_json(server.http(), "/ingest/temp", body);
        assert_eq!(response.status, 400, "{body}");
        let message = json(&response)["error"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let deep = format!("[{}1{}]", "[".repeat(100), "]".repeat(100));
    let response = post_json(server.http(), "/ingest/temp", &deep);
    assert_eq!(response.status, 400);
    assert!(
        json(&response)["error"]
            .as_str()
            .unwrap()
            .contains("nesting deeper than 32 levels")
    );
}

#[test]
fn a_body_that_is_not_json_is_refused_before_it_is_read() {
    let server = start_with(|c| c.http.as_mut().unwrap().max_body = 64 << 20);
    // The notes' test: 10 MB of 'x'. Send the headers and only the first
    // 64 KiB: the answer must come without the rest.
    let mut stream = connect(server.http());
    let total = 10 * 1024 * 1024;
    stream
        .write_all(
            format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    stream.write_all(&vec![b'x'; 64 << 10]).unwrap();
    let response = read_response(&mut stream);
    assert_eq!(response.status, 400);
    let answer = json(&response);
    assert_eq!(answer["offset"], 0);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("found 'x' where a JSON object '{' or array '[' of samples was expected")
    );
}

#[test]
fn oversized_bodies_get_413_from_their_length_alone() {
    let server = start();
    let mut stream = connect(server.http());
    stream
        .write_all(b"POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n")
        .unwrap();
    // Not one byte of the body is sent.
    let response = read_response(&mut stream);
    assert_eq!(response.status, 413);
    assert!(
        response.body.contains("at most 1048576"),
        "{}",
        response.body
    );
    // A gzip bomb: small on the wire, past the limit inflated.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&vec![b' '; 4 << 20]).unwrap();
    let bomb = request(
        server.http(),
        "POST",
        "/ingest/temp",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip.finish().unwrap(),
    );
    assert_eq!(bomb.status, 413, "{}", bomb.body);
}

#[test]
fn unsupported_types_and_encodings_get_415() {
    let server = start();
    let form = request(
        server.http(),
        "POST",
        "/upload",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1",
    );
    assert_eq!(form.status, 415);
    assert!(
        form.body
            .contains("send application/json or application/x-ndjson")
    );
    let brotli = request(
        server.http(),
        "POST",
        "/upload",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "br"),
        ],
        b"[]",
    );
    assert_eq!(brotli.status, 415);
    assert!(brotli.body.contains("send identity, gzip or zstd"));
    // Two encodings that disagree are refused, not half obeyed.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(br#"[{"key": "two", "value": 1}]"#).unwrap();
    let body = gzip.finish().unwrap();
    let twice = request(
        server.http(),
        "POST",
        "/ingest/temp",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Content-Encoding", "identity"),
        ],
        &body,
    );
    assert_eq!(twice.status, 415, "{}", twice.body);
    assert!(
        twice.body.contains("more than one Content-Encoding"),
        "{}",
        twice.body
    );
    assert_eq!(server.latest("temp", "two"), None);
}

#[test]
fn slow_clients_are_cut_off_and_others_are_still_served() {
    let server = start();
    // Headers that never finish: the connection is closed.
    let mut slow_headers = connect(server.http());
    slow_headers
        .write_all(b"POST /upload HTTP/1.1\r\nHost: te")
        .unwrap();
    // A body that never finishes: 408.
    let mut slow_body = connect(server.http());
    slow_body
        .write_all(b"POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"key\"")
        .unwrap();
    // Meanwhile a good client is served.
    let good = post_json(
        server.http(),
        "/ingest/temp",
        r#"[{"key": "fast", "value": 1}]"#,
    );
    assert_eq!(good.status, 200);
    assert_eq!(read_response(&mut slow_body).status, 408);
    // The server must close it (end of stream or reset); a read that times
    // out instead (10 s) means it kept waiting for the headers.
    let mut rest = Vec::new();
    match slow_headers.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("a connection whose headers never finished was not closed: {error}"),
    }
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    // A body that arrives in two parts, the second after a pause, is read
    // whole: part of it is taken at once, the rest waits under the timeout.
    let mut late = connect(server.http());
    let body = br#"[{"key": "late-1", "value": 1}, {"key": "late-2", "value": 2}]"#;
    late.write_all(
        format!(
            "POST /ingest/temp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    late.write_all(&body[..20]).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    late.write_all(&body[20..]).unwrap();
    let response = read_response(&mut late);
    assert_eq!(response.status, 200);
    assert_eq!(json(&response)["accepted"], 2);
    assert_eq!(server.latest("temp", "late-2"), Some(2.0));
}

#[test]
fn a_full_all_edge_queue_answers_429_with_retry_after() {
    let server = start_with(|c| c.intake.all_queue_capacity = 10);
    // Hold the engine so the first batch waits in the queue.
    let held = server.graph.lock();
    let address = server.http();
    let first = std::thread::spawn(move || {
        let body: Vec<String> = (0..10)
            .map(|i| format!("{{\"key\": \"k\", \"value\": {i}}}"))
            .collect();
        post_json(address, "/ingest/strict", &format!("[{}]", body.join(",")))
    });
    // Not a scrape: that reads the engine's counters under the lock held here.
    dav2d_testkit::wait_for("the first batch to be queued", || {
        server.runtime.metrics().queue_depth.get() == 10
    });
    let second = post_json(address, "/ingest/strict", r#"[{"key": "k", "value": 100}]"#);
    assert_eq!(second.status, 429);
    assert!(
        second
            .headers
            .to_ascii_lowercase()
            .contains("retry-after: 1"),
        "{}",
        second.headers
    );
    // Latest-only streams are never refused; this one waits for the engine.
    let latest = std::thread::spawn(move || {
        post_json(address, "/ingest/temp", r#"[{"key": "k", "value": 1}]"#)
    });
    drop(held);
    assert_eq!(latest.join().unwrap().status, 200);
    assert_eq!(first.join().unwrap().status, 200);
    let metrics = server.runtime.metrics().encode();
    assert!(
        metrics
            .contains(r#"dav2d_samples_rejected_total{component="http",kind="http",reason="overloaded",stage="transport"} 1"#),
        "{metrics}"
    );
}

#[test]
fn a_token_guards_every_endpoint_but_healthz() {
    let server = start_with(|c| c.http.as_mut().unwrap().listen.token = Some("s3cret".into()));
    let denied = post_json(
        server.http(),
        "/ingest/temp",
        r#"[{"key": "a", "value": 1}]"#,
    );
    assert_eq!(denied.status, 401);
    assert!(
        denied
            .headers
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer")
    );
    assert_eq!(
        request(server.http(), "GET", "/metrics", &[], b"").status,
        401
    );
    assert_eq!(
        request(server.http(), "GET", "/healthz", &[], b"").status,
        200
    );
    let allowed = request(
        server.http(),
        "POST",
        "/ingest/temp",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer s3cret"),
        ],
        br#"[{"key": "a", "value": 1}]"#,
    );
    assert_eq!(allowed.status, 200);
    // The scheme is case-insensitive; the token is not.
    for (header, status) in [("bearer s3cret", 200), ("Bearer S3CRET", 401)] {
        let response = request(
            server.http(),
            "GET",
            "/state/temp",
            &[("Authorization", header)],
            b"",
        );
        assert_eq!(response.status, status, "{header}");
    }
}

#[test]
fn a_sample_of_the_wrong_type_is_refused_and_the_good_ones_beside_it_applied() {
    let server = start();
    let response = post_json(
        server.http(),
        "/ingest/strict",
        r#"[{"key":"mix","value":1.0},{"key":"mix","value":"oops"},{"key":"mix","value":3.0}]"#,
    );
    let answer = json(&response);
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(answer["errors"][0]["index"], 1);
    assert!(
        answer["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("takes number values (read by numeric node 'every'), got a string"),
        "{answer}"
    );
    let every = json(&request(
        server.http(),
        "GET",
        "/state/every?key=mix",
        &[],
        b"",
    ));
    assert_eq!(every["value"], 3.0);
    assert!(every.get("error").is_none(), "no error state: {every}");
    let graph = json(&request(server.http(), "GET", "/graph", &[], b""));
    let strict = graph["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "strict")
        .unwrap();
    assert_eq!(strict["type"], "number");
}

#[test]
fn large_bodies_are_parsed_while_they_arrive() {
    let server = start_with(|c| c.intake.parse.parallel_threshold = 8 << 10);
    // Good records, over several pieces: all applied, in order.
    let body = large_array(20_000, |i| format!("big-{}", i % 50));
    assert!(body.len() > 600_000);
    let response = post_in_parts(server.http(), body.as_bytes(), 6);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json(&response)["accepted"], 20_000);
    assert_eq!(
        server.runtime.metrics().parsed_while_arriving.get(),
        1,
        "a body arriving over 100 ms is parsed while it arrives"
    );
    assert_eq!(server.latest("temp", "big-49"), Some(99.0));
    assert_eq!(server.latest("double", "big-0"), Some(2.0 * 50.0));
    // The same body sent at once (it is in before parsing would start early).
    let response = post_json(server.http(), "/ingest/temp", &body);
    assert_eq!(json(&response)["accepted"], 20_000, "{}", response.body);
    // A bad record deep inside: rejected with its body position, the rest applied.
    let bad = body.replacen(
        "{\"key\": \"big-0\", \"value\": 0}",
        "{\"key\": \"big-0\", \"value\": \"x\"}",
        1,
    );
    let response = post_in_parts(server.http(), bad.as_bytes(), 6);
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = json(&response);
    assert_eq!(answer["accepted"], 19_999);
    assert_eq!(answer["errors"][0]["index"], 0);
    let late_bad = body.replacen("\"value\": 50}", "\"value\": 500}", 1);
    let answer = json(&post_in_parts(server.http(), late_bad.as_bytes(), 6));
    assert_eq!(answer["accepted"], 19_999);
    assert_eq!(answer["errors"][0]["index"], 50);
    let reason = answer["errors"][0]["error"].as_str().unwrap();
    assert!(reason.contains("500"), "{reason}");
    // Keys holding the bytes of a cut: parsed the careful way, all applied.
    let tricky = large_array(10_000, |i| format!("{}{}", "},{".repeat(20), i % 7));
    let answer = json(&post_in_parts(server.http(), tricky.as_bytes(), 6));
    assert_eq!(answer["accepted"], 10_000, "{answer}");
    let last = (0..10_000).rev().find(|i| i % 7 == 6).unwrap();
    let key = format!("{}6", "},{".repeat(20));
    assert_eq!(server.latest("temp", &key), Some((last % 100) as f64));
    // A large columnar object (not an array) is parsed whole.
    let keys: Vec<String> = (0..40_000).map(|i| format!("\"col-{i}\"")).collect();
    let values: Vec<String> = (0..40_000).map(|i| (i % 100).to_string()).collect();
    let columnar = format!(
        "{{\"keys\": [{}], \"values\": [{}]}}",
        keys.join(","),
        values.join(",")
    );
    assert!(columnar.len() > 8 << 10);
    let answer = json(&post_in_parts(server.http(), columnar.as_bytes(), 3));
    assert_eq!(answer["accepted"], 40_000, "{answer}");
    // A truncated body is refused whole: nothing of it is applied.
    let cut = large_array(20_000, |i| format!("cut-{i}"));
    let cut = &cut[..cut.len() - 1];
    let response = post_in_parts(server.http(), cut.as_bytes(), 4);
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        json(&response)["error"]
            .as_str()
            .unwrap()
            .contains("ends inside the array")
    );
    assert_eq!(server.latest("temp", "cut-0"), None);
    // Not JSON at all: refused from its first bytes.
    let junk = "x".repeat(300_000);
    let response = post_in_parts(server.http(), junk.as_bytes(), 3);
    assert_eq!(response.status, 400);
    assert!(
        json(&response)["error"]
            .as_str()
            .unwrap()
            .contains("at byte 0")
    );
}

#[test]
fn the_door_takes_the_times_python_takes_and_the_path_names_the_stream() {
    let server = start();
    let address = server.http();
    // Integer ns, float seconds and RFC 3339: the same rule as Python's push.
    let answer = json(&post_json(
        address,
        "/ingest/temp",
        r#"[{"key": "ns", "value": 1, "ts": 1796523690490000000},
            {"key": "s", "value": 2, "ts": 1796523690.49},
            {"key": "rfc", "value": 3, "ts": "2026-12-06T02:21:30.49Z"},
            {"key": "bad", "value": 4, "ts": "yesterday"}]"#,
    ));
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["errors"][0]["index"], 3);
    assert!(
        answer["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("'yesterday' is not an RFC 3339 time"),
        "{answer}"
    );
    let ts = |key: &str| {
        server
            .graph
            .lock()
            .latest("temp", key)
            .unwrap()
            .and_then(|r| r.sample)
            .map(|s| s.ts_ns)
    };
    assert_eq!(ts("ns"), Some(1_796_523_690_490_000_000));
    // Seconds as a double carry about 0.2 us at today's times (as in Python).
    assert!(ts("s").unwrap().abs_diff(1_796_523_690_490_000_000) < 1_000);
    assert_eq!(ts("rfc"), Some(1_796_523_690_490_000_000));
    // A late sample says by how much in seconds, with readable times.
    let late = json(&post_json(
        address,
        "/ingest/temp",
        r#"[{"key": "s", "value": 5, "ts": "2026-12-06T02:21:25.49Z"}]"#,
    ));
    assert_eq!(
        late["errors"][0]["error"],
        "a sample at 2026-12-06T02:21:25.490Z for 'temp' key 's' is 5 s older than its latest (2026-12-06T02:21:30.490Z); the stream drops late samples (`late: insert` with `allowed_lateness` keeps them in windows)"
    );
    // The path names the stream: a sample naming another is refused alone.
    let answer = json(&post_json(
        address,
        "/ingest/temp",
        r#"[{"stream": "blob", "key": "x", "value": 1}, {"stream": "temp", "key": "y", "value": 2}, {"key": "z", "value": 3}]"#,
    ));
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{answer}"
    );
    assert_eq!(answer["errors"][0]["index"], 0);
    assert!(
        answer["errors"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("the sample names stream 'blob' but it was sent to 'temp'"),
        "{answer}"
    );
}
