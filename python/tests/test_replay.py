"""``dav2d.replay``: a file of samples through a config with threshold
variants, one row per variant and constraint, ready for pandas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dav2d

CONFIG = """streams:
  - name: temp
nodes:
  - name: avg
    kind: moving_average
    input: temp
    n: 2
constraints:
  - name: hot
    input: avg
    trip: 80
    reset: 50
"""


def test_replay_tries_thresholds_side_by_side(tmp_path: Path) -> None:
    config = tmp_path / "replay.yaml"
    config.write_text(CONFIG)
    samples = tmp_path / "rising.ndjson"
    t0 = 1_796_000_000_000_000_000
    samples.write_text("\n".join(
        json.dumps({"stream": "temp", "key": key, "value": 40 + i * rate, "ts": t0 + i * 1_000_000_000})
        for i in range(100) for key, rate in (("x", 0.5), ("y", 0.8), ("z", 1.1))
    ))
    rows = dav2d.replay(str(config), str(samples), vary={"hot.trip": [60, 80, 100, 120]})
    assert [r["variant"] for r in rows] == [f"hot.trip={t}" for t in (60, 80, 100, 120)]
    raised = [r["raised"] for r in rows]
    assert raised == sorted(raised, reverse=True) and raised[0] > raised[-1], rows
    assert rows[0]["keys"] == ["x", "y", "z"] and rows[0]["keys_tripped"] == 3
    assert set(rows[0]) == {"variant", "constraint", "raised", "cleared", "tripped_seconds", "keys_tripped",
                            "first_trip_ns", "last_trip_ns", "keys"}
    with pytest.raises(dav2d.ConfigError, match="hot.trp"):
        dav2d.replay(str(config), str(samples), vary={"hot.trp": [1]})


def test_replay_reads_parquet_sample_files_as_pyarrow_writes_them(tmp_path: Path) -> None:
    import pyarrow as pa  # installed by `make test` (pyproject's test extra)
    import pyarrow.parquet as pq

    config = tmp_path / "replay.yaml"
    config.write_text(CONFIG)
    t0 = 1_796_000_000_000_000_000
    rows = [{"stream": "temp", "key": key, "value": 40 + i * rate, "ts": t0 + i * 1_000_000_000}
            for i in range(100) for key, rate in (("x", 0.5), ("y", 0.8), ("z", 1.1))]
    ndjson = tmp_path / "rising.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in rows))
    vary = {"hot.trip": [60, 100]}
    expected = dav2d.replay(str(config), str(ndjson), vary=vary)
    # Integer ns, Snappy (pyarrow's default).
    as_ints = tmp_path / "rising.parquet"
    pq.write_table(pa.Table.from_pylist(rows), as_ints)
    assert dav2d.replay(str(config), str(as_ints), vary=vary) == expected
    # A timestamp column, zstd.
    stamped = tmp_path / "stamped.parquet"
    table = pa.Table.from_pylist(rows).set_column(
        3, "ts", pa.array([r["ts"] for r in rows], type=pa.timestamp("ns")))
    pq.write_table(table, stamped, compression="zstd")
    assert dav2d.replay(str(config), str(stamped), vary=vary) == expected
    # A file of another shape says what it needs.
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"sensor": ["a"], "reading": [1.0]}), other)
    with pytest.raises(dav2d.ConfigError, match="columns stream, key, value and ts"):
        dav2d.replay(str(config), str(other))


def test_graph_apply_retunes_a_running_graph_keeping_its_state(tmp_path: Path) -> None:
    config = tmp_path / "apply.yaml"
    config.write_text(CONFIG)
    graph = dav2d.Graph()
    graph.load_config(str(config))
    for value in (70.0, 72.0):
        graph.push("temp", value, key="a")
    assert graph.latest("hot", "a") == "ok"
    config.write_text(CONFIG.replace("trip: 80", "trip: 60"))
    applied = graph.apply(str(config))
    assert applied["version"] == 1 and applied["changes"][0].startswith("hot: "), applied
    assert graph.latest("hot", "a") == "tripped", "a at 71 is over the new 60"
    assert len(graph.window("avg", "a")) == 2, "the window was kept"
    config.write_text(CONFIG.replace("trip: 80", "trip: hot"))
    with pytest.raises(dav2d.ConfigError, match="trip"):
        graph.apply(str(config))
    assert graph.latest("hot", "a") == "tripped"
    # A built-in becomes a Python function over the same input, in place:
    # its readers keep reading it, and it starts from the window held.
    (tmp_path / "apply_logic.py").write_text("def newest(window):\n    return window[-1] + 100\n")
    python = CONFIG.replace("trip: 80", "trip: 60").replace(
        "    kind: moving_average\n    input: temp\n    n: 2\n",
        "    kind: python\n    logic: apply_logic:newest\n    input: temp\n    window: 2\n",
    )
    config.write_text(python)
    changes = graph.apply(str(config))["changes"]
    # No built-in reads temp now, so it takes any value (its type was not declared).
    assert changes == ["stream temp: type number -> any", "avg: re-wired: moving_average(n=2) -> python:newest"], changes
    assert graph.latest("avg", "a") == 172.0 and graph.latest("hot", "a") == "tripped"


def test_graph_apply_takes_a_spec_as_data(tmp_path: Path) -> None:
    config = tmp_path / "apply.yaml"
    config.write_text(CONFIG)
    graph = dav2d.Graph()
    graph.load_config(str(config))
    graph.register(dav2d.Node("doubled", inputs=["avg"], logic=lambda w: 2 * w[-1]))
    for value in (70.0, 72.0):
        graph.push("temp", value, key="a")
    assert graph.latest("hot", "a") == "ok"
    spec = graph.spec()
    assert graph.apply(spec) == {"version": 0, "changes": []}, "the running spec changes nothing"

    hot = next(n for n in spec["nodes"] if n["name"] == "hot")
    hot["logic"] = "constraint(above trip=60 reset=50)"
    avg = next(n for n in spec["nodes"] if n["name"] == "avg")
    spec["nodes"].append({**avg, "name": "newest", "logic": "moving_average(n=1)",
                          "inputs": [{**avg["inputs"][0], "window": 1}]})
    applied = graph.apply(spec)
    assert applied["version"] == 1, applied
    assert sorted(c.split(":")[0] for c in applied["changes"]) == ["hot", "newest"], applied
    assert graph.latest("hot", "a") == "tripped", "a at 71 is over the new 60"
    assert graph.latest("newest", "a") == 72.0, "a new node is evaluated from the window held"
    assert len(graph.window("avg", "a")) == 2 and graph.latest("doubled", "a") == 142.0

    before = graph.spec()
    typo = graph.spec()
    next(n for n in typo["nodes"] if n["name"] == "hot")["inputs"][0]["name"] = "avgg"
    with pytest.raises(dav2d.ConfigError, match=r"nodes\[\d\]: .*did you mean 'avg'"):
        graph.apply(typo)
    python = graph.spec()
    python["nodes"].append({**next(n for n in python["nodes"] if n["name"] == "doubled"), "name": "tripled"})
    with pytest.raises(dav2d.ConfigError, match="cannot be rebuilt from data"):
        graph.apply(python)
    with pytest.raises(dav2d.ConfigError, match="the spec is not one"):
        graph.apply({"streams": "temp"})
    assert graph.spec() == before and graph.latest("hot", "a") == "tripped", "the refused ones changed nothing"
    gone = graph.spec()
    gone["nodes"] = [n for n in gone["nodes"] if n["name"] != "doubled"]
    assert graph.apply(gone)["changes"] == ["doubled: removed"]
    # A node with a longer window than the stream keeps grows its history.
    wide = graph.spec()
    wide["nodes"].append({**avg, "name": "wide", "logic": "moving_average(n=64)",
                          "inputs": [{**avg["inputs"][0], "window": 64}]})
    changes = graph.apply(wide)["changes"]
    assert "wide: added (moving_average(n=64))" in changes, changes
    assert any(c.startswith("stream temp: keep") for c in changes), changes
    assert graph.latest("wide", "a") == 71.0
    # Re-wiring in place: hot reads temp itself, and the Python node keeps
    # its callable while it moves from avg to temp with a deadband.
    graph.register(dav2d.Node("twice", inputs=["avg"], logic=lambda w: 2 * w[-1]))
    rewired = graph.spec()
    for node in rewired["nodes"]:
        if node["name"] == "hot":
            node["inputs"][0]["name"] = "temp"
        if node["name"] == "twice":
            node["inputs"][0]["name"] = "temp"
            node["deadband"] = 0.5
    changes = graph.apply(rewired)["changes"]
    assert any(c.startswith("hot: re-wired: inputs avg") for c in changes), changes
    assert graph.latest("hot", "a") == "tripped", "a at 72 on temp is still over 60"
    assert graph.latest("twice", "a") == 144.0, "2 x the newest temp, from the window held"
    graph.push("temp", 10.0, key="a")
    assert graph.latest("hot", "a") == "ok" and graph.latest("twice", "a") == 20.0
