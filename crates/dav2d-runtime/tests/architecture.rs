//! The crate dependencies `ARCHITECTURE.md` allows, read from `cargo
//! metadata`: a dependency it forbids (the engine on a connector, one
//! connector on another, anything on the binary) fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::collections::BTreeMap;
use std::process::Command;

/// Each workspace crate and the dav2d crates it may depend on (normal
/// dependencies; tests and benches may use more).
const ALLOWED: &[(&str, &[&str])] = &[
    // The engine knows nothing else.
    ("dav2d-core", &[]),
    ("dav2d-wire", &["dav2d-core"]),
    ("dav2d-component", &["dav2d-core", "dav2d-wire"]),
    // Connectors know the component model, never each other or the runtime.
    (
        "dav2d-http",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-tcp",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-synthetic",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-mqtt",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-nats",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-webhook",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-frames",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    (
        "dav2d-store",
        &["dav2d-core", "dav2d-wire", "dav2d-component"],
    ),
    // Models run on frames; the cluster checkpoints in the store's encoding.
    ("dav2d-infer", &["dav2d-core", "dav2d-frames"]),
    (
        "dav2d-cluster",
        &["dav2d-core", "dav2d-wire", "dav2d-component", "dav2d-store"],
    ),
    // The wiring knows every component; nothing knows the faces.
    (
        "dav2d-runtime",
        &[
            "dav2d-core",
            "dav2d-wire",
            "dav2d-component",
            "dav2d-http",
            "dav2d-tcp",
            "dav2d-synthetic",
            "dav2d-mqtt",
            "dav2d-nats",
            "dav2d-webhook",
            "dav2d-frames",
            "dav2d-store",
            "dav2d-infer",
            "dav2d-cluster",
        ],
    ),
    ("dav2d-cli", &["dav2d-core", "dav2d-runtime", "dav2d-store"]),
    (
        "dav2d-py",
        &[
            "dav2d-core",
            "dav2d-runtime",
            "dav2d-store",
            "dav2d-frames",
            "dav2d-infer",
            "dav2d-cli",
        ],
    ),
    (
        "dav2d-fuzz",
        &[
            "dav2d-core",
            "dav2d-wire",
            "dav2d-tcp",
            "dav2d-store",
            "dav2d-runtime",
        ],
    ),
    (
        "dav2d-bench",
        &["dav2d-core", "dav2d-wire", "dav2d-store", "dav2d-runtime"],
    ),
];

fn dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let normal = (package["dependencies"].as_array().unwrap().iter())
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|name| name.starts_with("dav2d"))
            .map(str::to_string)
            .collect();
        crates.insert(package["name"].as_str().unwrap().to_string(), normal);
    }
    crates
}

#[test]
fn every_crate_depends_only_on_what_the_architecture_allows() {
    let crates = dependencies();
    let mut wrong = Vec::new();
    for (name, deps) in &crates {
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| n == name) else {
            wrong.push(format!(
                "{name} is not in ARCHITECTURE's table (add it here and there)"
            ));
            continue;
        };
        for dep in deps {
            if !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{name} depends on {dep}, which it must not know"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every crate of the table exists: a renamed crate updates both.
    for (name, _) in ALLOWED {
        assert!(
            crates.contains_key(*name),
            "{name} is gone from the workspace"
        );
    }
}
