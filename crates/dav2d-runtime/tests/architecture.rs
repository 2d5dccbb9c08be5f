//! The crate dependencies `ARCHITECTURE.md` allows, read from `cargo
//! metadata`: a dependency it forbids (the engine on a connector, one
//! connector on another, anything on the binary) fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::collections::BTreeMap;
use std::process::Command;

/// Each workspace crate and the dav2d crates it may depend on (normal
/// dependencies; tests and benches may use more).
const ALLOWED: &[(&str, &[&str])] = &[
    // The engine knows nothing else; test support knows nothing at all.
    ("dav2d-core", &[]),
    ("dav2d-testkit", &[]),
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

/// The most lines a source file may have: past it, split it by what it does.
const MOST_LINES: usize = 800;

fn source_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            // Build outputs, virtual environments and caches are not ours.
            if !(name == "target" || name.starts_with('.') || name == "__pycache__") {
                source_files(&path, out);
            }
        } else if ["rs", "py", "sh"]
            .iter()
            .any(|ext| path.extension().is_some_and(|e| e == *ext))
        {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_800_lines() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "python", "bench", "scripts", "fuzz"] {
        source_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "found only {} source files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).ok()?.lines().count();
            (lines > MOST_LINES).then(|| format!("{} has {lines} lines", path.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern:\n{}",
        long.join("\n")
    );
}

/// The module path of a source file under `src` (`graph/mod.rs` is
/// `graph`, `lib.rs` the crate root ``).
fn module_of(src: &std::path::Path, file: &std::path::Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The modules `text` (the file of module `module`) names: `crate::a::b`
/// paths and `super::` paths, resolved to the longest known module. A
/// module's own descendants are not counted (it contains them).
fn imports_of(
    module: &str,
    text: &str,
    known: &BTreeMap<String, std::path::PathBuf>,
) -> Vec<String> {
    let mut found = Vec::new();
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_string();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent)] {
        for (at, _) in text.match_indices(prefix) {
            // A whole path token only (not `dav2d_crate::`).
            if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[at + prefix.len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let mut best = base.clone();
            for n in 1..=path.len() {
                let candidate = match base.is_empty() {
                    true => path[..n].join("::"),
                    false => format!("{base}::{}", path[..n].join("::")),
                };
                if known.contains_key(&candidate) {
                    best = candidate;
                }
            }
            let contained =
                best == module || best.starts_with(&format!("{module}::")) || module.is_empty();
            if !contained && known.contains_key(&best) {
                found.push(best);
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut circles = Vec::new();
    let mut crates_seen = 0;
    for dir in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let src = dir.path().join("src");
        if !src.is_dir() {
            continue;
        }
        crates_seen += 1;
        let mut files = Vec::new();
        source_files(&src, &mut files);
        let known: BTreeMap<String, std::path::PathBuf> = files
            .iter()
            .map(|f| (module_of(&src, f), f.clone()))
            .collect();
        let edges: BTreeMap<String, Vec<String>> = known
            .iter()
            .map(|(module, file)| {
                let text = std::fs::read_to_string(file).unwrap();
                // Unit tests inside a file may use anything.
                let text = text.split("#[cfg(test)]").next().unwrap_or("");
                (module.clone(), imports_of(module, text, &known))
            })
            .collect();
        // A depth-first search for a way back to where it started.
        for start in edges.keys() {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = std::collections::BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == start {
                        circles.push(format!(
                            "{}: {} -> {start}",
                            dir.path().display(),
                            path.join(" -> ")
                        ));
                    } else if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
    }
    assert!(crates_seen > 10, "found only {crates_seen} crates");
    circles.sort();
    circles.dedup();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}
