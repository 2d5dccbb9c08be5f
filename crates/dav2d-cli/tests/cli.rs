//! The `dav2d` binary as a user runs it: the demo stops by itself with
//! `--for`, prints plain lines when stdout is not a terminal, and `check`
//! prints the graph or a located error; signals, SIGKILL under durable
//! load, and a cluster of `dav2d run --cluster` processes on a real
//! `nats-server -js` losing a member to SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::process::Command;

fn dav2d(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args(args)
        .output()
        .expect("the dav2d binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_demo_runs_for_a_while_and_stops_by_itself() {
    let (ok, stdout, stderr) = dav2d(&[
        "run",
        "--for",
        "1500ms",
        "--refresh",
        "500ms",
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "off",
        "--data",
        "off",
    ]);
    assert!(ok, "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // A summary line is drawn every refresh and once more at the end, so
    // there is at least one whatever the timing.
    assert!(
        lines.len() >= 3,
        "a title, summary lines and the totals when not a terminal:\n{stdout}"
    );
    assert!(
        lines[0].starts_with("dav2d: the built-in demo")
            && lines[0].contains("HTTP and the dashboard on http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(!lines[0].contains("TCP on"), "--tcp off: {stdout}");
    assert!(
        lines[1].starts_with("t=") && lines[1].contains("samples="),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no escape codes off a terminal");
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("stopped after"), "{stdout}");
    let samples: u64 = last
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(samples > 0, "samples flowed: {last}");
}

#[test]
fn check_prints_the_graph_of_a_valid_config() {
    let demo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dav2d-runtime/src/demo.yaml"
    );
    let (ok, stdout, stderr) = dav2d(&["check", demo]);
    assert!(ok, "stderr: {stderr}");
    assert!(
        stdout.contains("temp_avg = moving_average(n=10) <- temperature[window 10, latest]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("overheat = constraint(above trip=80 reset=75"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");
    // What it understood besides the graph: every component.
    for part in [
        "sources:\n  http (http) 127.0.0.1:8080, no token\n  tcp (tcp) 127.0.0.1:7070, no token\n  synthetic (synthetic) 100 devices at 100 Hz -> temperature\nopen without a token: http (127.0.0.1:8080), tcp (127.0.0.1:7070)\n",
        "sinks:\n  persistence (persistence) dav2d-data\n",
        "persistence: dav2d-data (flush every 1s, checkpoint every 60s)\n",
        "metrics: counters only\n",
    ] {
        assert!(stdout.contains(part), "{part} in {stdout}");
    }
    // `--format json` prints the same spec as data.
    let (ok, stdout, stderr) = dav2d(&["check", "--format", "json", demo]);
    assert!(ok, "stderr: {stderr}");
    let spec: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(spec["nodes"][0]["name"], "temp_avg");
    assert_eq!(spec["nodes"][0]["inputs"][0]["window"], 10);
    assert_eq!(spec["sources"][2]["kind"], "synthetic");
    assert_eq!(spec["sources"][2]["names"][0], "temperature");
    assert_eq!(spec["persistence"]["dir"], "dav2d-data");
}

#[test]
fn check_refuses_what_run_would_refuse() {
    let (dir, path) = scratch_config(
        "check-typo",
        "streams:\n  - name: temperature\nconstraints:\n  - name: overheat\n    input: temperature\n    trip: 80\nsinks:\n  - kind: webhook\n    url: http://127.0.0.1:9/alerts\n    names: [overheet]\n",
    );
    let expected = format!(
        "error: {}:10:13: sinks[0].names[0]: 'overheet' is not a stream, node or constraint of this graph (did you mean 'overheat'?)",
        path.display()
    );
    let (ok, _stdout, stderr) = dav2d(&["check", path.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(stderr.trim_end(), expected);
    let (ok, _stdout, stderr) = dav2d(&[
        "run",
        path.to_str().unwrap(),
        "--for",
        "1s",
        "--http",
        "off",
        "--tcp",
        "off",
        "--data",
        "off",
    ]);
    assert!(!ok);
    assert_eq!(stderr.trim_end(), expected);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_names_file_line_and_field_of_an_error() {
    let dir = std::env::temp_dir().join(format!("dav2d-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: rate\n    input: tmp\n",
    )
    .unwrap();
    let (ok, _stdout, stderr) = dav2d(&["check", path.to_str().unwrap()]);
    assert!(!ok);
    let expected = format!(
        "error: {}:6:12: nodes[0].input: node 'avg' reads 'tmp'",
        path.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    let (ok, _stdout, stderr) = dav2d(&[
        "run",
        "/nonexistent/dav2d.yaml",
        "--for",
        "1s",
        "--http",
        "off",
        "--tcp",
        "off",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("/nonexistent/dav2d.yaml: cannot read the config file"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_second_run_restores_what_the_first_persisted() {
    let dir = std::env::temp_dir().join(format!("dav2d-cli-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_str().unwrap();
    let common = [
        "--refresh",
        "500ms",
        "--http",
        "off",
        "--tcp",
        "off",
        "--data",
        data,
    ];
    let (ok, stdout, stderr) = dav2d(&[&["run", "--for", "1200ms"][..], &common[..]].concat());
    assert!(ok, "{stderr}");
    assert!(
        stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains(&format!("data in {data}")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("restored"),
        "nothing to restore the first time: {stdout}"
    );
    assert!(
        dir.join("checkpoint.bin").exists(),
        "stopping writes a checkpoint"
    );
    let (ok, stdout, stderr) = dav2d(&[&["run", "--for", "600ms"][..], &common[..]].concat());
    assert!(ok, "{stderr}");
    assert!(
        stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains("restored from the checkpoint"),
        "{stdout}"
    );

    // `inspect` lists the store and changes nothing in it.
    let before = files(&dir);
    let (ok, stdout, stderr) = dav2d(&["inspect", data]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("log segments") && stdout.contains("wal-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint: ") && stdout.contains(" keys"),
        "{stdout}"
    );
    assert!(
        stdout.contains("history: 2 Parquet files"),
        "each stop's checkpoint rolled the log into Parquet: {stdout}"
    );
    assert!(stdout.contains("file actions: "), "{stdout}");
    assert_eq!(files(&dir), before, "inspect changes nothing");
    let (ok, _, stderr) = dav2d(&["inspect", "/nonexistent/store"]);
    assert!(!ok && stderr.contains("is not a directory"), "{stderr}");

    // `export` writes what the history holds, filtered, in three formats.
    let (ok, csv, stderr) = dav2d(&["export", data, "--name", "overheat", "--format", "csv"]);
    assert!(ok, "{stderr}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("ts,name,key,value,state"));
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.len() >= 100,
        "a state per device at least: {}",
        rows.len()
    );
    assert!(
        rows.iter()
            .all(|r| r.contains(",overheat,dev-") && r.contains("Z,")),
        "{csv}"
    );
    assert!(
        stderr.contains(&format!("exported {} rows", rows.len())),
        "{stderr}"
    );
    let (ok, ndjson, stderr) = dav2d(&[
        "export", data, "--name", "temp_avg", "--key", "dev-007", "--format", "ndjson",
    ]);
    assert!(ok, "{stderr}");
    assert!(ndjson.lines().count() > 10, "{ndjson}");
    assert!(
        ndjson
            .lines()
            .all(|l| l.contains(r#""name":"temp_avg","key":"dev-007","value":"#)),
        "{ndjson}"
    );
    let parquet = dir.with_extension("parquet");
    let out = parquet.to_str().unwrap();
    let (ok, _, stderr) = dav2d(&[
        "export", data, "--name", "overheat", "--format", "parquet", "--out", out,
    ]);
    assert!(ok, "{stderr}");
    let mut read_back = 0;
    dav2d_store::history::read_file(&parquet, |rows| {
        read_back += rows.len();
        assert!(rows.name.iter().all(|n| n.as_ref() == "overheat"));
        Ok(())
    })
    .unwrap();
    assert_eq!(read_back, rows.len(), "the same rows as the CSV");
    let (ok, _, stderr) = dav2d(&["export", data, "--format", "parquet"]);
    assert!(!ok && stderr.contains("needs --out FILE"), "{stderr}");
    let (ok, _, stderr) = dav2d(&["export", data, "--from", "yesterday"]);
    assert!(!ok && stderr.contains("is not a time"), "{stderr}");
    std::fs::remove_file(&parquet).ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// The files of `dir` with their sizes, sorted.
fn files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A fresh scratch folder named after `name` with `dav2d.yaml` in it: the
/// `yaml` with `{data}` replaced by the folder's `data` directory.
fn scratch_config(name: &str, yaml: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("dav2d-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dav2d.yaml");
    let data = dir.join("data");
    std::fs::write(&config, yaml.replace("{data}", &data.display().to_string())).unwrap();
    (dir, config)
}

/// Starts `dav2d run CONFIG` with HTTP on an ephemeral port; returns the
/// child and its title line.
fn spawn_run(config: &std::path::Path) -> (std::process::Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dav2d"));
    command
        .args(["run", config.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .args(["--tcp", "off", "--refresh", "1h"]);
    spawn_titled(&mut command)
}

/// Spawns `command` (a `dav2d run`) with piped output; returns the child
/// and the title line it prints first.
fn spawn_titled(command: &mut Command) -> (std::process::Child, String) {
    spawn_titled_with(command, std::process::Stdio::piped())
}

/// [`spawn_titled`] with its stderr going to `stderr`.
fn spawn_titled_with(
    command: &mut Command,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut title = String::new();
    stdout.read_line(&mut title).unwrap();
    child.stdout = Some(stdout.into_inner());
    (child, title)
}

/// The HTTP address a title line names.
fn http_address(title: &str) -> String {
    title
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("the title names the HTTP address: {title}"))
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// Sends SIG`signal` to a run, asserts it exits with 0, returns the rest of
/// its stdout.
fn stop(child: &mut std::process::Child, signal: &str) -> String {
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut rest).unwrap();
    assert!(status.success(), "SIG{signal} exits with 0: {status:?}");
    rest
}

#[test]
fn sigint_and_sigterm_stop_in_order_and_lose_nothing_accepted() {
    for signal in ["INT", "TERM"] {
        // A long flush interval: nothing is durable before the signal
        // unless the stop is orderly.
        let (dir, config) = scratch_config(
            &format!("signal-{signal}"),
            "streams:\n  - name: temp\nnodes:\n  - name: twice\n    kind: scale\n    input: temp\n    a: 2\npersistence:\n  dir: {data}\n  flush_interval: 1h\n  checkpoint_interval: 1h\n",
        );
        let (mut child, title) = spawn_run(&config);
        let address = http_address(&title);
        let samples: Vec<String> = (0..100)
            .map(|i| format!("{{\"key\": \"k{i}\", \"value\": {i}}}"))
            .collect();
        let body = format!("[{}]", samples.join(","));
        let answer = request(&address, "POST", "/ingest/temp", &body);
        assert!(answer.contains("\"accepted\":100"), "{answer}");
        let rest = stop(&mut child, signal);
        assert!(rest.contains("stopped after"), "the final summary: {rest}");
        let data = dir.join("data");
        assert!(data.join("checkpoint.bin").exists(), "a checkpoint");
        let parquet = std::fs::read_dir(data.join("history"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            .count();
        assert!(parquet >= 1, "the log is rolled into Parquet history");
        let (ok, exported, stderr) = dav2d(&[
            "export",
            data.to_str().unwrap(),
            "--name",
            "twice",
            "--format",
            "ndjson",
        ]);
        assert!(ok, "{stderr}");
        assert_eq!(exported.lines().count(), 100, "{exported}");
        assert!(exported.contains("\"key\":\"k99\""), "{exported}");
        assert!(exported.contains("198"), "{exported}");
        // A restart serves the restored values themselves, not just a banner.
        let (mut again, title) = spawn_run(&config);
        assert!(title.contains("restored from the checkpoint"), "{title}");
        let address = http_address(&title);
        let state = request(&address, "GET", "/state/twice?key=k99", "");
        assert!(state.contains("\"value\":198.0"), "{state}");
        let state = request(&address, "GET", "/state/temp?key=k7", "");
        assert!(state.contains("\"value\":7.0"), "{state}");
        stop(&mut again, signal);
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// The keys and values of `/state/{name}`, every page of them.
fn all_state(address: &str, name: &str) -> std::collections::HashMap<String, f64> {
    let mut all = std::collections::HashMap::new();
    let mut after = String::new();
    for _ in 0..1000 {
        let path = if after.is_empty() {
            format!("/state/{name}?limit=10000")
        } else {
            format!("/state/{name}?limit=10000&after={after}")
        };
        let answer = request(address, "GET", &path, "");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let page: serde_json::Value = serde_json::from_str(body).unwrap();
        for (key, reading) in page["keys"].as_object().unwrap() {
            all.insert(key.clone(), reading["value"].as_f64().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    all
}

#[test]
fn every_sample_acknowledged_durable_survives_a_sigkill_under_load() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    // Nothing is flushed on a schedule: only durable acknowledgements flush.
    let (dir, config) = scratch_config(
        "kill",
        "streams:\n  - name: temp\nnodes:\n  - name: twice\n    kind: scale\n    input: temp\n    a: 2\npersistence:\n  dir: {data}\n  streams: [temp]\n  flush_interval: 1h\n  checkpoint_interval: 1h\n",
    );
    let (mut child, title) = spawn_run(&config);
    let address = http_address(&title);
    let stop = Arc::new(AtomicBool::new(false));
    let acked_batches = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (address, stop) = (address.clone(), Arc::clone(&stop));
            let (acked, acked_batches) = (Arc::clone(&acked), Arc::clone(&acked_batches));
            std::thread::spawn(move || {
                for batch in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let samples: Vec<(String, f64)> = (0..20)
                        .map(|i| (format!("c{client}-{batch}-{i}"), f64::from(batch * 20 + i)))
                        .collect();
                    let body: Vec<String> = samples
                        .iter()
                        .map(|(key, value)| format!("{{\"key\":\"{key}\",\"value\":{value}}}"))
                        .collect();
                    let body = format!("[{}]", body.join(","));
                    // The answer may never come: the server is killed mid-way.
                    let answer = try_request(&address, "POST", "/ingest/temp?ack=durable", &body)
                        .unwrap_or_default();
                    if answer.starts_with("HTTP/1.1 200") && answer.contains("\"durable\":true") {
                        acked.lock().unwrap().extend(samples);
                        acked_batches.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for _ in 0..2000 {
        if acked_batches.load(Ordering::Relaxed) >= 40 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SIGKILL while the clients are still sending: no orderly stop.
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 40 * 20,
        "{} samples acknowledged",
        acked.len()
    );
    let (mut again, title) = spawn_run(&config);
    let address = http_address(&title);
    let restored = all_state(&address, "temp");
    let twice = all_state(&address, "twice");
    let missing: Vec<&(String, f64)> = acked
        .iter()
        .filter(|(key, value)| restored.get(key) != Some(value))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged samples lost, e.g. {:?}; {} restored; {title}",
        missing.len(),
        acked.len(),
        missing.first(),
        restored.len()
    );
    for (key, value) in &acked {
        assert_eq!(
            twice.get(key),
            Some(&(value * 2.0)),
            "the node output of {key}"
        );
    }
    again.kill().unwrap();
    again.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn running_out_of_descriptors_backs_off_quietly_and_recovers() {
    let (dir, config) = scratch_config("emfile", "streams:\n  - name: temp\n");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_address = tcp.local_addr().unwrap().to_string();
    drop(tcp);
    // A descriptor limit far below the connections the test opens.
    let (mut child, title) = spawn_titled(Command::new("sh").arg("-c").arg(format!(
        "ulimit -n 64 && exec {} run {} --http 127.0.0.1:0 --tcp {tcp_address} --data off --refresh 1h",
        env!("CARGO_BIN_EXE_dav2d"),
        config.display()
    )));
    let address = http_address(&title);
    let mut held = Vec::new();
    for _ in 0..100 {
        match std::net::TcpStream::connect(&tcp_address) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    // Accepting fails with EMFILE for a while: the loop backs off.
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(held);
    let mut healthy = false;
    for _ in 0..100 {
        if try_request(&address, "GET", "/healthz", "").is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
        {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(healthy, "the server serves again once descriptors are free");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let warnings = stderr.matches("Accepting a TCP connection failed").count();
    assert!(
        (1..=2).contains(&warnings),
        "one warning per 10 s, not one per failure ({warnings}): {stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[path = "../../dav2d-runtime/tests/common/brokers.rs"]
mod brokers;

#[path = "cli/client.rs"]
mod client;
use client::{request, request_with, try_request};
#[path = "cli/reload.rs"]
mod reload;
#[path = "cli/replay.rs"]
mod replay;
#[path = "cli/summary.rs"]
mod summary;
#[path = "cli/watch.rs"]
mod watch;

/// Starts `dav2d run CONFIG` with HTTP on an ephemeral port and its log in
/// `log` (read when the test fails; a pipe nobody reads could fill).
fn spawn_logged(config: &std::path::Path, log: &std::path::Path) -> (std::process::Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dav2d"));
    command
        .args(["run", config.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .args(["--tcp", "off", "--refresh", "1h"])
        .env("DAV2D_LOG", "info");
    spawn_titled_with(&mut command, std::fs::File::create(log).unwrap().into())
}

/// The value of the gauge `name` in a run's `/metrics`.
fn gauge(address: &str, name: &str) -> u64 {
    dav2d_testkit::gauge_in(&request(address, "GET", "/metrics", ""), name)
}

/// Every reading of `name` a run's `/state` pages hold, by key.
fn all_readings(address: &str, name: &str) -> std::collections::HashMap<String, serde_json::Value> {
    let answer = request(address, "GET", &format!("/state/{name}?limit=10000"), "");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let page: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(page["next"].is_null(), "one page holds every key");
    page["keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn a_cluster_member_killed_with_sigkill_loses_nothing_and_every_key_ends_as_on_one_instance() {
    const KEYS: usize = 1_000;
    const SAMPLES: usize = 100_000;
    let Some(server) = brokers::NatsServer::start() else {
        return;
    };
    let graph = "streams:\n  - name: temperature\nnodes:\n  - name: avg\n    kind: moving_average\n    n: 3\n    input: temperature\n\
                 \x20 - name: smooth\n    kind: ewma\n    alpha: 0.25\n    input: temperature\n    policy: all\n\
                 constraints:\n  - name: hot\n    input: avg\n    trip: 60\n    reset: 55\npersistence:\n  enabled: false\n";
    // The single instance, without clustering, over the same input.
    let (reference_dir, reference_config) = scratch_config("cluster-reference", graph);
    let (mut reference, title) = spawn_logged(&reference_config, &reference_dir.join("log"));
    let reference_address = http_address(&title);
    let mut members = Vec::new();
    for i in 0..3 {
        let yaml = format!(
            "{graph}cluster:\n  url: nats://127.0.0.1:{}\n  partitions: 8\n  instance: m{i}\n  lease_ttl: 1s\n  checkpoint_every: 100ms\n  publish_every: 100ms\n",
            server.port
        );
        let (dir, config) = scratch_config(&format!("cluster-m{i}"), &yaml);
        let log = dir.join("log");
        let (child, title) = spawn_logged(&config, &log);
        members.push((child, http_address(&title), dir, log));
    }
    let post = |address: &str, from: usize, to: usize| {
        let records: Vec<serde_json::Value> = (from..to)
            .map(|i| {
                serde_json::json!({
                    "stream": "temperature",
                    "key": format!("k{}", (i * 7) % KEYS),
                    "value": 40.0 + ((i * 31) % 47) as f64,
                    "ts": 1_700_000_000_000_000_000i64 + i as i64,
                })
            })
            .collect();
        let body = serde_json::Value::Array(records).to_string();
        let answer = request(address, "POST", "/ingest/temperature", &body);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    };
    // The same batches to the reference and to the first member.
    let half = SAMPLES / 2;
    for chunk in (0..half).step_by(1000) {
        post(&reference_address, chunk, chunk + 1000);
        post(&members[0].1, chunk, chunk + 1000);
    }
    let owned = |address: &str| gauge(address, "dav2d_cluster_partitions_owned");
    brokers::wait_for("every member to own partitions", || {
        members.iter().all(|m| owned(&m.1) > 0)
    });
    // The victim checkpointed what it applied (the first half is all in
    // the stream: it goes idle and checkpoints within 100 ms).
    brokers::wait_for("the victim to checkpoint", || {
        gauge(&members[2].1, "dav2d_cluster_checkpoints_written") > 0
    });
    let loaded = |members: &[(
        std::process::Child,
        String,
        std::path::PathBuf,
        std::path::PathBuf,
    )]|
     -> u64 {
        members
            .iter()
            .map(|m| gauge(&m.1, "dav2d_cluster_checkpoints_loaded"))
            .sum()
    };
    let loaded_before = loaded(&members[..2]);
    let (mut victim, ..) = members.pop().unwrap();
    victim.kill().unwrap(); // SIGKILL: no handover, its leases expire.
    victim.wait().unwrap();
    for chunk in (half..SAMPLES).step_by(1000) {
        post(&reference_address, chunk, chunk + 1000);
        post(&members[0].1, chunk, chunk + 1000);
    }
    brokers::wait_for("the survivors to own every partition", || {
        members.iter().map(|m| owned(&m.1)).sum::<u64>() == 8
    });
    assert!(
        loaded(&members) > loaded_before,
        "the survivors started the victim's partitions from its checkpoints"
    );
    // Every key, read on the member no sample was posted to (its own keys
    // from its graph, the others' from the bucket their owners publish to),
    // reads as on the single instance: the latest average, the `all`-edge
    // ewma (a sample applied twice or missed would change it), the alert,
    // and the key's sample count.
    let names = ["avg", "smooth", "hot", "temperature"];
    let expected: Vec<_> = names
        .iter()
        .map(|name| all_readings(&reference_address, name))
        .collect();
    assert!(expected.iter().all(|readings| readings.len() == KEYS));
    let reader = members[1].1.clone();
    let read = |name: &str, key: &str| -> serde_json::Value {
        let answer = request(&reader, "GET", &format!("/state/{name}?key={key}"), "");
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or_default()
    };
    let mut differing: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
    for _ in 0..100 {
        differing.retain(|key| {
            names.iter().zip(&expected).any(|(name, want)| {
                let got = read(name, key);
                let field = if *name == "temperature" {
                    "seq"
                } else {
                    "value"
                };
                got[field] != want[key][field]
            })
        });
        if differing.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let logs: Vec<String> = members
        .iter()
        .map(|m| std::fs::read_to_string(&m.3).unwrap_or_default())
        .collect();
    assert!(
        differing.is_empty(),
        "{} keys differ from the single instance, e.g. {:?}; logs: {logs:?}",
        differing.len(),
        &differing[..differing.len().min(5)]
    );
    for (mut child, _, dir, _) in members {
        stop(&mut child, "TERM");
        let _ = std::fs::remove_dir_all(dir);
    }
    stop(&mut reference, "TERM");
    let _ = std::fs::remove_dir_all(reference_dir);
}
