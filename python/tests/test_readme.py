"""The README's tour runs as written: its Python blocks execute in order
against a fresh default graph, and its YAML config loads (and the typo shown
gives the error shown)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import dav2d

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_the_python_tour_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.environ.get("DAV2D_EXPECT_INSTALLED"):
        # Run by test_wheel.py from a venv the wheel was installed into.
        assert "site-packages" in dav2d.__file__, dav2d.__file__
    monkeypatch.chdir(tmp_path)  # the tour persists to ./my-data
    dav2d.reset()
    namespace: dict = {}
    ran = 0
    for block in blocks("python"):
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
    # The subscription block ended by itself after printing the new key's state.
    assert namespace["update"] is None
    assert "dev-5 ok" in capsys.readouterr().out
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


def test_the_python_tour_pastes_into_an_interactive_interpreter(tmp_path: Path) -> None:
    # `python -i` reads the blocks line by line as a terminal REPL would:
    # a blank line ends an indented block and a dedented line needs one.
    import subprocess
    import sys

    source = "\n".join(blocks("python"))
    answer = subprocess.run(
        [sys.executable, "-i", "-q"],
        input=source + "\n\nimport sys; sys.exit(0)\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONSTARTUP": ""},
    )
    errors = [line for line in answer.stderr.splitlines() if "SyntaxError" in line or "IndentationError" in line]
    assert not errors, answer.stderr[-3000:]
