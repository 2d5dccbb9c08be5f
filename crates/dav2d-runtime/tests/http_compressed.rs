//! Large compressed bodies over real loopback sockets, inflated as a stream
//! into pieces parsed while the rest inflates: every record applied in
//! order, a bad record rejected alone, a body that is not an array read
//! whole, and bombs, cut-short streams and the body budget refused whole.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::io::Write;

use common::*;

/// Sample `i`'s value: scattered, so the bodies stay large compressed.
fn value(i: usize) -> f64 {
    let mixed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    (mixed % 100_000) as f64 / 1000.0
}

/// An array of `n` samples over 50 keys.
fn samples(n: usize) -> String {
    let samples: Vec<String> = (0..n)
        .map(|i| format!("{{\"key\": \"dev-{}\", \"value\": {}}}", i % 50, value(i)))
        .collect();
    format!("[{}]", samples.join(","))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(body).unwrap();
    gzip.finish().unwrap()
}

fn post(server: &Server, encoding: &str, body: &[u8]) -> Response {
    request(
        server.http(),
        "POST",
        "/ingest/temp",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", encoding),
        ],
        body,
    )
}

#[test]
fn large_compressed_arrays_are_inflated_into_pieces_and_applied_in_order() {
    let server = start_with(|plan| plan.http.as_mut().unwrap().max_body = 16 << 20);
    let body = samples(120_000);
    let expected = value(119_999);
    for (encoding, compressed) in [
        ("gzip", gzip(body.as_bytes())),
        ("zstd", zstd::encode_all(body.as_bytes(), 1).unwrap()),
    ] {
        assert!(
            compressed.len() > 64 << 10,
            "streamed: {}",
            compressed.len()
        );
        let response = post(&server, encoding, &compressed);
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(json(&response)["accepted"], 120_000, "{encoding}");
        assert_eq!(
            server.latest("temp", "dev-49"),
            Some(expected),
            "{encoding}"
        );
        // Sent again with a bad record deep inside: rejected alone, with
        // its body position, the rest applied.
        let at = body.find("dev-7\", \"value\": ").unwrap() + 80_000;
        let at = at + body[at..].find("\"value\": ").unwrap();
        let bad = format!(
            "{}\"value\": \"x\", \"was\": {}",
            &body[..at],
            &body[at + 9..]
        );
        let position = body[..at].matches('{').count() - 1;
        let compressed = match encoding {
            "gzip" => gzip(bad.as_bytes()),
            _ => zstd::encode_all(bad.as_bytes(), 1).unwrap(),
        };
        let answer = json(&post(&server, encoding, &compressed));
        assert_eq!(answer["accepted"], 119_999, "{encoding}: {answer}");
        assert_eq!(answer["errors"][0]["index"], position, "{encoding}");
    }
    // A columnar batch (an object, not an array) is read whole.
    let keys: Vec<String> = (0..40_000).map(|i| format!("\"col-{}\"", i % 10)).collect();
    let values: Vec<String> = (0..40_000)
        .map(|i| format!("{}.{}", i % 90, i % 7))
        .collect();
    let columnar = format!(
        "{{\"keys\": [{}], \"values\": [{}]}}",
        keys.join(","),
        values.join(",")
    );
    let compressed = gzip(columnar.as_bytes());
    assert!(compressed.len() > 64 << 10);
    let answer = json(&post(&server, "gzip", &compressed));
    assert_eq!(answer["accepted"], 40_000, "{answer}");
    assert_eq!(server.latest("temp", "col-9"), Some(39.1), "value 39,999");
}

#[test]
fn compressed_bodies_that_cannot_be_inflated_are_refused_whole() {
    let server = start_with(|plan| plan.http.as_mut().unwrap().max_body = 8 << 20);
    // Inflates far past the limit: 413, nothing applied.
    let mut bomb = samples(200).into_bytes();
    bomb.pop();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.push(b']');
    let mut packed = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    packed.write_all(&bomb).unwrap();
    // Bytes that compress badly, so the compressed body is streamed.
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut header = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    header.write_all(&noise).unwrap();
    let mut body = header.finish().unwrap();
    body.extend(packed.finish().unwrap());
    let response = post(&server, "gzip", &body);
    assert_eq!(response.status, 413, "{}", response.body);
    // Cut short: 400, nothing applied, the good records before the cut
    // included.
    let whole = gzip(samples(120_000).as_bytes());
    let response = post(&server, "gzip", &whole[..whole.len() - 1000]);
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(response.body.contains("gzip"), "{}", response.body);
    assert_eq!(server.latest("temp", "dev-0"), None, "nothing was applied");
    let metrics = request(server.http(), "GET", "/metrics", &[], b"").body;
    assert!(
        metrics.contains("dav2d_body_budget_used_bytes 0"),
        "every refused body gave its budget back"
    );
}
