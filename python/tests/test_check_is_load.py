"""One truth across faces: ``Graph.load_config(path)`` refuses exactly what
``dav2d check path`` refuses, with the same message and location, and a
node reading a stream nobody declared or pushed to, whose name is close to
another, warns once when the graph validates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dav2d

TYPO = """streams:
  - name: temp
nodes:
  - name: avg
    kind: moving_average
    input: tmep
    n: 5
"""

SINK_TYPO = """streams:
  - name: temperature
constraints:
  - name: overheat
    input: temperature
    trip: 80
sinks:
  - kind: webhook
    url: http://127.0.0.1:9/alerts
    names: [overheet]
"""


def check(path: Path) -> str:
    """The error line ``dav2d check`` prints (through the package's command)."""
    command = shutil.which("dav2d", path=str(Path(sys.executable).parent)) or "dav2d"
    answer = subprocess.run([command, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    return answer.stderr.strip()


@pytest.mark.parametrize("text", [TYPO, SINK_TYPO], ids=["input", "sink-name"])
def test_load_config_fails_where_check_fails(tmp_path: Path, text: str) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    expected = check(path)
    # The default, permissive graph (streams created on first use) too.
    for graph in (dav2d.Graph(), dav2d.Graph(auto_create_streams=False)):
        with pytest.raises(dav2d.ConfigError) as error:
            graph.load_config(str(path))
        assert "error: " + str(error.value) == expected


def test_the_typo_is_located_where_check_locates_it(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(TYPO)
    with pytest.raises(dav2d.ConfigError) as error:
        dav2d.Graph().load_config(str(path))
    assert str(error.value).startswith(f"{path}:6:12: nodes[0].input: node 'avg' reads 'tmep'")
    assert "did you mean 'temp'?" in str(error.value)


def test_a_node_on_a_misspelt_undeclared_stream_warns_once() -> None:
    graph = dav2d.Graph()
    graph.declare_stream("temperature")
    # Declaring turned strict mode on; a permissive graph keeps creating.
    graph = dav2d.Graph(auto_create_streams=True)
    graph.push("temperature", 20.0, key="k")
    with pytest.warns(UserWarning, match="stream 'temprature' .* did you mean 'temperature'"):
        graph.register(dav2d.Node("avg", inputs=["temprature"], logic=lambda w: sum(w) / len(w)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Once: validating again, or a name with nothing close, says nothing.
        graph.validate()
        graph.register(dav2d.Node("other", inputs=["pressure"], logic=lambda w: w[-1]))


def test_a_graph_built_in_python_and_one_loaded_from_yaml_have_one_spec(tmp_path: Path) -> None:
    path = tmp_path / "graph.yaml"
    path.write_text(
        "streams:\n  - name: temp\n    min: -50\n    max: 200\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    window: 8\n"
        "constraints:\n  - name: hot\n    input: avg\n    trip: 80\n    reset: 75\n"
    )
    loaded = dav2d.Graph(auto_create_streams=False)
    loaded.load_config(str(path))
    built = dav2d.Graph(auto_create_streams=False)
    built.declare_stream("temp", min=-50, max=200)
    built.register(dav2d.nodes.moving_average("avg", "temp", window=8))
    built.register(dav2d.Constraint("hot", "avg", trip=80, reset=75))
    spec = loaded.spec()
    assert spec == built.spec()
    assert [n["name"] for n in spec["nodes"]] == ["avg", "hot"]
    assert spec["nodes"][0]["inputs"][0] == {"name": "temp", "window": 8, "span_seconds": None, "policy": "latest"}
    # `dav2d check --format json` prints the same streams and nodes.
    command = shutil.which("dav2d", path=str(Path(sys.executable).parent)) or "dav2d"
    answer = subprocess.run([command, "check", "--format", "json", str(path)], capture_output=True, text=True, timeout=60)
    import json

    printed = json.loads(answer.stdout)
    assert (printed["streams"], printed["nodes"]) == (spec["streams"], spec["nodes"])
