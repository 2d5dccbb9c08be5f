//! The `dav2d` that `make run` builds for its demo (`--no-default-features`:
//! no MQTT, NATS, clustering, frame resizer or X11 capture) runs the demo,
//! and refuses a config that needs a part it left out, at the line that
//! asks for it, naming the feature to build. `make test` runs this file
//! both ways: in the workspace (every part: the same configs pass `check`)
//! and alone with `--no-default-features` (they are refused).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::PathBuf;
use std::process::Command;

/// Every part built in (the default) or the demo's parts only.
const FULL: bool = cfg!(feature = "full");

fn dav2d(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dav2d"))
        .args(args)
        .output()
        .expect("the dav2d binary runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// This process's folder of configs (removed by the test that writes them).
fn folder() -> PathBuf {
    std::env::temp_dir().join(format!("dav2d-lean-{}", std::process::id()))
}

fn config(name: &str, yaml: &str) -> PathBuf {
    let dir = folder();
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("writes the config");
    path
}

#[test]
fn the_demo_runs_in_either_build() {
    let (ok, text) = dav2d(&[
        "run",
        "--for",
        "1s",
        "--refresh",
        "500ms",
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "off",
        "--data",
        "off",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("samples="), "no summary line: {text}");
}

/// `check` of `yaml`: passes with every part; without them it is refused
/// at `line` with the missing part's feature.
fn refused_without(name: &str, yaml: &str, line: usize, feature: &str) {
    let path = config(name, yaml);
    let (ok, text) = dav2d(&["check", path.to_str().expect("a UTF-8 path")]);
    if FULL {
        assert!(ok, "{name}: {text}");
        return;
    }
    assert!(!ok, "{name} passed check: {text}");
    assert!(
        text.contains(&format!("{name}:{line}:")),
        "{name}: not located: {text}"
    );
    assert!(
        text.contains(&format!("Cargo feature `{feature}`")),
        "{text}"
    );
    assert!(text.contains("make run CONFIG="), "{text}");
}

#[test]
fn a_part_the_build_left_out_is_refused_where_the_config_asks_for_it() {
    let streams = "streams:\n  - name: temperature\n";
    refused_without(
        "mqtt.yaml",
        &format!(
            "{streams}sources:\n  - kind: mqtt\n    url: mqtt://127.0.0.1:1883\n    subscriptions:\n      - topic: plant/{{key}}/temperature\n        stream: temperature\n"
        ),
        4,
        "mqtt",
    );
    refused_without(
        "nats.yaml",
        &format!(
            "{streams}sinks:\n  - kind: nats\n    url: nats://127.0.0.1:4222\n    subject: dav2d.{{stream}}.{{key}}\n"
        ),
        4,
        "nats",
    );
    refused_without(
        "cluster.yaml",
        &format!("{streams}cluster:\n  url: nats://127.0.0.1:4222\n"),
        4,
        "cluster",
    );
    refused_without(
        "downscale.yaml",
        "streams:\n  - name: camera\n    type: frame\nsources:\n  - kind: frames\n    url: synthetic:64x48@5\n    stream: camera\nnodes:\n  - name: small\n    kind: downscale\n    input: camera\n    width: 32\n    height: 24\n",
        10,
        "resize",
    );
    refused_without(
        "x11.yaml",
        "streams:\n  - name: screen\n    type: frame\nsources:\n  - kind: frames\n    url: x11::99\n    stream: screen\n",
        6,
        "x11",
    );
    std::fs::remove_dir_all(folder()).ok();
}

#[test]
fn run_with_cluster_is_refused_without_clustering() {
    if FULL {
        // Joining a cluster is `cli.rs`'s test, on a real nats-server.
        return;
    }
    let (ok, text) = dav2d(&[
        "run",
        "--for",
        "1s",
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "off",
        "--data",
        "off",
        "--cluster",
        "nats://127.0.0.1:4222",
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("Cargo feature `cluster`"), "{text}");
}
