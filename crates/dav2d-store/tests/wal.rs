//! The write-ahead log on real files: round trips across segments, torn and
//! corrupt records detected and reported (never misread), the ledger's
//! counts, and a child process killed with SIGKILL mid-write, 20 times.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use dav2d_core::ManualClock;
use dav2d_store::{FileAction, Fsync, Ledger, Wal, WalOptions};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-wal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ledger() -> Ledger {
    Ledger::new(Ledger::DEFAULT_BUDGET, Arc::new(ManualClock::new(0)))
}

fn record(seq: u64) -> Vec<u8> {
    let mut payload = seq.to_le_bytes().to_vec();
    payload.extend(std::iter::repeat_n((seq % 251) as u8, (seq % 97) as usize));
    payload
}

fn write(dir: &Path, options: WalOptions, range: std::ops::Range<u64>, per_commit: u64) -> Ledger {
    let mut ledger = ledger();
    let (mut wal, _) = Wal::open(dir, options, &mut ledger).unwrap();
    for seq in range {
        wal.append(&record(seq), &mut ledger).unwrap();
        if (seq + 1) % per_commit == 0 {
            wal.commit(&mut ledger).unwrap();
        }
    }
    wal.commit(&mut ledger).unwrap();
    ledger
}

fn newest_segment(dir: &Path) -> PathBuf {
    let numbers = dav2d_store::wal::segments(dir).unwrap();
    dir.join(format!("wal-{:016}.log", numbers.last().unwrap()))
}

#[test]
fn records_round_trip_across_segments_in_order() {
    let dir = scratch("roundtrip");
    let options = WalOptions {
        segment_bytes: 4096,
        fsync: Fsync::Batch,
    };
    let mut ledger = write(&dir, options.clone(), 0..1000, 50);
    let (_, recovery) = Wal::open(&dir, options, &mut ledger).unwrap();
    assert!(
        recovery.segments > 5,
        "segments rolled: {}",
        recovery.segments
    );
    assert!(recovery.damage.is_empty());
    let expected: Vec<Vec<u8>> = (0..1000).map(record).collect();
    assert_eq!(recovery.records, expected);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_write_and_one_fsync_per_commit_whatever_the_records() {
    let dir = scratch("ledger");
    let options = WalOptions {
        segment_bytes: 1 << 30,
        fsync: Fsync::Batch,
    };
    let mut ledger = write(&dir, options, 0..10_000, 1000);
    let counts = ledger.by_kind();
    let count = |kind| {
        counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    };
    // 10 commits of 1000 records; the first segment's creation and its directory fsync.
    assert_eq!(count(FileAction::Write), 10);
    assert_eq!(count(FileAction::Fsync), 10 + 1);
    assert_eq!(
        count(FileAction::Create),
        2,
        "the directory and the first segment"
    );
    assert_eq!(ledger.used_today(), 10 + 11 + 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_torn_tail_is_truncated_and_reported() {
    let dir = scratch("torn");
    let options = WalOptions::default();
    write(&dir, options.clone(), 0..100, 10);
    let newest = newest_segment(&dir);
    let length = std::fs::metadata(&newest).unwrap().len();
    // The last record loses its final 3 bytes, as in a crash mid-write.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(length - 3)
        .unwrap();
    let mut ledger = ledger();
    let (mut wal, recovery) = Wal::open(&dir, options.clone(), &mut ledger).unwrap();
    assert_eq!(recovery.records, (0..99).map(record).collect::<Vec<_>>());
    assert_eq!(recovery.damage.len(), 1);
    let damage = &recovery.damage[0];
    assert_eq!((damage.kind, damage.truncated), ("torn", true));
    assert_eq!(damage.dropped_bytes, (8 + record(99).len() - 3) as u64);
    // The log goes on from the last good record.
    wal.append(&record(99), &mut ledger).unwrap();
    wal.commit(&mut ledger).unwrap();
    let (_, again) = Wal::open(&dir, options, &mut ledger).unwrap();
    assert!(again.damage.is_empty());
    assert_eq!(again.records, (0..100).map(record).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn flipped_bytes_are_detected_not_misread() {
    let dir = scratch("flip");
    let options = WalOptions {
        segment_bytes: 2048,
        fsync: Fsync::Off,
    };
    write(&dir, options.clone(), 0..300, 7);
    let numbers = dav2d_store::wal::segments(&dir).unwrap();
    assert!(numbers.len() >= 3);
    // Damage the middle of an older segment: a payload byte and a length byte.
    let older = dir.join(format!("wal-{:016}.log", numbers[1]));
    let mut bytes = std::fs::read(&older).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&older, &bytes).unwrap();
    let newest = newest_segment(&dir);
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[1] ^= 0x01;
    std::fs::write(&newest, &bytes).unwrap();
    let (_, recovery) = Wal::open(&dir, options, &mut ledger()).unwrap();
    assert_eq!(recovery.damage.len(), 2, "{:?}", recovery.damage);
    assert_eq!(
        (recovery.damage[0].kind, recovery.damage[0].truncated),
        ("corrupt", false)
    );
    assert!(
        recovery.damage[1].truncated,
        "the newest segment's tail is truncated"
    );
    // Every record returned is one that was written, intact, in order.
    let all: Vec<Vec<u8>> = (0..300).map(record).collect();
    let mut cursor = 0;
    for returned in &recovery.records {
        let position = all[cursor..]
            .iter()
            .position(|r| r == returned)
            .expect("no misread record");
        cursor += position + 1;
    }
    assert!(recovery.records.len() < 300);
    std::fs::remove_dir_all(&dir).ok();
}

/// The writer side of the crash test: runs only when the parent test starts
/// this binary with `DAV2D_WAL_CRASH_DIR` set.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var("DAV2D_WAL_CRASH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut ledger = ledger();
    let options = WalOptions {
        segment_bytes: 64 << 10,
        fsync: Fsync::Batch,
    };
    let (mut wal, recovery) = Wal::open(&dir, options, &mut ledger).unwrap();
    let mut seq = recovery.records.len() as u64;
    let stdout = std::io::stdout();
    for _ in 0..200_000 {
        for _ in 0..5 {
            wal.append(&record(seq), &mut ledger).unwrap();
            seq += 1;
        }
        wal.commit(&mut ledger).unwrap();
        // Acknowledged: durable before it is announced.
        let mut out = stdout.lock();
        writeln!(out, "{}", seq - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_write_loses_nothing_acknowledged() {
    let dir = scratch("crash");
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: Option<u64> = None;
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("DAV2D_WAL_CRASH_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it get some way in (a different way each round), then kill it.
        let wanted = 3 + (round * 37) % 60;
        let mut seen = 0;
        while seen < wanted {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Ok(seq) = line.trim().parse::<u64>() {
                        acknowledged = Some(seq);
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let (_, recovery) = Wal::open(&dir, WalOptions::default(), &mut ledger()).unwrap();
        let acknowledged = acknowledged.expect("the child acknowledged writes");
        assert!(
            recovery.records.len() as u64 > acknowledged,
            "round {round}: {} records back, {acknowledged} acknowledged",
            recovery.records.len()
        );
        for (seq, payload) in recovery.records.iter().enumerate() {
            assert_eq!(
                payload,
                &record(seq as u64),
                "round {round}: record {seq} intact and in order"
            );
        }
        assert!(
            recovery.damage.iter().all(|d| d.truncated),
            "only a torn tail, truncated: {:?}",
            recovery.damage
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
