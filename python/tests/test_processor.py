"""``dav2d.Dav2dProcessor`` and processor nodes against the real ONNX Runtime
of the ``onnxruntime`` wheel, on small models the ``onnx`` package builds
(``models.py``): masks exactly, probabilities within float tolerance, of
onnxruntime's own Python output on the same preprocessed input."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import dav2d

sys.path.insert(0, str(Path(__file__).parent))
import models  # noqa: E402
from conftest import require  # noqa: E402

ort = require("onnxruntime")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    models.write_models(out)
    return out


def write_config(path: Path, model: Path, **processing: object) -> Path:
    lines = [f'model_path: "{model}"', "processing:"]
    for name, value in {"threshold": 0.5, "resolution": [32, 32], "threads": 1, **processing}.items():
        lines.append(f"  {name}: {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def texture(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_the_notes_yaml_and_snippet_run_unchanged(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").write_text(
        f'model_path: "{model_dir / "conv_logits.onnx"}"\n'
        "processing:\n  threshold: 0.45\n  resolution: [1024, 1024]\n  use_gpu: true\n"
    )
    input_tensor = texture(480, 640)
    from dav2d import Dav2dProcessor

    processor = Dav2dProcessor(config_path="config.yaml")
    output_mask = processor.run(input_tensor)
    assert output_mask.shape == (1024, 1024) and output_mask.dtype == np.uint8
    assert set(np.unique(output_mask)) <= {0, 1}
    # No GPU on these machines: use_gpu: true fell back to the CPU and said so once.
    assert processor.device == "cpu"
    warnings = [r.getMessage() for r in caplog.records if "CUDA is not available" in r.getMessage()]
    assert len(warnings) == 1 and "runs on the CPU" in warnings[0], warnings
    session = ort.InferenceSession(str(model_dir / "conv_logits.onnx"), providers=["CPUExecutionProvider"])
    expected = sigmoid(session.run(None, {"x": processor.preprocess(input_tensor)})[0][0, 0])
    decided = np.abs(expected - 0.45) > 1e-5
    assert np.array_equal(output_mask[decided], (expected > 0.45)[decided].astype(np.uint8))


def test_masks_and_probabilities_match_onnxruntime(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", model_dir / "conv_sigmoid.onnx", activation="none")
    processor = dav2d.Dav2dProcessor(config_path=str(config))
    image = texture(32, 32)
    # At the model's resolution the preprocessing is exactly x / 255 in NCHW.
    tensor = processor.preprocess(image)
    assert np.allclose(tensor, image.transpose(2, 0, 1)[None].astype(np.float32) / 255, atol=1e-7)
    mask, probabilities = processor.run(image, probabilities=True)
    session = ort.InferenceSession(str(model_dir / "conv_sigmoid.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": tensor})[0][0, 0]
    assert np.allclose(probabilities, expected, atol=1e-6)
    assert np.array_equal(mask, (probabilities > 0.5).astype(np.uint8))
    assert 0 < mask.mean() < 1
    # float32 HxWxC in [0, 1] and an NCHW batch give the same.
    assert np.array_equal(processor.run(image.astype(np.float32) / 255), mask)
    batch = processor.run(tensor)
    assert batch.shape == (1, 32, 32) and np.array_equal(batch[0], mask)
    # Several thresholds: the model runs once, a mask per threshold.
    masks = processor.run(image, threshold=[0.3, 0.5, 0.7])
    assert len(masks) == 3
    for cut, each in zip((0.3, 0.5, 0.7), masks):
        assert each.dtype == np.uint8 and np.array_equal(each, (probabilities > cut).astype(np.uint8))
    assert masks[0].sum() >= masks[1].sum() >= masks[2].sum()
    assert np.array_equal(masks[1], mask)
    with pytest.raises(dav2d.InvalidArgument, match="between 0 and 1"):
        processor.run(image, threshold=[1.5])


def test_softmax_over_a_two_class_model(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", model_dir / "two_outputs.onnx", activation="softmax", resolution=[16, 16])
    processor = dav2d.Dav2dProcessor(config_path=str(config))
    gray = texture(16, 16, 1)[..., 0]
    mask, probabilities = processor.run(gray, probabilities=True)
    assert mask.shape == (2, 16, 16)
    session = ort.InferenceSession(str(model_dir / "two_outputs.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": processor.preprocess(gray)})[0][0]
    softmax = np.exp(logits) / np.exp(logits).sum(axis=0)
    assert np.allclose(probabilities, softmax, atol=1e-6)
    assert np.allclose(probabilities.sum(axis=0), 1, atol=1e-6)


def test_batches_run_in_chunks_and_masks_resize_back(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", model_dir / "conv_logits.onnx", max_batch=2, output_size="input")
    processor = dav2d.Dav2dProcessor(config_path=str(config))
    images = [texture(40, 50, seed=i) for i in range(5)]
    masks = processor.run(images)
    assert masks.shape == (5, 40, 50)
    for image, mask in zip(images, masks):
        assert np.array_equal(processor.run(image), mask)
    mixed = processor.run([texture(40, 50), texture(20, 30)])
    assert [m.shape for m in mixed] == [(40, 50), (20, 30)]


def test_bad_inputs_and_settings_say_what_is_wrong(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", model_dir / "conv_logits.onnx")
    processor = dav2d.Dav2dProcessor(config_path=str(config))
    with pytest.raises(dav2d.InvalidArgument, match="dtype int64 is not taken"):
        processor.run(np.zeros((8, 8, 3), dtype=np.int64))
    with pytest.raises(dav2d.InvalidArgument, match="1 channels, but the model takes 3"):
        processor.run(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(dav2d.InvalidArgument, match="NaN"):
        processor.run(np.full((8, 8, 3), np.nan, dtype=np.float32))
    with pytest.raises(dav2d.InvalidArgument, match="shape"):
        processor.run(np.zeros((2, 2, 2, 2, 2), dtype=np.float32))
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'model_path: "{model_dir / "conv_logits.onnx"}"\nprocessing:\n  threshold: 1.5\n  resolution: [8, 8]\n')
    with pytest.raises(dav2d.ConfigError, match=r"bad.yaml:3:14: processing.threshold: 1.5 is outside \[0, 1\]"):
        dav2d.Dav2dProcessor(config_path=str(bad))
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"PK\x03\x04 a torch zip")
    with pytest.raises(dav2d.Dav2dError, match=r"PyTorch checkpoint .*torch.onnx.export"):
        dav2d.Dav2dProcessor(config_path=str(write_config(tmp_path / "pt.yaml", weights)))
    fixed = write_config(tmp_path / "fixed.yaml", model_dir / "fixed_64.onnx")
    with pytest.raises(dav2d.Dav2dError, match=r"the model takes 64x64 .*resolution: \[64, 64\]"):
        dav2d.Dav2dProcessor(config_path=str(fixed))
    require = write_config(tmp_path / "gpu.yaml", model_dir / "conv_logits.onnx", use_gpu="require")
    with pytest.raises(dav2d.Dav2dError, match="use_gpu: require, but CUDA is not available"):
        dav2d.Dav2dProcessor(config_path=str(require))


@pytest.mark.skipif(
    not any(p == "CUDAExecutionProvider" for p in ort.get_available_providers()),
    reason="no CUDA: this onnxruntime build or this machine has no GPU (none is on the CI machines)",
)
def test_use_gpu_runs_on_cuda_when_there_is_one(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", model_dir / "conv_logits.onnx", use_gpu="require")
    processor = dav2d.Dav2dProcessor(config_path=str(config))
    assert processor.device == "cuda"
    assert processor.run(texture(32, 32)).shape == (32, 32)


def test_a_processor_node_turns_frames_into_masks(model_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", model_dir / "conv_logits.onnx", resolution=[24, 32])
    graph = dav2d.Graph()
    camera = graph.frames("camera", "synthetic:64x48@100?format=bgra8")
    assert graph.processor_node("mask", "camera", str(config)) == "cpu"
    graph.frame_node("set", "coverage", "mask")
    dav2d.Constraint("covered", "set", trip=2.0).register(graph)
    server = graph.serve(http="127.0.0.1:0", tcp="off")
    try:
        for _ in range(1000):
            if graph.latest("set") is not None:
                break
            time.sleep(0.01)
        mask = graph.latest("mask")
        assert isinstance(mask, dav2d.Frame) and (mask.format, mask.width, mask.height) == ("gray8", 32, 24)
        pixels = np.asarray(mask)
        assert set(np.unique(pixels)) <= {0, 1}
        assert graph.latest("set") == pytest.approx(pixels.mean(), abs=0.5)
        with urllib.request.urlopen(f"http://{server.http_address}/state/mask?key=", timeout=10) as response:
            summary = json.loads(response.read())["value"]["frame"]
        assert (summary["width"], summary["height"]) == (32, 24) and 0 <= summary["set"] <= 1
        assert graph.stats()["nodes"]["mask"]["offload"] is True
    finally:
        server.stop()
        camera.close()
        graph.close()


def test_processor_nodes_from_yaml(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "graph.yaml"
    path.write_text(
        "streams:\n  - name: camera\n    type: frame\n"
        "nodes:\n  - name: mask\n    input: camera\n    processor:\n"
        f'      model_path: "{model_dir / "conv_logits.onnx"}"\n'
        "      processing: {resolution: [16, 16], threshold: 0.5}\n"
        "  - name: set\n    kind: coverage\n    input: mask\n"
    )
    graph = dav2d.Graph()
    graph.load_config(str(path))
    # What check and /graph show of it: the model's shapes and the activation chosen.
    logic = next(n["logic"] for n in graph.spec()["nodes"] if n["name"] == "mask")
    assert "[?, 3, ?, ?] -> [?, 1, ?, ?]" in logic and "activation=sigmoid" in logic, logic
    camera = graph.frames("camera", "synthetic:32x32@100?format=rgb8")
    try:
        for _ in range(1000):
            if graph.latest("set") is not None:
                break
            time.sleep(0.01)
        assert 0 <= graph.latest("set") <= 1
        assert np.asarray(graph.latest("mask")).shape == (16, 16)
    finally:
        camera.close()
        graph.close()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(path.read_text().replace("conv_logits.onnx", "missing.onnx"))
    with pytest.raises(dav2d.ConfigError, match=r"wrong.yaml:8:19: nodes\[0\].processor.model_path: .*missing.onnx does not exist"):
        dav2d.Graph().load_config(str(wrong))
    assert os.path.exists(path)


def test_the_default_activation_follows_how_the_model_ends(model_dir: Path, tmp_path: Path) -> None:
    """A model that ends in Sigmoid is not activated twice: at the notes'
    threshold 0.45 its mask is the model's own probabilities over 0.45."""
    image = texture(32, 32)
    ends_in_sigmoid = dav2d.Dav2dProcessor(
        str(write_config(tmp_path / "s.yaml", model_dir / "conv_sigmoid.onnx", threshold=0.45))
    )
    assert ends_in_sigmoid.config["activation"] == "none"
    assert "ends in Sigmoid" in ends_in_sigmoid.config["activation_reason"]
    session = ort.InferenceSession(str(model_dir / "conv_sigmoid.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": ends_in_sigmoid.preprocess(image)})[0][0, 0]
    mask = ends_in_sigmoid.run(image)
    decided = np.abs(expected - 0.45) > 1e-5
    assert np.array_equal(mask[decided], (expected > 0.45)[decided].astype(np.uint8))
    assert 0 < mask.mean() < 1, "not every pixel set, as sigmoid(sigmoid(x)) would"
    logits = dav2d.Dav2dProcessor(str(write_config(tmp_path / "l.yaml", model_dir / "conv_logits.onnx")))
    assert logits.config["activation"] == "sigmoid"
    # Written, it wins.
    written = dav2d.Dav2dProcessor(
        str(write_config(tmp_path / "w.yaml", model_dir / "conv_sigmoid.onnx", activation="sigmoid"))
    )
    assert written.config["activation"] == "sigmoid"
    assert written.config["activation_reason"] == "processing.activation"


