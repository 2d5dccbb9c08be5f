"""YAML ``kind: python`` nodes: ``logic: module:function`` found next to the
config or on the Python path, run by ``Graph.load_config``, ``dav2d.serve``
and the package's ``dav2d`` command (a real process serving HTTP on
loopback), and the located errors of a missing module or function."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import dav2d

CONFIG = """\
streams:
  - name: supply
  - name: demand
nodes:
  - name: margin
    kind: python
    logic: plant_logic:margin
    inputs: [supply, demand]
  - name: recent
    kind: python
    logic: plant_logic:spread
    input: supply
    window: 30s
constraints:
  - name: short
    input: margin
    trip: 0
    direction: below
"""

LOGIC = """\
def margin(supply, demand):
    return supply[-1] - demand[-1]

def spread(window):
    return max(window) - min(window)
"""

S = 1_000_000_000


def write(tmp_path: Path, config: str = CONFIG, logic: str = LOGIC) -> Path:
    (tmp_path / "plant_logic.py").write_text(logic)
    path = tmp_path / "plant.yaml"
    path.write_text(config)
    return path


@pytest.fixture(autouse=True)
def forget_the_module():
    yield
    sys.modules.pop("plant_logic", None)


def test_a_python_node_from_yaml_runs_the_function_beside_the_config(tmp_path: Path) -> None:
    g = dav2d.Graph()
    g.load_config(str(write(tmp_path)))
    t0 = 1_700_000_000 * S
    g.push("supply", 10.0, key="north", ts=t0)
    g.push("demand", 4.0, key="north", ts=t0)
    assert g.latest("margin", "north") == 6.0
    assert g.latest("short", "north") == "ok"
    g.push("demand", 12.0, key="north", ts=t0 + S)
    assert g.latest("short", "north") == "tripped"
    # The 30 s window on event time: at 20 s it holds 10 and 13; at 60 s only 11.
    g.push("supply", 13.0, key="north", ts=t0 + 20 * S)
    assert g.latest("recent", "north") == 3.0
    g.push("supply", 11.0, key="north", ts=t0 + 60 * S)
    assert g.latest("recent", "north") == 0.0


def test_a_missing_module_or_function_is_a_located_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG.replace("plant_logic:margin", "plant_logic:margn"))
    with pytest.raises(dav2d.ConfigError) as error:
        dav2d.Graph().load_config(str(path))
    text = str(error.value)
    assert "plant.yaml:7" in text and "nodes[0].logic" in text, text
    assert "has no 'margn'; it has margin, spread" in text, text
    sys.modules.pop("plant_logic", None)
    path = write(tmp_path, CONFIG.replace("plant_logic:margin", "no_such_module:margin"))
    with pytest.raises(dav2d.ConfigError, match="no module named 'no_such_module' on the Python path or .*no_such_module.py"):
        dav2d.Graph().load_config(str(path))
    path = write(tmp_path, logic="raise RuntimeError('the plant is closed')\n")
    with pytest.raises(dav2d.ConfigError, match="importing 'plant_logic:margin' raised RuntimeError: the plant is closed"):
        dav2d.Graph().load_config(str(path))
    path = write(tmp_path, CONFIG.replace("logic: plant_logic:margin", "logic: plant_logic"))
    with pytest.raises(dav2d.ConfigError, match="is not module:function"):
        dav2d.Graph().load_config(str(path))


def test_a_module_on_the_path_that_imports_a_missing_one_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The missing module's name is a prefix of the node's module's own name:
    # the error is the import's, not "no module named plant_logic".
    library = tmp_path / "lib"
    library.mkdir()
    (library / "plant_logic.py").write_text("import plant\n")
    monkeypatch.syspath_prepend(str(library))
    path = tmp_path / "plant.yaml"
    path.write_text(CONFIG)
    with pytest.raises(dav2d.ConfigError, match="importing 'plant_logic:margin' raised ModuleNotFoundError: No module named 'plant'"):
        dav2d.Graph().load_config(str(path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(*args: str) -> list[str]:
    """The package's ``dav2d`` console command, run by this interpreter."""
    return [sys.executable, "-c", "from dav2d._cli import main; main()", *args]


def test_the_package_dav2d_command_checks_and_serves_python_nodes(tmp_path: Path) -> None:
    path = write(tmp_path)
    checked = subprocess.run(command("check", str(path)), capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "python:margin" in checked.stdout and "python:spread" in checked.stdout
    port = free_port()
    process = subprocess.Popen(
        command("run", str(path), "--http", f"127.0.0.1:{port}", "--tcp", "off", "--data", str(tmp_path / "data")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        for stream, value in [("supply", 7.5), ("demand", 2.5)]:
            body = json.dumps([{"key": "east", "value": value}]).encode()
            request = urllib.request.Request(f"{base}/ingest/{stream}", data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read())["accepted"] == 1
        with urllib.request.urlopen(f"{base}/state/margin?key=east", timeout=10) as response:
            assert json.loads(response.read())["value"] == 5.0
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def test_load_config_without_the_file_beside_it_uses_the_python_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "plant_logic.py").write_text(textwrap.dedent(LOGIC))
    monkeypatch.syspath_prepend(str(library))
    configs = tmp_path / "configs"
    configs.mkdir()
    path = configs / "plant.yaml"
    path.write_text(CONFIG)
    g = dav2d.Graph()
    g.load_config(str(path))
    g.push("supply", 3.0, key="k")
    g.push("demand", 1.0, key="k")
    assert g.latest("margin", "k") == 2.0
