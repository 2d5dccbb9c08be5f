"""The README's tour runs as written: its Python blocks execute in order
against a fresh default graph, and its YAML config loads (and the typo shown
gives the error shown)."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

import dav2d

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_the_python_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("DAV2D_EXPECT_INSTALLED"):
        # Run by test_wheel.py from a venv the wheel was installed into.
        assert "site-packages" in dav2d.__file__, dav2d.__file__
    monkeypatch.chdir(tmp_path)  # the tour persists to ./my-data
    dav2d.reset()
    namespace: dict = {}
    ran = 0
    seen: list = []
    for block in blocks("python"):
        if "for update in" in block:
            # The tour's subscription loop waits forever: run it over the
            # updates one pushed sample causes (a new key's first state),
            # and check that the loop's body ran on a real update.
            block = block.replace(
                'for update in dav2d.subscribe("overheat"):',
                'subscription = dav2d.subscribe("overheat")\n'
                'dav2d.push("sensor_stream", 20.0, key="readme-probe")\n'
                'for update in itertools.islice(subscription, 1):\n'
                '    seen.append(update)',
            )
            namespace["itertools"] = itertools
            namespace["seen"] = seen
        if "raises dav2d.NodeError" in block:
            lines = block.splitlines()
            failing = next(i for i, line in enumerate(lines) if "raises dav2d.NodeError" in line)
            exec("\n".join(lines[:failing]), namespace)
            with pytest.raises(dav2d.NodeError, match="ZeroDivisionError"):
                exec(lines[failing], namespace)
            exec("\n".join(lines[failing + 1 :]), namespace)
            assert dav2d.latest("inverse", key="dev-3") == 0.25
        else:
            exec(block, namespace)
        ran += 1
    assert ran >= 7
    assert [(u.name, u.key, u.value) for u in seen] == [("overheat", "readme-probe", "ok")]
    assert len(dav2d.history("temp_avg", key="dev-17", dir=tmp_path / "my-data")) >= 1
    # The persistence block pushed 26.0 after the batch pushed 25.0.
    assert dav2d.latest("temp_avg", key="dev-17") == pytest.approx(sum([22.5, 23.0, 24.5, 25.0, 26.0]) / 5)
    dav2d.reset()


def test_the_yaml_tour_loads_and_its_typo_reads_as_shown(tmp_path):
    (config,) = [b for b in blocks("yaml") if "streams:" in b]
    path = tmp_path / "graph.yaml"
    path.write_text(config)
    graph = dav2d.Graph(auto_create_streams=False, manual_clock=True)
    graph.load_config(str(path))
    assert [n["name"] for n in graph.nodes()] == ["temp_avg", "temp_rate", "overheat"]
    (shown,) = [line for b in blocks("text") for line in b.splitlines() if line.startswith("error:")]
    path.write_text(config.replace("kind: rate\n    input: temp_avg", "kind: rate\n    input: temp_avgg"))
    with pytest.raises(dav2d.ConfigError) as error:
        dav2d.Graph(auto_create_streams=False).load_config(str(path))
    assert shown == "error: " + str(error.value).replace(str(tmp_path) + "/", "")
