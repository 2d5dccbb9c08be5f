"""The hostile corpus (``hostile.py``) against the real binary and the real
extension: no config or call may panic, abort or hang; ``dav2d check`` and
``dav2d run`` agree on every config; every refused Python call raises an
``Exception`` (a ``dav2d.Dav2dError`` for values out of range) and leaves
the graph usable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hostile

ROOT = Path(__file__).resolve().parents[2]


def dav2d_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "dav2d"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "dav2d-cli"], cwd=ROOT, check=True)
    return binary


def run_case(binary: Path, folder: Path, index: int, name: str, text: str) -> str | None:
    """Checks and runs one config; returns what went wrong, or None."""
    case = folder / f"case-{index:03d}"
    case.mkdir()
    config = case / "dav2d.yaml"
    config.write_text(text, errors="surrogateescape")
    try:
        check = subprocess.run([binary, "check", config], capture_output=True, text=True, timeout=60)
        run = subprocess.run(
            [binary, "run", config, "--for", "200ms", "--refresh", "1h"]
            + ["--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", case / "data"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as hung:
        return f"{name}: hung ({hung.cmd[1]})"
    for what, done in (("check", check), ("run", run)):
        if "panicked" in done.stderr or done.returncode not in (0, 1):
            return f"{name}: {what} exited {done.returncode}: {done.stderr[-500:]}"
    if check.returncode == 0 and run.returncode != 0:
        return f"{name}: check says ok, run fails: {run.stderr[-300:]}"
    if check.returncode == 1:
        error = check.stderr.strip().splitlines()[-1] if check.stderr.strip() else ""
        if run.returncode == 0:
            return f"{name}: check refuses ({error}), run starts"
        if error and error not in run.stderr:
            return f"{name}: check and run give different errors: {error!r} vs {run.stderr[-300:]!r}"
    return None


def test_no_hostile_config_panics_and_check_agrees_with_run(tmp_path: Path) -> None:
    binary = dav2d_binary()
    cases = list(hostile.configs())
    assert len(cases) >= 40, len(cases)
    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = list(
            pool.map(lambda item: run_case(binary, tmp_path, item[0], *item[1]), enumerate(cases))
        )
    problems = [problem for problem in problems if problem]
    assert not problems, f"{len(problems)} of {len(cases)} configs:\n" + "\n".join(problems)


DRIVER = r"""
import json, math, sys, tempfile, pathlib
sys.setrecursionlimit(10_000)
import dav2d
from dav2d import nodes
import hostile

def fresh():
    graph = dav2d.Graph()
    graph.declare_stream("temp")
    graph.declare_stream("probe")  # declared streams make unknown names errors
    return graph

for name, statement in hostile.calls():
    print(json.dumps({"start": name}), flush=True)
    g = fresh()
    tmp = pathlib.Path(tempfile.mkdtemp())
    result = {"name": name, "outcome": "ok"}
    try:
        exec(statement, {"dav2d": dav2d, "nodes": nodes, "g": g, "tmp": tmp, "math": math})
    except Exception as error:
        kind = "dav2d" if isinstance(error, dav2d.Dav2dError) else "other"
        result = {"name": name, "outcome": kind, "type": type(error).__name__, "message": str(error)[:200]}
    except BaseException as error:
        result = {"name": name, "outcome": "base", "type": type(error).__name__, "message": str(error)[:200]}
    # The graph the call used must still work.
    try:
        g.push("probe", 1.0, key="p")
        result["usable"] = g.latest("probe", "p") == 1.0
    except BaseException as error:
        result["usable"] = f"{type(error).__name__}: {error}"
    print(json.dumps(result), flush=True)
print(json.dumps({"done": True}), flush=True)
"""

# Exceptions Python raises itself for an int that does not fit 64 bits, or an
# argument of the wrong type, before dav2d sees it.
CONVERSION_ERRORS = {"OverflowError", "TypeError"}


def test_no_hostile_call_panics_and_every_graph_stays_usable(tmp_path: Path) -> None:
    calls = list(hostile.calls())
    assert len(calls) >= 50, len(calls)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run(
        [sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    lines = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    assert lines and lines[-1].get("done"), (
        f"the interpreter died (exit {child.returncode}) during {started[-1] if started else '?'}: {child.stderr[-2000:]}"
    )
    results = [line for line in lines if "outcome" in line]
    assert len(results) == len(calls)
    problems = []
    for result in results:
        if result["usable"] is not True:
            problems.append(f"{result['name']}: the graph is broken afterwards: {result['usable']}")
        if result["outcome"] == "base":
            problems.append(f"{result['name']}: {result['type']} escaped: {result['message']}")
        if result["outcome"] == "other" and result["type"] not in CONVERSION_ERRORS:
            problems.append(f"{result['name']}: {result['type']} is not a dav2d error: {result['message']}")
    assert not problems, "\n".join(problems)
    by_name = {result["name"]: result for result in results}
    assert by_name["a panic inside the engine"]["outcome"] == "dav2d"
    assert "internal error" in by_name["a panic inside the engine"]["message"]
    assert by_name["Graph(keep=)10**12"]["outcome"] == "dav2d"
    # An update is waiting, so any timeout (infinite, NaN, negative) returns it.
    for value in hostile.BAD_FLOATS:
        assert by_name[f"get(timeout=){value}"]["outcome"] == "ok", by_name[f"get(timeout=){value}"]
