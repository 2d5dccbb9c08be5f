//! The fuzz harnesses: one function per target, each taking arbitrary
//! bytes and driving one decoder the way the product does, checking what
//! must hold besides "no panic" (counts that add up, limits that hold).
//!
//! `fuzz/` (cargo-fuzz, nightly) calls these from its targets; the tests
//! of this crate replay the seed corpus in `fuzz/corpus/` and the found
//! crashes in `fuzz/regressions/`, and run a bounded, seeded mutation of
//! the seeds, on stable, in `make test`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use dav2d_core::{Graph, GraphOptions, ManualClock};
use dav2d_wire::{Format, ParseOptions};

/// A harness: arbitrary bytes in, a panic when something that must hold does not.
pub type Harness = fn(&[u8]);

/// Every target: its name (a folder under `fuzz/corpus/`) and harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("wire_json", wire_json),
    ("wire_ndjson", wire_ndjson),
    ("wire_compressed", wire_compressed),
    ("tcp_framing", tcp_framing),
    ("wal_segment", wal_segment),
    ("checkpoint", checkpoint),
    ("config", config),
];

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap_or_else(|error| panic!("a fuzz harness needs a thread pool: {error}"))
    })
}

/// Small limits, so the parallel and careful paths are both reached.
fn options() -> ParseOptions {
    ParseOptions {
        parallel_threshold: 256,
        max_body: 1 << 20,
        ..ParseOptions::default()
    }
}

/// Parses `data` as `format`, applies the records to a graph with small
/// limits, and checks that every record is accounted for once.
fn body(data: &[u8], format: Format) {
    let parsed = dav2d_wire::parse_then(data, format, Some("s"), &options(), pool(), |parsed| {
        let offered = parsed.len() + parsed.errors.len();
        let options = GraphOptions {
            limits: dav2d_core::Limits {
                max_keys: 64,
                max_value_bytes: 4096,
                max_retained_bytes: 1 << 16,
                ..dav2d_core::Limits::default()
            },
            ..GraphOptions::default()
        };
        let mut graph = Graph::new(options, Arc::new(ManualClock::new(0)));
        let mut report = dav2d_core::BatchReport::default();
        graph.push_records(parsed.samples(), &mut report);
        graph.run_wave();
        assert_eq!(
            report.accepted + report.rejected,
            parsed.len(),
            "every decoded record is applied or rejected once"
        );
        offered
    });
    if let Ok(offered) = parsed {
        assert!(offered <= data.len() + 1, "no more records than bytes");
    }
}

/// A JSON body (one sample, an array, or a columnar batch).
pub fn wire_json(data: &[u8]) {
    body(data, Format::Json);
}

/// An NDJSON body.
pub fn wire_ndjson(data: &[u8]) {
    body(data, Format::Ndjson);
}

/// A gzip or zstd body (the first byte chooses), inflated within its limit.
pub fn wire_compressed(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let encoding = if first % 2 == 0 { "gzip" } else { "zstd" };
    if let Ok(inflated) = dav2d_wire::decompress(rest, encoding, 1 << 16) {
        assert!(
            inflated.len() <= 1 << 16,
            "inflation stays within its limit"
        );
        body(&inflated, Format::Json);
    }
}

/// The TCP source's framing: units cut from the front of a buffer until
/// one is incomplete or too long, and the complete lines of the rest.
pub fn tcp_framing(data: &[u8]) {
    use dav2d_tcp::framing::{Frame, UNIT_HEADER, complete_lines, next_unit};
    let mut rest = data;
    loop {
        match next_unit(rest, 4096) {
            Frame::Incomplete => break,
            Frame::TooLong(len) => {
                assert!(len > 4096);
                break;
            }
            Frame::Unit { len, .. } => {
                assert!(len <= 4096 && UNIT_HEADER + len <= rest.len());
                rest = &rest[UNIT_HEADER + len..];
            }
        }
    }
    if let Some(end) = complete_lines(data) {
        assert_eq!(data[end - 1], b'\n');
        assert!(!data[end..].contains(&b'\n'));
    }
}

/// A write-ahead-log segment: its framing and checksums, then each good
/// record decoded as a logged sample; and the bytes themselves as a
/// record, past the checksum a random input would never match.
pub fn wal_segment(data: &[u8]) {
    let mut records = Vec::new();
    let damage = dav2d_store::wal::read_segment(data, &mut records);
    if let Some((offset, _)) = damage {
        assert!(offset as usize <= data.len());
    }
    for record in &records {
        let _ = dav2d_store::record::decode_sample(record);
    }
    let _ = dav2d_store::record::decode_sample(data);
}

/// A checkpoint's payload.
pub fn checkpoint(data: &[u8]) {
    let _ = dav2d_store::checkpoint::decode(data);
}

/// A YAML config, parsed and (when valid) built into a strict graph and
/// planned, as `dav2d check` and `dav2d run` would.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = dav2d_runtime::Config::parse(text, Path::new("fuzz.yaml")) else {
        return;
    };
    let options = GraphOptions {
        auto_create_streams: false,
        ..GraphOptions::default()
    };
    let mut graph = Graph::new(options, Arc::new(ManualClock::new(0)));
    if config.build(&mut graph).is_ok() {
        let _ = dav2d_runtime::Plan::new(config, dav2d_runtime::Overrides::default());
    }
}
