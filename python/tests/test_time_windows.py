"""Time windows: ``window="30s"`` on Python logic and on built-ins, on event
time (the samples' timestamps, not the wall clock), capped by
``max_samples`` with the overflow counted, and the errors of a bad window."""

from __future__ import annotations

import datetime

import pytest

import dav2d
from dav2d import Graph, Node

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_builtins_over_a_duration_use_the_samples_timestamps() -> None:
    g = Graph()
    g.declare_stream("temp")
    dav2d.nodes.moving_average("avg", "temp", window="30s").register(g)
    dav2d.nodes.rate("per_s", "temp", window="10s").register(g)
    dav2d.nodes.max("peak", "temp", window=datetime.timedelta(minutes=1)).register(g)
    for seconds, value in [(0, 10.0), (10, 20.0), (20, 30.0), (40, 50.0)]:
        g.push("temp", value, key="a", ts=T0 + seconds * S)
    # At 40 s the last 30 s are (10 s, 40 s]: the samples at 20 and 40.
    assert g.latest("avg", "a") == pytest.approx(40.0)
    # Every last 10 s so far held one sample: no rate yet.
    assert g.latest("per_s", "a") is None
    g.push("temp", 56.0, key="a", ts=T0 + 43 * S)
    assert g.latest("per_s", "a") == pytest.approx(2.0)
    assert g.latest("peak", "a") == pytest.approx(56.0)
    # A minute later the peak is only what the last minute holds.
    g.push("temp", 1.0, key="a", ts=T0 + 103 * S + 1)
    assert g.latest("peak", "a") == pytest.approx(1.0)
    assert g.stats()["nodes"]["avg"]["window_overflow"] == 0
    inputs = {n["name"]: n["inputs"] for n in g.nodes()}
    assert inputs["avg"] == [("temp", dav2d.DEFAULT_SPAN_SAMPLES, "latest", 30.0)]
    assert inputs["peak"][0][3] == 60.0


def test_python_logic_sees_the_samples_of_the_last_duration() -> None:
    g = Graph()
    g.declare_stream("load")
    seen: list[list[float]] = []

    def spread(window: dav2d.Window) -> float:
        seen.append(list(window))
        return max(window) - min(window)

    Node("spread", logic=spread, inputs=[("load", "5s")], policy="all").register(g)
    for seconds in range(10):
        g.push("load", float(seconds), key="k", ts=T0 + seconds * S)
    # Each evaluation saw the samples of (t - 5 s, t].
    assert seen[0] == [0.0]
    assert seen[-1] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert g.latest("spread", "k") == 4.0


def test_a_time_window_keeps_at_most_max_samples_and_counts_what_it_left_out() -> None:
    g = Graph()
    g.declare_stream("x")
    sizes: list[int] = []

    def count(window: dav2d.Window) -> float:
        sizes.append(len(window))
        return float(len(window))

    Node("n", logic=count, input_source="x", window="1m", max_samples=4, policy="all").register(g)
    for i in range(10):
        g.push("x", float(i), key="k", ts=T0 + i * S)
    assert sizes == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    # Six evaluations had more samples within the minute than the cap.
    assert g.stats()["nodes"]["n"]["window_overflow"] == 6


def test_late_samples_inserted_within_the_lateness_land_in_the_time_window() -> None:
    g = Graph()
    g.declare_stream("x", late="insert", allowed_lateness=60.0)
    dav2d.nodes.sum("total", "x", window="30s").register(g)
    g.push("x", 1.0, key="k", ts=T0 + 40 * S)
    g.push("x", 2.0, key="k", ts=T0 + 20 * S)  # late, within 30 s of the newest
    g.push("x", 4.0, key="k", ts=T0 + 5 * S)  # late, outside the window
    assert g.latest("x", "k") == 1.0
    assert g.latest("total", "k") == 3.0


def test_a_bad_window_is_a_clear_error() -> None:
    g = Graph()
    g.declare_stream("x")
    with pytest.raises(dav2d.InvalidType, match="number of samples"):
        Node("a", logic=len, input_source="x", window=1.5).register(g)
    with pytest.raises(dav2d.InvalidArgument, match="'soon' is not a duration"):
        Node("b", logic=len, input_source="x", window="soon").register(g)
    with pytest.raises(dav2d.InvalidArgument, match="longer than 0"):
        Node("c", logic=len, input_source="x", window="0s").register(g)
    with pytest.raises(dav2d.InvalidArgument, match="max_samples caps a time window"):
        Node("d", logic=len, input_source="x", window=8, max_samples=4).register(g)
    with pytest.raises(dav2d.Dav2dError, match="max_samples"):
        Node("e", logic=len, input_source="x", window="5s", max_samples=0).register(g)
    # The graph is intact.
    dav2d.nodes.moving_average("avg", "x", window="5s").register(g)
    g.push("x", 2.0, ts=T0)
    assert g.latest("avg") == 2.0


def test_a_count_window_on_a_builtin_is_its_length_as_in_yaml() -> None:
    g = Graph()
    g.declare_stream("temp")
    dav2d.nodes.moving_average("avg", "temp", window=2).register(g)
    dav2d.nodes.delta("change", "temp", window=3).register(g)
    for seconds, value in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)]:
        g.push("temp", value, key="a", ts=T0 + seconds * S)
    # The newest 2 and the newest 3, as `window: 2` and `window: 3` give in YAML.
    assert g.latest("avg", "a") == pytest.approx(6.0)
    assert g.latest("change", "a") == pytest.approx(6.0)
    with pytest.raises(dav2d.Dav2dError, match="give `n` or `window` to moving_average, not both"):
        dav2d.nodes.moving_average("both", "temp", 4, window=8).register(g)
    with pytest.raises(dav2d.Dav2dError, match="ewma reads only the newest sample; remove `window`"):
        dav2d.nodes.ewma("smooth", "temp", 0.5, window=8).register(g)
