//! Hot reload of the default store and the metrics: a store whose settings
//! change (here its directory, onto a store holding an older state) is
//! started again alone and records the live graph instead of restoring its
//! own state over it; the next start restores what the live graph held.
//! The metrics export new values at once; turning the store off needs a
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/brokers.rs"]
mod brokers;

use std::path::Path;

use dav2d_core::Value;

fn config(dir: &Path, values: &str) -> String {
    format!(
        "streams:\n  - name: t\nnodes:\n  - name: avg\n    kind: moving_average\n    input: t\n    n: 2\n\
         http:\n  enabled: false\ntcp:\n  enabled: false\n\
         persistence:\n  dir: {}\n  flush_interval: 10ms\n{values}",
        dir.display()
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn push(graph: &dav2d_core::SharedGraph, value: f64) {
    let mut graph = graph.lock();
    graph.push("t", "k", Value::Float(value), None).unwrap();
    graph.run_wave();
}

fn reload(runtime: &dav2d_runtime::Runtime, yaml: &str) -> Result<dav2d_runtime::Applied, String> {
    let config = dav2d_runtime::Config::parse(yaml, Path::new("v.yaml")).unwrap();
    let plan = dav2d_runtime::Plan::new(config, dav2d_runtime::Overrides::default()).unwrap();
    runtime.reload(&plan)
}

#[test]
fn a_store_started_again_by_a_reload_records_the_live_graph_and_does_not_restore_over_it() {
    let (old, live) = (scratch("reload-old-store"), scratch("reload-live-store"));
    // A store holding an older state: t = 1 for k.
    let (runtime, graph) = brokers::start(&config(&old, ""));
    push(&graph, 1.0);
    runtime.stop();
    // The live run, in another directory: t = 99 and 97 for k.
    let (runtime, graph) = brokers::start(&config(&live, ""));
    push(&graph, 99.0);
    push(&graph, 97.0);
    let metrics = "metrics:\n  values: [avg]\n  max_keys: 5\n";
    let applied = reload(&runtime, &config(&old, metrics)).unwrap();
    assert_eq!(
        applied.changes,
        [
            "sink persistence: restarted with its new settings",
            "metrics: values [] (at most 100 keys) -> [avg] (at most 5 keys)"
        ]
    );
    // The live state stands: the old store was not restored over it.
    assert_eq!(brokers::latest(&graph, "t", "k"), Some(Value::Float(97.0)));
    assert_eq!(
        brokers::latest(&graph, "avg", "k"),
        Some(Value::Float(98.0))
    );
    assert_eq!(runtime.metrics().exported_values().names, ["avg"]);
    push(&graph, 95.0);
    // Turning the store off needs a restart: refused, nothing changed.
    let off =
        config(&old, metrics).replace(&format!("  dir: {}\n", old.display()), "  enabled: false\n");
    let error = reload(&runtime, &off).unwrap_err();
    assert!(
        error.contains("turns the default store on or off"),
        "{error}"
    );
    let stats = runtime.persistence_stats().unwrap();
    brokers::wait_for(
        "the restarted store to keep reporting where the first did",
        || stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed) > 0,
    );
    runtime.stop();
    // The next start in the old directory restores the live run's state.
    let (runtime, graph) = brokers::start(&config(&old, ""));
    assert_eq!(brokers::latest(&graph, "t", "k"), Some(Value::Float(95.0)));
    assert_eq!(
        brokers::latest(&graph, "avg", "k"),
        Some(Value::Float(96.0))
    );
    runtime.stop();
    for dir in [old, live] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
