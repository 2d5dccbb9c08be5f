"""Persistence from Python: ``Graph.persist`` writes a store that pyarrow
reads unchanged, ``history()`` returns a pyarrow Table filtered by name, key
and time, ``stats()`` shows the file actions, and a new graph persisted to
the same directory comes back where the old one stopped."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import dav2d
from dav2d import Constraint, Graph, nodes
from conftest import require, wait_until

pa = require("pyarrow")
pq = require("pyarrow.parquet")

SECOND = 1_000_000_000
T0 = 1_800_000_000 * SECOND


def build() -> Graph:
    graph = Graph(auto_create_streams=False)
    graph.declare_stream("temp")
    graph.register(nodes.moving_average("avg", "temp", 2))
    graph.register(Constraint("hot", "avg", trip=80.0, reset=70.0))
    return graph


def push(graph: Graph, n: int) -> list[tuple[int, str, float]]:
    pushed = []
    for i in range(n):
        key = f"dev-{i % 2}"
        value = 95.0 if i % 10 >= 6 else 60.0 + i % 7
        ts = T0 + i * SECOND
        graph.push("temp", value, key, ts)
        pushed.append((ts, key, value))
    return pushed


def wait_for(predicate, what: str) -> None:
    """Waits until ``predicate()`` holds (a condition, with a deadline)."""
    wait_until(what, predicate)


def test_persisted_history_is_parquet_that_pyarrow_reads_unchanged(tmp_path: Path) -> None:
    graph = build()
    persistence = graph.persist(tmp_path, flush_interval=0.01, checkpoint_interval=0.05, streams=["temp"])
    pushed = push(graph, 40)
    wait_for(lambda: graph.stats()["persistence"]["persisted_records"] >= 80, "the pushes are durable")
    wait_for(lambda: list((tmp_path / "history").glob("*.parquet")), "a checkpoint rolls the log into Parquet")
    graph.close()
    assert not persistence.running

    files = sorted((tmp_path / "history").glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    assert table.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert [table.schema.field(c).type for c in ("name", "key", "value", "state")] == [
        pa.string(),
        pa.string(),
        pa.float64(),
        pa.string(),
    ]
    temps = table.filter(pa.compute.equal(table["name"], "temp")).to_pylist()
    assert [(r["ts"].timestamp() * 1e9 // 1, r["key"], r["value"]) for r in temps] == [
        (float(ts), key, value) for ts, key, value in pushed
    ]
    states = set(table.filter(pa.compute.equal(table["name"], "hot"))["state"].to_pylist())
    assert states == {"ok", "tripped"}, states


def test_history_filters_by_name_key_and_time(tmp_path: Path) -> None:
    graph = build()
    graph.persist(tmp_path, flush_interval=0.01, checkpoint_interval=0.05)
    push(graph, 30)
    wait_for(lambda: graph.stats()["persistence"]["checkpoints"] >= 1, "a checkpoint")
    push_late = [(T0 + 100 * SECOND, "dev-1", 61.0)]
    graph.push("temp", 61.0, "dev-1", push_late[0][0])
    graph.close()  # the last update is flushed and checkpointed too

    table = graph.history("avg", key="dev-1")
    assert table.column_names == ["ts", "name", "key", "value", "state"]
    assert set(table["name"].to_pylist()) == {"avg"} and set(table["key"].to_pylist()) == {"dev-1"}
    assert table["value"].to_pylist()[-1] == pytest.approx((61.0 + 95.0) / 2)

    since = datetime.datetime.fromtimestamp(T0 / SECOND + 10, tz=datetime.timezone.utc)
    window = dav2d.read_history(tmp_path, "avg", "dev-1", since, T0 + 20 * SECOND)
    got = [int(ts.timestamp()) for ts in window["ts"].to_pylist()]
    assert got == [T0 // SECOND + s for s in range(11, 20, 2)], got
    everything = dav2d.read_history(tmp_path, None)
    assert set(everything["name"].to_pylist()) == {"avg", "hot"}, "raw streams only when listed"
    assert len(dav2d.read_history(tmp_path, "avg", since="2100-01-01T00:00:00")) == 0

    with pytest.raises(ValueError, match="not a store directory"):
        dav2d.read_history(tmp_path / "missing", "avg")
    with pytest.raises(ValueError, match="ISO 8601"):
        dav2d.read_history(tmp_path, "avg", since="yesterday")


def test_stats_show_file_actions_and_a_restart_restores(tmp_path: Path) -> None:
    graph = build()
    graph.persist(tmp_path, flush_interval=0.01, max_file_actions_per_day=50_000)
    push(graph, 12)
    wait_for(lambda: graph.stats()["persistence"]["persisted_records"] >= 12, "the averages are durable")
    stats = graph.stats()["persistence"]
    assert stats["file_actions_budget"] == 50_000
    assert 0 < stats["file_actions_used_today"] < 50_000
    assert stats["file_actions_remaining_today"] == 50_000 - stats["file_actions_used_today"]
    assert stats["problem"] is None and stats["restored"] is False
    before = (graph.latest("avg", "dev-0"), graph.latest("hot", "dev-1"), list(graph.window("avg", "dev-0", 2)))
    graph.close()

    again = build()
    again.persist(tmp_path)
    assert again.stats()["persistence"]["restored"] is True
    after = (again.latest("avg", "dev-0"), again.latest("hot", "dev-1"), list(again.window("avg", "dev-0", 2)))
    assert after == before
    with pytest.raises(dav2d.Dav2dError, match="already persisted"):
        again.persist(tmp_path)
    again.close()


def test_bad_persist_arguments_say_what_is_wrong(tmp_path: Path) -> None:
    graph = build()
    with pytest.raises(ValueError, match="fsync='sometimes'"):
        graph.persist(tmp_path, fsync="sometimes")
    with pytest.raises(dav2d.Dav2dError, match="persistence.streams names 'nope'"):
        graph.persist(tmp_path, streams=["nope"])
    graph.close()


def test_persist_takes_the_yaml_persistence_section(tmp_path: Path) -> None:
    config = tmp_path / "dav2d.yaml"
    config.write_text(
        f"persistence:\n  dir: {tmp_path / 'from-yaml'}\n  flush_interval: 10ms\n  max_file_actions_per_day: 12345\n"
    )
    graph = build()
    persistence = graph.persist(config=str(config))
    assert persistence.dir == str(tmp_path / "from-yaml")
    assert graph.stats()["persistence"]["file_actions_budget"] == 12345
    graph.close()
    assert list((tmp_path / "from-yaml").glob("wal-*.log")), "the store is where the YAML says"
    config.write_text("persistence:\n  fsync: sometimes\n")
    with pytest.raises(dav2d.ConfigError, match=r"dav2d.yaml:2:\d+: persistence.fsync"):
        build().persist(config=str(config))
