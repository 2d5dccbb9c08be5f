//! The TCP source over real loopback sockets: NDJSON on many connections,
//! bad lines answered, binary units, and backpressure through TCP itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dav2d_core::Value;

use common::*;

#[test]
fn tcp_takes_ndjson_on_many_connections_and_answers_bad_lines() {
    let server = start();
    let address = server.runtime.address("tcp").unwrap();
    let writers: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(address).unwrap();
                for i in 0..100 {
                    writeln!(
                        stream,
                        "{{\"stream\": \"temp\", \"key\": \"c{c}\", \"value\": {i}}}"
                    )
                    .unwrap();
                }
                stream.shutdown(std::net::Shutdown::Write).unwrap();
                let mut reply = String::new();
                stream.read_to_string(&mut reply).unwrap();
                reply
            })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.join().unwrap(), "");
    }
    for c in 0..4 {
        assert_eq!(server.latest("temp", &format!("c{c}")), Some(99.0));
    }
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"{\"stream\": \"temp\", \"key\": \"x\", \"value\": 1}\nnot json\n{\"stream\": \"temp\", \"key\": \"x\", \"value\": 500}\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let lines: Vec<serde_json::Value> = reply
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{reply}");
    assert_eq!(
        (lines[0]["line"].as_u64(), lines[1]["line"].as_u64()),
        (Some(2), Some(3)),
        "lines count from 1"
    );
    // A byte offset in an error counts from the start of its line.
    let offset: usize = lines[0]["error"]
        .as_str()
        .and_then(|e| e.strip_prefix("at byte ")?.split(':').next()?.parse().ok())
        .unwrap();
    assert!(offset < "not json".len(), "{reply}");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("accepts values <= 150")
    );
    assert_eq!(server.latest("temp", "x"), Some(1.0));
}

#[test]
fn tcp_binary_units_carry_samples() {
    let server = start();
    let mut stream = TcpStream::connect(server.runtime.address("tcp").unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let payload = br#"[{"stream": "temp", "key": "bin", "value": 33}]"#;
    let mut units = b"DV2B".to_vec();
    units.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    units.push(1);
    units.extend_from_slice(payload);
    units.extend_from_slice(&3u32.to_be_bytes());
    units.push(9);
    units.extend_from_slice(b"abc");
    stream.write_all(&units).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("unit kind 9 is not supported"), "{reply}");
    assert_eq!(server.latest("temp", "bin"), Some(33.0));
}

#[test]
fn tcp_stops_reading_while_the_all_edge_queue_is_full() {
    let server = start_with(|c| c.intake.all_queue_capacity = 100);
    let held = server.graph.lock();
    let mut stream = TcpStream::connect(server.runtime.address("tcp").unwrap()).unwrap();
    stream.set_nonblocking(true).unwrap();
    let line = b"{\"stream\": \"strict\", \"key\": \"k\", \"value\": 1}\n";
    let mut sent = 0usize;
    let mut blocked = false;
    // Bounded: 256 MiB at most. The server must stop reading long before.
    while sent < 256 << 20 {
        match stream.write(&line.repeat(1000)) {
            Ok(n) => sent += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                // Give the server every chance to drain before deciding.
                std::thread::sleep(Duration::from_millis(200));
                match stream.write(line) {
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Ok(n) => sent += n,
                    Err(error) => panic!("{error}"),
                }
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(
        blocked,
        "the server kept reading {sent} bytes while the queue was full"
    );
    assert!(
        sent < 64 << 20,
        "memory stays bounded: {sent} bytes accepted before push-back"
    );
    drop(held);
    let value = Value::Float(1.0);
    dav2d_testkit::wait_for(
        "the queued samples to be applied once the engine frees up",
        || {
            server
                .graph
                .lock()
                .latest("every", "k")
                .unwrap()
                .and_then(|r| r.sample)
                .map(|s| s.value)
                == Some(value.clone())
        },
    );
}
