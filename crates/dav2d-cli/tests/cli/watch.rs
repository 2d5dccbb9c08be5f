//! `dav2d watch` against a running `dav2d run`: a key's changes with a
//! sparkline, `--top` worst first, and a misspelt name refused with the
//! closest one.

use super::{http_address, request, scratch_config, spawn_run, stop};
use std::io::BufRead;
use std::process::{Command, Stdio};

const CONFIG: &str = "streams:\n  - name: temp\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    n: 2\n\
                      constraints:\n  - name: hot\n    input: avg\n    trip: 100\npersistence:\n  enabled: false\n";

fn post(address: &str, key: &str, value: f64) {
    let answer = request(
        address,
        "POST",
        "/ingest/temp",
        &format!(r#"{{"key":"{key}","value":{value}}}"#),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn watch(address: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args(["watch", "--http", address])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn watch_follows_a_key_lists_the_worst_keys_and_names_the_closest_name() {
    let (dir, config) = scratch_config("watch", CONFIG);
    let (mut child, title) = spawn_run(&config);
    let address = http_address(&title);
    for (key, value) in [("a", 10.0), ("a", 20.0), ("b", 500.0), ("c", 5.0)] {
        post(&address, key, value);
    }
    // A key's changes, each with a sparkline of its recent values.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args(["watch", "avg", "a", "--http", &address, "--for", "60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = received
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    assert!(
        first.contains(" a 15"),
        "where the key stands first: {first}"
    );
    let mut next = 30.0;
    let line = dav2d_testkit::wait_until("a change of a followed", || {
        // Posted until the subscription is in place and the change shows.
        post(&address, "a", next);
        next += 10.0;
        received
            .recv_timeout(std::time::Duration::from_millis(200))
            .ok()
            .filter(|line| line.contains(" a ") && !line.contains(" a 15"))
    });
    assert!(
        line.chars().any(|c| ('▁'..='█').contains(&c)),
        "a sparkline: {line}"
    );
    let _ = follower.kill();
    let _ = follower.wait();
    // The worst keys first: the tripped one, and the highest average.
    let top = watch(&address, &["hot", "--top", "2", "--for", "1ms"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "{text}");
    let mut rows = text.lines();
    assert_eq!(rows.next(), Some("hot: the 2 worst of 3 keys"), "{text}");
    assert!(
        rows.next()
            .is_some_and(|row| row.trim_start().starts_with("b ") && row.contains("tripped")),
        "{text}"
    );
    let top = watch(&address, &["avg", "--top", "1", "--for", "1ms"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|row| row.trim_start().starts_with("b ") && row.contains("500")),
        "{text}"
    );
    // A misspelt name: refused with the closest one.
    let wrong = watch(&address, &["avgg", "--for", "1s"]);
    let error = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{error}");
    assert!(error.contains("did you mean 'avg'"), "{error}");
    stop(&mut child, "TERM");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_open_opens_the_dashboard_url_with_the_browser_it_is_given() {
    let (dir, config) = scratch_config("open", CONFIG);
    // A "browser" that writes down the URL it was asked to open.
    let opened = dir.join("opened");
    let browser = dir.join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&browser)
        .status()
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dav2d"));
    command
        .args(["run", config.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .args(["--tcp", "off", "--refresh", "1h", "--open"])
        .env("BROWSER", &browser);
    let (mut child, title) = super::spawn_titled(&mut command);
    let address = http_address(&title);
    dav2d_testkit::wait_for("the browser to be started", || {
        std::fs::read_to_string(&opened).is_ok_and(|url| url.contains(&address))
    });
    let url = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(url.trim(), format!("http://{address}/"));
    stop(&mut child, "TERM");
    let _ = std::fs::remove_dir_all(dir);
}
