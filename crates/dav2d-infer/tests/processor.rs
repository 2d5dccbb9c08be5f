//! The processor against the real ONNX Runtime of the `onnxruntime` wheel,
//! on models the `onnx` package builds (`python/tests/models.py`): masks
//! and probabilities, batches in chunks, and clear errors for bad models,
//! settings and inputs. Skipped, saying why, only when ONNX Runtime cannot
//! be found, unless `DAV2D_REQUIRE_ORT` is set (as `make test` does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dav2d_infer::{Image2d, Input, Pixels, Processor, ProcessorConfig};

/// The Python with `onnx` and `onnxruntime` (`$PYTHON`, else `python3`).
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The models, built once per test binary; `None` (with the reason
/// printed) when ONNX Runtime or the `onnx` package is missing.
fn models() -> Option<PathBuf> {
    let required = std::env::var_os("DAV2D_REQUIRE_ORT").is_some();
    let skip = |why: String| {
        assert!(!required, "DAV2D_REQUIRE_ORT is set but {why}");
        eprintln!("skipped: {why}");
        None
    };
    if let Err(why) = dav2d_infer::library::find(None) {
        return skip(why);
    }
    let dir = std::env::temp_dir().join(format!("dav2d-infer-models-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/tests/models.py");
    let status = std::process::Command::new(python())
        .arg(&script)
        .arg(&dir)
        .output();
    match status {
        Ok(out) if out.status.success() => Some(dir),
        Ok(out) => skip(format!(
            "{} could not build the test models: {}",
            python(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => skip(format!("{} did not run: {e}", python())),
    }
}

fn config(model: &Path, extra: &str) -> ProcessorConfig {
    let yaml = format!(
        "model_path: {}\nprocessing:\n  threshold: 0.5\n  resolution: [16, 16]\n  threads: 1\n{extra}",
        model.display()
    );
    ProcessorConfig::parse(&yaml, Path::new("/tmp/processor.yaml")).unwrap()
}

fn image(bytes: &[u8], h: usize, w: usize, c: usize) -> Input<'_> {
    Input::Image(Image2d {
        pixels: Pixels::U8(bytes),
        height: h,
        width: w,
        channels: c,
        row_stride: w * c,
    })
}

#[test]
fn masks_come_from_the_models_probabilities_in_chunks() {
    let Some(dir) = models() else { return };
    let mut processor = Processor::new(config(
        &dir.join("conv_sigmoid.onnx"),
        "  activation: none\n  max_batch: 2\n",
    ))
    .unwrap();
    assert_eq!(processor.device(), "cpu");
    let pictures: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            (0..16 * 16 * 3)
                .map(|j: u64| ((j.wrapping_mul(2_654_435_761) >> 11) + u64::from(i) * 31) as u8)
                .collect()
        })
        .collect();
    let inputs: Vec<Input<'_>> = pictures.iter().map(|p| image(p, 16, 16, 3)).collect();
    let output = processor.run(&inputs, true).unwrap();
    assert_eq!(output.sizes, vec![(1, 16, 16); 5]);
    let probabilities = output.probabilities.unwrap();
    assert_eq!(output.masks.len(), 5 * 256);
    for (mask, p) in output.masks.iter().zip(&probabilities) {
        assert!((0.0..=1.0).contains(p));
        assert_eq!(*mask, u8::from(*p > 0.5));
    }
    assert!(
        output.masks.contains(&1) && output.masks.contains(&0),
        "the filter sets some pixels"
    );
    // Resized back to the input's size.
    let mut back = Processor::new(config(
        &dir.join("conv_sigmoid.onnx"),
        "  activation: none\n  output_size: input\n",
    ))
    .unwrap();
    let big: Vec<u8> = vec![200; 40 * 30 * 3];
    let output = back.run(&[image(&big, 30, 40, 3)], false).unwrap();
    assert_eq!(output.sizes, vec![(1, 30, 40)]);
}

#[test]
fn bad_models_settings_and_inputs_say_what_is_wrong() {
    let Some(dir) = models() else { return };
    let error = |config: ProcessorConfig| Processor::new(config).unwrap_err().to_string();
    let pt = dir.join("weights.pt");
    std::fs::write(&pt, b"not onnx").unwrap();
    assert!(error(config(&pt, "")).contains("is a PyTorch checkpoint (.pt)"));
    assert!(error(config(&pt, "")).contains("torch.onnx.export"));
    assert!(error(config(&dir, "")).contains("is a directory"));
    assert!(error(config(&dir.join("missing.onnx"), "")).contains("does not exist"));
    let fixed = error(config(&dir.join("fixed_64.onnx"), ""));
    assert!(
        fixed.contains("the model takes 64x64") && fixed.contains("resolution: [64, 64]"),
        "{fixed}"
    );
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\x00\x01 definitely not protobuf").unwrap();
    assert!(error(config(&garbage, "")).contains("garbage.onnx"));

    let mut processor = Processor::new(config(&dir.join("conv_sigmoid.onnx"), "")).unwrap();
    let gray = vec![0u8; 16 * 16];
    let channels = processor
        .run(&[image(&gray, 16, 16, 1)], false)
        .unwrap_err()
        .to_string();
    assert!(
        channels.contains("1 channels, but the model takes 3"),
        "{channels}"
    );
    let nan = vec![f32::NAN; 16 * 16 * 3];
    let input = Input::Image(Image2d {
        pixels: Pixels::F32(&nan),
        height: 16,
        width: 16,
        channels: 3,
        row_stride: 48,
    });
    assert!(
        processor
            .run(&[input], false)
            .unwrap_err()
            .to_string()
            .contains("NaN")
    );
    assert!(
        processor
            .run(&[], false)
            .unwrap_err()
            .to_string()
            .contains("empty batch")
    );

    for (extra, expected) in [
        (
            "  max_batch: 0\n",
            "processing.max_batch: 0 is out of range",
        ),
        (
            "  activation: relu\n",
            "processing.activation: 'relu' is not sigmoid, softmax or none",
        ),
        (
            "  use_gpu: maybe\n",
            "processing.use_gpu: 'maybe' is not true, false or require",
        ),
    ] {
        let yaml = format!("model_path: /m.onnx\nprocessing:\n  resolution: [16, 16]\n{extra}");
        let message = ProcessorConfig::parse(&yaml, Path::new("p.yaml")).unwrap_err();
        assert!(
            message.starts_with("p.yaml:4:") && message.contains(expected),
            "{message}"
        );
    }
    let message = ProcessorConfig::parse(
        "model_path: /m.onnx\nprocessing:\n  threshold: 1.5\n  resolution: [16, 16]\n",
        Path::new("p.yaml"),
    )
    .unwrap_err();
    assert!(
        message.contains("p.yaml:3:14: processing.threshold: 1.5 is outside [0, 1]"),
        "{message}"
    );
    let message = ProcessorConfig::parse(
        "model_path: /m.onnx\nprocessing:\n  resolution: [0, 16]\n",
        Path::new("p.yaml"),
    )
    .unwrap_err();
    assert!(
        message.contains("processing.resolution: [0, 16] is not [height, width]"),
        "{message}"
    );
    // A resolution whose one input would not fit memory_budget is refused
    // before anything is allocated, at its line.
    let message = ProcessorConfig::parse(
        "model_path: /m.onnx\nprocessing:\n  resolution: [16384, 16384]\n",
        Path::new("p.yaml"),
    )
    .unwrap_err();
    assert!(
        message.contains("p.yaml:3:15: processing.resolution: resolution [16384, 16384] with 1 channel(s) needs 2048.0 MiB per input")
            && message.contains("more than processing.memory_budget (256.0 MiB)"),
        "{message}"
    );
    let message = ProcessorConfig::parse(
        "model_path: /m.onnx\nprocessing:\n  resolution: [64, 64]\n  memory_budget: 1\n",
        Path::new("p.yaml"),
    )
    .unwrap_err();
    assert!(
        message.contains("processing.resolution: resolution [64, 64]"),
        "{message}"
    );
    let relative = ProcessorConfig::parse(
        "model_path: models/m.onnx\nprocessing:\n  resolution: [4, 4]\n",
        Path::new("/etc/dav2d/p.yaml"),
    )
    .unwrap();
    assert_eq!(
        relative.model_path,
        PathBuf::from("/etc/dav2d/models/m.onnx")
    );
}

#[test]
fn a_missing_runtime_library_names_where_it_looked() {
    let message =
        dav2d_infer::library::find(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
    assert!(
        message.contains("/nonexistent/libonnxruntime.so does not exist"),
        "{message}"
    );
}

#[test]
fn preprocessing_on_several_threads_gives_the_single_threaded_tensor() {
    let Some(dir) = models() else { return };
    let model = dir.join("conv_logits.onnx");
    let picture: Vec<u8> = (0..90 * 120 * 3u64)
        .map(|j| (j.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let input = image(&picture, 90, 120, 3);
    let tensor = |threads: usize| {
        let yaml = format!(
            "model_path: {}\nprocessing:\n  resolution: [37, 53]\n  threads: {threads}\n",
            model.display()
        );
        let config = ProcessorConfig::parse(&yaml, Path::new("/tmp/p.yaml")).unwrap();
        let mut processor = Processor::new(config).unwrap();
        let (shape, values) = processor.preprocess(&[input]).unwrap();
        (shape, values.to_vec())
    };
    let (shape, one) = tensor(1);
    assert_eq!(shape, vec![1, 3, 37, 53]);
    for threads in [2, 3, 5] {
        assert_eq!(tensor(threads).1, one, "{threads} threads");
    }
}
