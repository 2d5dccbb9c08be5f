//! The fuzz targets on stable, in `make test`: every seed of
//! `fuzz/corpus/<target>/`, every crash kept in `fuzz/regressions/<target>/`,
//! and a bounded, seeded mutation run over the seeds
//! (`DAV2D_FUZZ_MUTATIONS` per target, 3000 by default). `make fuzz` runs
//! the same harnesses under libFuzzer for real coverage-guided runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b",",
    b":",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
    b"-0",
    b"null",
    b"\n",
    b"\r\n",
    b"  ",
    b"\xff",
    b"DV2B",
    b"\x00\x00\x00\x05\x01",
    b"&a",
    b"*a",
    b"- ",
    b": ",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

fn mutate(rng: &mut fastrand::Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(..=input.len());
        match rng.u8(..6) {
            0 if !input.is_empty() => {
                let i = rng.usize(..input.len());
                input[i] ^= 1 << rng.u8(..8);
            }
            1 => input.insert(at, rng.u8(..)),
            2 if !input.is_empty() => {
                let end = (at + rng.usize(..16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            3 if !input.is_empty() => {
                let start = rng.usize(..input.len());
                let end = (start + rng.usize(..64)).min(input.len());
                let piece = input[start..end].to_vec();
                input.splice(at..at, piece);
            }
            4 => {
                let token = TOKENS[rng.usize(..TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            _ if !seeds.is_empty() => {
                let other = &seeds[rng.usize(..seeds.len())];
                let from = rng.usize(..=other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    input.truncate(1 << 16);
}

#[test]
fn every_target_survives_its_seeds_its_regressions_and_a_bounded_mutation_run() {
    let mutations: usize = std::env::var("DAV2D_FUZZ_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    for (name, harness) in dav2d_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = files(&root().join("corpus").join(name))
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} has seeds");
        for (path, bytes) in files(&root().join("regressions").join(name)) {
            eprintln!("{name}: regression {}", path.display());
            harness(&bytes);
        }
        for seed in &seeds {
            harness(seed);
        }
        let mut rng = fastrand::Rng::with_seed(0xda_f2d ^ name.len() as u64);
        for _ in 0..mutations {
            let mut input = seeds[rng.usize(..seeds.len())].clone();
            mutate(&mut rng, &seeds, &mut input);
            harness(&input);
        }
    }
}

/// Writes real store files (a log segment, a checkpoint payload) into
/// `fuzz/corpus/`: run once by hand with `--ignored` when the formats change.
#[test]
#[ignore = "writes the store seeds of fuzz/corpus; run by hand"]
fn write_store_seeds() {
    use std::sync::Arc;

    use dav2d_core::{
        Builtin, Graph, GraphOptions, Keys, ManualClock, NodeSpec, SubscriptionMode, Value,
    };
    let dir = std::env::temp_dir().join(format!("dav2d-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = ManualClock::new(1_000_000_000);
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 2 },
        ))
        .unwrap();
    graph
        .declare_type("note", dav2d_core::ValueType::String)
        .unwrap();
    let updates = graph
        .subscribe_many(
            &["temp", "avg", "note"],
            SubscriptionMode::EveryChange,
            1 << 10,
        )
        .unwrap();
    let (mut store, _) = dav2d_store::Store::open(
        &dir,
        dav2d_store::StoreOptions::default(),
        Arc::new(clock),
        &mut Graph::new(GraphOptions::default(), Arc::new(ManualClock::new(0))),
    )
    .unwrap();
    graph.push_numbers("temp", Keys::Many(&["a", "b", "a"]), &[1.0, 2.0, 3.0], None);
    graph.push("note", "s", Value::from("text"), None).unwrap();
    graph.run_wave();
    while let Some(update) = updates.try_next() {
        store.log(&update).unwrap();
    }
    store.flush().unwrap();
    let corpus = root().join("corpus");
    let segment = dav2d_store::wal::segments(&dir).unwrap()[0];
    let bytes = std::fs::read(dav2d_store::wal::segment_file(&dir, segment)).unwrap();
    std::fs::write(corpus.join("wal_segment/segment"), &bytes).unwrap();
    std::fs::write(corpus.join("wal_segment/torn"), &bytes[..bytes.len() - 3]).unwrap();
    store.checkpoint(&graph).unwrap();
    let file = std::fs::read(dir.join(dav2d_store::checkpoint::FILE)).unwrap();
    // The payload: past the 8-byte marker, before the 4-byte checksum.
    std::fs::write(corpus.join("checkpoint/payload"), &file[8..file.len() - 4]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