def test_softmax_over_one_channel_nan_outputs_and_infinite_inputs_are_told(
    model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(dav2d.Dav2dError, match="1 everywhere"):
        dav2d.Dav2dProcessor(
            str(write_config(tmp_path / "s.yaml", model_dir / "conv_logits.onnx", activation="softmax"))
        )
    nan = dav2d.Dav2dProcessor(str(write_config(tmp_path / "n.yaml", model_dir / "nan_out.onnx")))
    assert nan.run(texture(32, 32)).sum() == 0
    assert nan.nan_outputs == 1
    logits = dav2d.Dav2dProcessor(str(write_config(tmp_path / "l.yaml", model_dir / "conv_logits.onnx")))
    for bad in [np.nan, np.inf]:
        image = texture(32, 32).astype(np.float32)
        image[0, 0, 0] = bad
        with pytest.raises(dav2d.InvalidArgument, match="NaN or infinity"):
            logits.run(image)


def test_a_fixed_batch_is_taken_in_chunks_and_two_inputs_are_refused(model_dir: Path, tmp_path: Path) -> None:
    fixed = dav2d.Dav2dProcessor(
        str(write_config(tmp_path / "f.yaml", model_dir / "fixed_64.onnx", resolution=[64, 64], max_batch=8))
    )
    assert fixed.config["max_batch"] == 1, "clamped to the model's batch of 1"
    masks = fixed.run([texture(64, 64, seed=s) for s in range(3)])
    assert len(masks) == 3 and all(m.shape == (64, 64) for m in masks)
    for i, seed in enumerate(range(3)):
        assert np.array_equal(masks[i], fixed.run(texture(64, 64, seed=seed)))
    with pytest.raises(dav2d.Dav2dError, match=r"takes 2 inputs \('x', 'z'\)"):
        dav2d.Dav2dProcessor(str(write_config(tmp_path / "t.yaml", model_dir / "two_inputs.onnx")))


def test_a_missing_model_is_named_at_its_line(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text('model_path: "/nonexistent/m.onnx"\nprocessing:\n  resolution: [32, 32]\n')
    with pytest.raises(dav2d.Dav2dError, match=r"p\.yaml:1:13: model_path: model_path /nonexistent/m\.onnx does not exist"):
        dav2d.Dav2dProcessor(str(config))


def test_the_dav2d_command_finds_onnxruntime_in_its_own_interpreter(model_dir: Path, tmp_path: Path) -> None:
    """As a systemd unit or cron runs it: the venv's ``dav2d`` with the venv
    not activated, and a ``python3`` on PATH that lacks onnxruntime."""
    command = Path(sys.executable).parent / "dav2d"
    config = tmp_path / "graph.yaml"
    config.write_text(
        "streams:\n  - name: camera\n    type: frame\n"
        "nodes:\n  - name: mask\n    input: camera\n    processor:\n"
        f'      model_path: "{model_dir / "conv_logits.onnx"}"\n'
        "      processing: {resolution: [16, 16]}\n"
    )
    # The python3 first on PATH is one without onnxruntime (a stand-in that
    # fails every import), whatever the machine's own has.
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python3").write_text("#!/bin/sh\nexit 1\n")
    (shims / "python3").chmod(0o755)
    env = {"PATH": f"{shims}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    import subprocess

    bare = subprocess.run(["python3", "-c", "import onnxruntime"], env=env, capture_output=True, check=False)
    assert bare.returncode != 0
    checked = subprocess.run([str(command), "check", str(config)], env=env, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "activation=sigmoid" in checked.stdout, checked.stdout
