"""``dav2d processor sweep``: a config's processor run once per image (``.npy``
files here), and per threshold the masks' coverage, connected regions and
their mean size, checked against the masks ``Dav2dProcessor.run`` gives at
those thresholds (themselves checked against onnxruntime in
``test_processor.py``) and regions counted here."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import dav2d

sys.path.insert(0, str(Path(__file__).parent))
import models  # noqa: E402
from conftest import require  # noqa: E402
from docs_harness import dav2d_command, environment  # noqa: E402

require("onnxruntime")


def regions(mask: np.ndarray) -> int:
    """4-connected regions of set pixels."""
    seen = np.zeros(mask.shape, bool)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        seen[start] = True
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return count


def write_png(path: Path, rgb: np.ndarray) -> None:
    """An 8-bit RGB PNG of ``rgb`` (HxWx3), written by hand: no filter, one IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_png_image_sweeps_as_its_array_does(tmp_path: Path) -> None:
    models.write_models(tmp_path)
    config = tmp_path / "processor.yaml"
    config.write_text(f'model_path: "{tmp_path / "conv_sigmoid.onnx"}"\nprocessing:\n  threshold: 0.5\n'
                      "  resolution: [32, 32]\n  threads: 1\n  activation: none\n")
    picture = np.random.default_rng(3).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    answers = []
    for name in ("npy", "png"):
        images = tmp_path / name
        images.mkdir()
        if name == "npy":
            np.save(images / "picture.npy", picture)
        else:
            write_png(images / "picture.png", picture)
        done = subprocess.run(
            [dav2d_command(), "processor", "sweep", str(config), "--images", str(images),
             "--thresholds", "0.3:0.7:0.2", "--format", "json"],
            capture_output=True, text=True, env=environment(), timeout=120,
        )
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    assert answers[0]["images"] == answers[1]["images"] == 1
    assert answers[0]["thresholds"] == answers[1]["thresholds"]


def test_sweep_prints_coverage_regions_and_their_size_per_threshold(tmp_path: Path) -> None:
    models.write_models(tmp_path)
    config = tmp_path / "processor.yaml"
    config.write_text(f'model_path: "{tmp_path / "conv_sigmoid.onnx"}"\nprocessing:\n  threshold: 0.5\n'
                      "  resolution: [32, 32]\n  threads: 1\n  activation: none\n")
    images = tmp_path / "images"
    images.mkdir()
    pictures = [np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for seed in (1, 2)]
    for i, picture in enumerate(pictures):
        np.save(images / f"image{i}.npy", picture)
    thresholds = [0.3, 0.5, 0.7]
    out = tmp_path / "masks"
    done = subprocess.run(
        [dav2d_command(), "processor", "sweep", str(config), "--images", str(images),
         "--thresholds", "0.3:0.7:0.2", "--format", "json", "--out", str(out)],
        capture_output=True, text=True, env=environment(), timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["images"] == 2
    processor = dav2d.Dav2dProcessor(config_path=str(config))
    per_image = [processor.run(p, threshold=thresholds) for p in pictures]
    for t, (cut, row) in enumerate(zip(thresholds, answer["thresholds"])):
        assert row["threshold"] == pytest.approx(cut)
        masks = [masks[t] for masks in per_image]
        counts = [regions(m) for m in masks]
        assert [f["regions"] for f in row["images"]] == counts
        assert row["coverage"] == pytest.approx(np.mean([m.mean() for m in masks]))
        assert row["regions_per_image"] == pytest.approx(np.mean(counts))
        assert row["mean_region_pixels"] == pytest.approx(sum(m.sum() for m in masks) / max(1, sum(counts)))
    coverages = [row["coverage"] for row in answer["thresholds"]]
    assert coverages == sorted(coverages, reverse=True) and coverages[0] > coverages[-1]
    assert len(list(out.glob("*.png"))) == 2 * len(thresholds)
    bad = subprocess.run([dav2d_command(), "processor", "sweep", str(config), "--images", str(images),
                          "--thresholds", "0:1:0.5"], capture_output=True, text=True, env=environment())
    assert bad.returncode != 0 and "between 0 and 1" in bad.stderr
