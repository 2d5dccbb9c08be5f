//! `dav2d replay`: a run recorded by `dav2d run` (its raw stream kept)
//! replayed with the same config reproduces its alerts exactly, variants of
//! the threshold run side by side (a higher one never raises more on a
//! rising fixture), and an NDJSON file replays like a store.

use super::{http_address, request, scratch_config, spawn_run, stop};
use std::process::Command;

const CONFIG: &str = "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    n: 2\n\
                      constraints:\n  - name: hot\n    input: avg\n    trip: 80\n    reset: 75\n\
                      persistence:\n  dir: {data}\n  streams: [temp]\n  flush_interval: 100ms\n";

const T0: i64 = 1_796_000_000_000_000_000;

fn replay(config: &std::path::Path, from: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args([
            "replay",
            config.to_str().unwrap(),
            "--from",
            from.to_str().unwrap(),
        ])
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_replay_reproduces_the_recorded_alerts_and_tries_thresholds_side_by_side() {
    let (dir, config) = scratch_config("replay", CONFIG);
    let (mut child, title) = spawn_run(&config);
    let address = http_address(&title);
    // Three keys over 60 s of event time: a trips twice, b once, c never.
    let mut samples = Vec::new();
    for i in 0..60i64 {
        let wave = |period: i64| if (i / period) % 2 == 1 { 90.0 } else { 70.0 };
        for (key, value) in [
            ("a", wave(10)),
            ("b", wave(30)),
            ("c", 50.0 + i as f64 * 0.1),
        ] {
            samples.push((key, value, T0 + i * 1_000_000_000));
        }
    }
    for (key, value, ts) in &samples {
        let answer = request(
            &address,
            "POST",
            "/ingest/temp",
            &format!(r#"{{"key":"{key}","value":{value},"ts":{ts}}}"#),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    stop(&mut child, "TERM");
    let data = dir.join("data");
    let same = replay(&config, &data, &[]);
    assert_eq!(same["samples"], 180);
    let (variant, recorded) = (&same["variants"][0]["alerts"][0], &same["recorded"][0]);
    assert_eq!(variant["constraint"], "hot");
    assert!(variant["raised"].as_u64().unwrap() >= 3, "{same}");
    for field in [
        "raised",
        "cleared",
        "tripped_seconds",
        "keys_tripped",
        "first_trip_ns",
        "last_trip_ns",
    ] {
        assert_eq!(variant[field], recorded[field], "{field}: {same}");
    }
    // Outputs into a fresh directory: the report and every transition, the
    // replayed run's as the recorded run's; never over a store.
    let out = dir.join("what-if");
    let written = replay(&config, &data, &["--out", out.to_str().unwrap()]);
    assert_eq!(written["variants"], same["variants"]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["variants"], same["variants"]);
    let transitions = std::fs::read_to_string(out.join("transitions.csv")).unwrap();
    let count = |who: &str| transitions.lines().filter(|l| l.starts_with(who)).count();
    assert!(count("\"as configured\",hot,") >= 3, "{transitions}");
    assert_eq!(
        count("\"as configured\",hot,"),
        count("\"recorded\",hot,"),
        "{transitions}"
    );
    assert!(
        std::fs::read_to_string(out.join("report.csv"))
            .unwrap()
            .starts_with("variant,")
    );
    for taken in [&out, &data] {
        let refused = Command::new(env!("CARGO_BIN_EXE_dav2d"))
            .args([
                "replay",
                config.to_str().unwrap(),
                "--from",
                data.to_str().unwrap(),
            ])
            .args(["--out", taken.to_str().unwrap()])
            .output()
            .unwrap();
        let error = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && error.contains("is not empty"),
            "{error}"
        );
    }
    // The store exported to Parquet replays the same (its raw stream and
    // its recorded states alike).
    let parquet = dir.join("export.parquet");
    let exported = std::process::Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args([
            "export",
            data.to_str().unwrap(),
            "--format",
            "parquet",
            "--out",
        ])
        .arg(&parquet)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    let from_parquet = replay(&config, &parquet, &[]);
    assert_eq!(from_parquet["samples"], 180);
    assert_eq!(from_parquet["variants"], same["variants"]);
    assert_eq!(from_parquet["recorded"], same["recorded"]);
    // A rising fixture: each key crosses each threshold at most once, so a
    // higher threshold never raises more.
    let file = dir.join("rising.ndjson");
    let lines: Vec<String> = (0..100i64)
        .flat_map(|i| {
            ["x", "y", "z"]
                .into_iter()
                .enumerate()
                .map(move |(k, key)| {
                    let value = 40.0 + i as f64 * (0.5 + k as f64 * 0.3);
                    format!(
                        r#"{{"stream":"temp","key":"{key}","value":{value},"ts":{}}}"#,
                        T0 + i * 1_000_000_000
                    )
                })
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let tried = replay(
        &config,
        &file,
        &["--vary", "hot.trip=60,80,100,120", "--vary", "hot.reset=50"],
    );
    let raised: Vec<u64> = (tried["variants"].as_array().unwrap().iter())
        .map(|v| v["alerts"][0]["raised"].as_u64().unwrap())
        .collect();
    assert_eq!(raised.len(), 4, "{tried}");
    assert!(raised.windows(2).all(|w| w[0] >= w[1]), "{raised:?}");
    assert!(raised[0] > raised[3], "{raised:?}");
    assert_eq!(tried["variants"][1]["label"], "hot.trip=80 hot.reset=50");
    // A varied node is copied with what reads it; an unvaried one is shared
    // (its figures are those of a replay of that variant alone).
    let smoothed = replay(&config, &file, &["--vary", "avg.n=1,40"]);
    let first = |v: &serde_json::Value| v["alerts"][0]["first_trip_ns"].as_i64().unwrap();
    let (quick, slow) = (&smoothed["variants"][0], &smoothed["variants"][1]);
    assert!(
        first(slow) > first(quick),
        "a longer average lags: {smoothed}"
    );
    let alone = replay(&config, &file, &["--vary", "avg.n=40"]);
    assert_eq!(alone["variants"][0]["alerts"], slow["alerts"]);
    let both = replay(
        &config,
        &file,
        &["--vary", "avg.n=1,40", "--vary", "hot.trip=80,100"],
    );
    assert_eq!(both["variants"].as_array().unwrap().len(), 4);
    let labelled = (both["variants"].as_array().unwrap().iter())
        .find(|v| v["label"] == "avg.n=40 hot.trip=100")
        .unwrap();
    let one = replay(
        &config,
        &file,
        &["--vary", "avg.n=40", "--vary", "hot.trip=100"],
    );
    assert_eq!(labelled["alerts"], one["variants"][0]["alerts"]);
    // The same samples as CSV: the same figures.
    let csv = dir.join("rising.csv");
    let rows: Vec<String> = (lines.iter())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{},{},{},{}",
                v["stream"].as_str().unwrap(),
                v["key"].as_str().unwrap(),
                v["value"],
                v["ts"]
            )
        })
        .collect();
    std::fs::write(&csv, format!("stream,key,value,ts\n{}\n", rows.join("\n"))).unwrap();
    let from_csv = replay(
        &config,
        &csv,
        &["--vary", "hot.trip=60,80,100,120", "--vary", "hot.reset=50"],
    );
    assert_eq!(from_csv["variants"], tried["variants"]);
    // A malformed line is named by its number, whichever parser thread read it.
    let broken = dir.join("broken.ndjson");
    let mut text = lines.clone();
    text[250] = "{\"stream\":\"temp\",\"key\":\"x\"}".to_string();
    std::fs::write(&broken, text.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args([
            "replay",
            config.to_str().unwrap(),
            "--from",
            broken.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && error.contains("broken.ndjson:251: missing field `value`"),
        "{error}"
    );
    // At a pace (100 s of event time at 10,000x): the same figures.
    let paced = replay(
        &config,
        &file,
        &[
            "--vary",
            "hot.trip=60,80,100,120",
            "--vary",
            "hot.reset=50",
            "--speed",
            "10000",
        ],
    );
    assert_eq!(paced["variants"], tried["variants"]);
    let _ = std::fs::remove_dir_all(dir);
}
