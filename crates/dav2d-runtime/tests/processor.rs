//! The processor's keys in a graph config: the notes' YAML at the top level
//! and as a `processor:` section, processor nodes inline or using the
//! file's processor, each mistake located (no model is loaded by `check`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dav2d_runtime::Config;

fn model() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-processor-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, b"checked for existence only").unwrap();
    path
}

#[test]
fn the_notes_yaml_is_a_valid_config_and_feeds_processor_nodes() {
    let model = model();
    let notes = format!(
        "model_path: \"{}\"\nprocessing:\n  threshold: 0.45\n  resolution: [1024, 1024]\n  use_gpu: true\n",
        model.display()
    );
    let config = Config::parse(&notes, Path::new("config.yaml")).unwrap();
    let processor = config.default_processor().unwrap().unwrap();
    assert_eq!(
        (processor.threshold, processor.resolution),
        (0.45, (1024, 1024))
    );
    assert_eq!(processor.use_gpu, dav2d_infer::UseGpu::Prefer);

    let graph = format!(
        "{notes}streams:\n  - name: camera\n    type: frame\nnodes:\n  - name: mask\n    kind: processor\n    input: camera\n"
    );
    Config::parse(&graph, Path::new("graph.yaml")).unwrap();
    let section = format!(
        "processor:\n  model_path: {}\n  processing:\n    resolution: [8, 8]\nnodes:\n  - name: mask\n    kind: processor\n    input: camera\n",
        model.display()
    );
    Config::parse(&section, Path::new("graph.yaml")).unwrap();

    let cases = [
        (
            format!("{notes}processor:\n  model_path: /x.onnx\n"),
            "graph.yaml:1:13: model_path: give the processor once",
        ),
        (
            graph.replace("    input: camera\n", "    input: camera\n    offload: false\n"),
            "graph.yaml:10:11: nodes[0].offload: a processor node is always offloaded",
        ),
        (
            "nodes:\n  - name: mask\n    kind: processor\n    input: camera\n".to_string(),
            "graph.yaml:2:11: nodes[0].processor: a processor node needs processor:",
        ),
        (
            "nodes:\n  - name: mask\n    input: camera\n    processor:\n      model_path: /no/such.pt\n      processing: {resolution: [8, 8]}\n".to_string(),
            "graph.yaml:5:19: nodes[0].processor.model_path: model_path /no/such.pt is a PyTorch checkpoint (.pt)",
        ),
        (
            "nodes:\n  - name: mask\n    input: camera\n    processor:\n      model_path: /m.onnx\n      processing: {resolution: [8, 8], threshold: -1}\n".to_string(),
            "graph.yaml:6:51: nodes[0].processor.processing.threshold: -1 is outside [0, 1]",
        ),
    ];
    for (yaml, expected) in cases {
        let error = Config::parse(&yaml, Path::new("graph.yaml"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with(expected), "{error}\nexpected: {expected}");
    }
}
