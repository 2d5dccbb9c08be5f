"""The Python face of dav2d: the notes' snippet, windows, nodes, constraints,
subscriptions, errors and counters. Each test uses its own graph or resets
the default one; nothing here measures time."""

from __future__ import annotations

import logging
import threading
import textwrap

import numpy as np
import pytest

import dav2d
from conftest import wait_until
from dav2d import Constraint, Graph, Node


@pytest.fixture(autouse=True)
def fresh_default_graph():
    dav2d.reset()
    yield
    dav2d.reset()


def test_the_original_notes_snippet_runs_unchanged():
    namespace: dict = {}
    exec(
        textwrap.dedent(
            """
            from dav2d import Node
            def moving_average(data):
                return sum(data[-5:]) / 5
            avg_node = Node(name="temp_avg", logic=moving_average, input_source="sensor_stream")
            avg_node.register()
            """
        ),
        namespace,
    )
    for value in [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]:
        dav2d.push("sensor_stream", value)
    assert dav2d.latest("temp_avg") == pytest.approx(23.0)
    assert namespace["avg_node"].latest() == pytest.approx(23.0)


def test_windows_behave_like_sequences_and_convert_to_numpy_without_copying():
    seen = {}

    def inspect(data):
        array = np.asarray(data)
        seen.update(
            length=len(data),
            first=data[0],
            last=data[-1],
            tail=data[-3:],
            stepped=data[::2],
            iterated=list(data),
            total=sum(data),
            array=array.copy(),
            zero_copy=array.__array_interface__["data"][0] == data.__array_interface__["data"][0],
            writeable=array.flags.writeable,
        )
        return float(array.mean())

    graph = Graph()
    Node("inspect", logic=inspect, input_source="s", window=4).register(graph)
    graph.push_many("s", np.arange(6, dtype=np.float64), keys="k")
    assert seen["length"] == 4
    assert (seen["first"], seen["last"]) == (2.0, 5.0)
    assert seen["tail"] == [3.0, 4.0, 5.0]
    assert seen["stepped"] == [2.0, 4.0]
    assert seen["iterated"] == [2.0, 3.0, 4.0, 5.0]
    assert seen["total"] == 14.0
    assert seen["array"].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert seen["zero_copy"] and not seen["writeable"]
    with pytest.raises(IndexError):
        graph.window("s", "k", 4)[4]


def test_a_kept_window_view_does_not_change_under_later_samples():
    graph = Graph()
    for value in [1.0, 2.0]:
        graph.push("s", value, key="k")
    kept = np.asarray(graph.window("s", "k", 2))
    graph.push("s", 3.0, key="k")
    assert kept.tolist() == [1.0, 2.0]
    assert np.asarray(graph.window("s", "k", 2)).tolist() == [2.0, 3.0]


def test_windows_node_logic_keeps_never_change_under_later_calls():
    """The logic's window object is reused between calls only when the
    logic kept no reference to it: a kept window, or an array over it,
    shows what it showed."""
    graph = Graph()
    kept, arrays = [], []

    def keep(window):
        if len(kept) < 2:
            kept.append(window)
        elif len(arrays) < 2:
            arrays.append(np.asarray(window))
        return window[-1]

    Node("kept", input_source="s", window=2, policy="all", logic=keep).register(graph)
    for value in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]:
        graph.push("s", value, key="k" if value < 5 else "other")
    assert [list(w) for w in kept] == [[1.0], [1.0, 2.0]]
    assert [w.key for w in kept] == ["k", "k"]
    assert [a.tolist() for a in arrays] == [[2.0, 3.0], [3.0, 4.0]]
    assert graph.latest("kept", "other") == 6.0 and graph.latest("kept", "k") == 4.0


def test_a_reused_windows_numbers_are_right_over_many_keys_and_values():
    """A reused window keeps the Python floats it made for its next calls;
    what every call sees is still exactly its key's newest samples (signed
    zeros, repeats and many distinct values over many keys)."""
    import random
    from collections import defaultdict, deque

    rng = random.Random(11)
    keys = [f"k{rng.randrange(60)}" for _ in range(6000)]
    pool = [0.0, -0.0, 1.5, -1.5, 1e300, 5e-324]
    values = [rng.choice(pool) if rng.random() < 0.2 else rng.uniform(-1e6, 1e6) for _ in keys]
    seen = []

    def record(window):
        seen.append((window.key, window[-3:], list(window)))
        return 0.0

    graph = Graph()
    Node("w", input_source="s", window=4, policy="all", logic=record).register(graph)
    for begin in range(0, len(keys), 500):
        graph.push_many("s", np.array(values[begin : begin + 500]), keys=keys[begin : begin + 500])
    windows = defaultdict(lambda: deque(maxlen=4))
    expected = []
    for key, value in zip(keys, values):
        windows[key].append(value)
        expected.append((key, list(windows[key])[-3:], list(windows[key])))
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected):
        assert got[0] == want[0]
        for g, w in zip(got[1] + got[2], want[1] + want[2]):
            assert g == w and str(g) == str(w), (got, want)


def test_logic_that_keeps_its_argument_tuple_keeps_each_calls_own_window():
    """The argument tuple of a single-input call is reused between calls
    only while the logic kept no reference to it: every kept `args` still
    holds the window of its own call, and later calls are unaffected."""
    graph = Graph()
    kept = []

    def keep(*args):
        if len(kept) < 3 and args[0][-1] % 2 == 0:
            kept.append(args)
        return sum(args[0][-2:])

    Node("kept", input_source="s", window=2, policy="all", logic=keep).register(graph)
    graph.push_many("s", np.arange(1.0, 11.0), keys=["k"] * 10)
    graph.push_many("s", np.array([20.0, 21.0]), keys=["a", "b"])
    assert [len(args) for args in kept] == [1, 1, 1]
    assert [list(args[0]) for args in kept] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert len({id(args) for args in kept}) == 3
    assert graph.latest("kept", "k") == 19.0
    assert graph.latest("kept", "a") == 20.0 and graph.latest("kept", "b") == 21.0
    assert graph.stats()["nodes"]["kept"]["evaluations"] == 12


def test_node_options_inputs_window_priority_deadband_policy():
    graph = Graph()
    calls = []

    def spread(a, b):
        calls.append((len(a), len(b)))
        return max(a) - min(b)

    Node("spread", logic=spread, inputs=[("a", 3), "b"], window=2, priority=5).register(graph)
    Node("every", logic=lambda d: d[-1], input_source="a", policy="all", deadband=0.5).register(graph)
    graph.push_many("a", [1.0, 2.0, 3.0, 4.0], keys="k")
    graph.push_many("b", [0.5, 1.0], keys="k")
    assert graph.latest("spread", "k") == 3.5
    assert calls[-1] == (3, 2)
    assert graph.stats()["nodes"]["every"]["evaluations"] == 4
    graph.push("a", 4.2, key="k")
    assert graph.latest("every", "k") == 4.0, "a change inside the deadband is not written"
    names = [n["name"] for n in graph.nodes()]
    assert names == ["spread", "every"]
    assert graph.nodes()[0]["priority"] == 5


def test_native_builtins_from_python():
    graph = Graph()
    dav2d.nodes.moving_average("avg", "temp", n=3).register(graph)
    dav2d.nodes.ewma("smooth", "temp", alpha=0.5).register(graph)
    dav2d.nodes.rate("rise", "avg").register(graph)
    dav2d.nodes.clamp("limited", "temp", lo=0, hi=25).register(graph)
    dav2d.nodes.scale("fahrenheit", "temp", a=1.8, b=32).register(graph)
    second = 1_000_000_000
    graph.push_many("temp", [10.0, 20.0, 30.0], keys="k", ts=np.array([0, second, 2 * second]))
    assert graph.latest("avg", "k") == 20.0
    assert graph.latest("limited", "k") == 25.0
    assert graph.latest("fahrenheit", "k") == pytest.approx(86.0)
    graph.push("temp", 40.0, key="k", ts=3 * second)
    assert graph.latest("avg", "k") == 30.0
    assert graph.latest("rise", "k") == pytest.approx(10.0)
    assert [n["logic"] for n in graph.nodes()][:2] == ["moving_average(n=3)", "ewma(alpha=0.5)"]


def test_batches_take_numpy_arrays_with_keys_and_report_rejections():
    graph = Graph()
    graph.declare_stream("temp", min=-40, max=150, finite_only=True)
    values = np.array([20.0, 999.0, np.nan, 21.0])
    report = graph.push_many("temp", values, keys=["a", "b", "c", "a"])
    assert (report["accepted"], report["rejected"]) == (2, 2)
    assert [index for index, _ in report["errors"]] == [1, 2]
    assert "accepts values <= 150" in report["errors"][0][1]
    assert graph.latest("temp", "a") == 21.0
    assert graph.latest("temp", "b") is None
    with pytest.raises(dav2d.RejectedError, match="accepts values >= -40"):
        graph.push("temp", -41.0, key="a")
    stats = graph.stats()
    assert stats["rejected"] == 3
    assert stats["rejected_by_reason"] == {"above_max": 1, "not_finite": 1, "below_min": 1}
    integers = graph.push_many("temp", np.array([1, 2], dtype=np.int32), keys="i")
    assert integers["accepted"] == 2 and graph.latest("temp", "i") == 2.0
    with pytest.raises(ValueError, match="3 keys for 2 values"):
        graph.push_many("temp", [1.0, 2.0], keys=["a", "b", "c"])


def test_values_of_every_kind_round_trip():
    graph = Graph()
    for value in [1.5, 7, True, "warm", b"\x00\x01", {"t": 21.5, "unit": "C", "ok": True}]:
        graph.push("s", value, key="k")
        assert graph.latest("s", "k") == value
    with pytest.raises(TypeError, match="dav2d samples are numbers"):
        graph.push("s", object(), key="k")


def test_latest_of_unknown_names_and_keys():
    graph = Graph()
    graph.push("temperature", 1.0, key="k")
    assert graph.latest("temperature", "nobody") is None
    with pytest.raises(dav2d.GraphError, match="did you mean 'temperature'"):
        graph.latest("temprature", "k")
    sample = graph.latest("temperature", "k", sample=True)
    assert (sample.value, sample.seq, sample.key, sample.error) == (1.0, 0, "k", None)


def test_a_failing_node_shows_its_traceback_and_the_rest_keeps_running(caplog):
    graph = Graph()

    def fragile(data):
        if data[-1] < 0:
            raise ValueError(f"negative reading {data[-1]}")
        return data[-1] ** 0.5

    Node("fragile", logic=fragile, input_source="s").register(graph)
    dav2d.nodes.scale("sturdy", "s", a=2).register(graph)
    with caplog.at_level(logging.ERROR, logger="dav2d"):
        graph.push_many("s", [4.0, -1.0], keys=["good", "bad"])
    assert graph.latest("fragile", "good") == 2.0
    assert graph.latest("sturdy", "bad") == -2.0
    with pytest.raises(dav2d.NodeError) as failure:
        graph.latest("fragile", "bad")
    message = str(failure.value)
    assert "Traceback" in message and "ValueError: negative reading -1.0" in message and "fragile" in message
    assert graph.latest("fragile", "bad", sample=True).error.endswith("ValueError: negative reading -1.0")
    assert "negative reading" in caplog.text
    graph.push("s", 9.0, key="bad")
    assert graph.latest("fragile", "bad") == 3.0
    assert graph.stats()["errors"] == 1


def test_returning_a_non_number_is_an_error_of_the_same_kind():
    graph = Graph()
    Node("wrong", logic=lambda d: f"{d[-1]} degrees", input_source="s").register(graph)
    Node("listy", logic=lambda d: [d[-1]], input_source="s").register(graph)
    Node("texty", logic=lambda d: f"{d[-1]} degrees", input_source="s", returns="any").register(graph)
    graph.push("s", 1.0, key="k")
    with pytest.raises(dav2d.NodeError, match="returned a string"):
        graph.latest("wrong", "k")
    with pytest.raises(dav2d.NodeError, match="returned a list"):
        graph.latest("listy", "k")
    assert graph.latest("texty", "k") == "1.0 degrees"


def test_python_logic_runs_as_one_batch_per_wave():
    graph = Graph()
    Node("double", logic=lambda d: d[-1] * 2, input_source="s").register(graph)
    keys = [f"dev-{i}" for i in range(1000)]
    graph.push_many("s", np.ones(1000), keys=keys)
    node = graph.stats()["nodes"]["double"]
    assert node["evaluations"] == 1000
    assert node["batches"] == 1, "one call into Python (one GIL acquisition) for the whole wave"


def test_latest_edges_conflate_a_batch_into_one_evaluation_per_key():
    graph = Graph()
    Node("last", logic=lambda d: d[-1], input_source="s").register(graph)
    graph.push_many("s", np.arange(100, dtype=np.float64), keys="k")
    node = graph.stats()["nodes"]["last"]
    assert (node["evaluations"], node["conflated"]) == (1, 99)
    assert graph.latest("last", "k") == 99.0
    assert len(graph.window("s", "k", 16)) == 16, "the window still received the samples it can show"


def test_logic_cannot_call_back_into_the_engine():
    graph = Graph()
    Node("sneaky", logic=lambda d: dav2d.latest("s"), input_source="s").register(graph)
    graph.push("s", 1.0)
    with pytest.raises(dav2d.NodeError, match="cannot be called from inside node logic"):
        graph.latest("sneaky")


def test_registration_errors_are_clear():
    graph = Graph()
    Node("avg", logic=lambda d: d[-1], input_source="temp").register(graph)
    with pytest.raises(dav2d.GraphError, match="'avg' is already taken by a node"):
        Node("avg", logic=lambda d: d[-1], input_source="temp").register(graph)
    with pytest.raises(dav2d.GraphError, match="cycle: loop -> loop"):
        Node("loop", logic=lambda d: d[-1], input_source="loop").register(graph)
    with pytest.raises(dav2d.InvalidArgument, match="a window of 0 samples"):
        Node("empty", logic=lambda d: 0, input_source="temp", window=0).register(graph)
    strict = Graph(auto_create_streams=False)
    strict.declare_stream("temperature")
    Node("avg", logic=lambda d: d[-1], input_source="temprature").register(strict)
    with pytest.raises(dav2d.GraphError, match="reads 'temprature'.*did you mean 'temperature'"):
        strict.validate()
    with pytest.raises(ValueError, match="exactly one of logic=, logic_batch= or builtin="):
        Node("nothing", input_source="temp")
    with pytest.raises(ValueError, match="moving_average needs `n`"):
        Node("avg2", builtin="moving_average", input_source="temp").register(graph)


def test_constraints_trip_reset_debounce_and_go_stale_on_a_manual_clock():
    graph = Graph(manual_clock=True)
    dav2d.nodes.moving_average("avg", "temp", n=1).register(graph)
    overheat = Constraint("overheat", "avg", trip=80, reset=75, for_=2.0, stale_after=10.0).register(graph)
    updates = graph.subscribe("overheat", mode="every")
    graph.push("temp", 70.0, key="dev")
    assert overheat.state("dev") == "ok"
    graph.push("temp", 85.0, key="dev")
    graph.advance_clock(1.0)
    assert overheat.state("dev") == "ok"
    graph.advance_clock(1.0)
    assert overheat.state("dev") == "tripped"
    assert overheat.tripped() == ["dev"]
    graph.push("temp", 78.0, key="dev")
    assert overheat.state("dev") == "tripped"
    graph.push("temp", 74.0, key="dev")
    assert overheat.state("dev") == "ok"
    graph.advance_clock(10.0)
    assert overheat.state("dev") == "stale"
    transitions = []
    while (update := updates.get(timeout=0)) is not None:
        if update.transition:
            transitions.append(update.transition)
    assert transitions == [("ok", "tripped"), ("tripped", "ok"), ("ok", "stale")]
    assert graph.stats()["transitions"] == 3


def test_subscriptions_iterate_and_call_back():
    graph = Graph()
    dav2d.nodes.scale("double", "s", a=2).register(graph)
    iterator = graph.subscribe("double", mode="every")
    received = []
    done = threading.Event()

    def on_update(update):
        received.append((update.key, update.value))
        if len(received) == 3:
            done.set()

    handle = graph.subscribe("double", on_update)
    graph.push_many("s", [1.0, 2.0, 3.0], keys=["a", "b", "c"])
    first = next(iter(iterator))
    assert (first.name, first.key, first.value) == ("double", "a", 2.0)
    assert done.wait(10), "the callback thread received the updates"
    assert sorted(received) == [("a", 2.0), ("b", 4.0), ("c", 6.0)]
    handle.close()
    iterator.close()
    assert [(u.key, u.value) for u in iterator] == [("b", 4.0), ("c", 6.0)], "close() ends iteration after what is waiting"


def test_slow_subscribers_conflate_instead_of_growing():
    graph = Graph()
    graph.declare_stream("s")  # subscribing to an unknown name raises
    subscription = graph.subscribe("s", mode="latest")
    for value in range(1000):
        graph.push("s", float(value), key="k")
    assert subscription.pending == 1
    assert subscription.get(timeout=0).value == 999.0
    assert subscription.conflated == 999


def test_module_level_functions_use_the_default_graph():
    dav2d.nodes.moving_average("avg", "sensor", n=2).register()
    dav2d.push("sensor", np.array([1.0, 3.0]), key="d")
    assert dav2d.latest("avg", "d") == 2.0
    assert set(dav2d.latest_all("avg")) == {"d"}
    assert dav2d.stats()["accepted"] == 2
    assert len(dav2d.window("sensor", "d", 2)) == 2


def test_configs_load_from_python_and_report_their_errors(tmp_path):
    config = tmp_path / "graph.yaml"
    config.write_text(
        "streams:\n  - name: temp\n    max: 100\nnodes:\n  - name: avg\n    kind: moving_average\n"
        "    input: temp\n    n: 2\nconstraints:\n  - name: hot\n    input: avg\n    trip: 50\n"
    )
    graph = Graph(auto_create_streams=False, manual_clock=True)
    graph.load_config(str(config))
    graph.push_many("temp", [40.0, 80.0], keys="k")
    assert graph.latest("avg", "k") == 60.0
    assert graph.latest("hot", "k") == "tripped"
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes:\n  - name: avg\n    kind: moving_avg\n    input: temp\n")
    with pytest.raises(dav2d.ConfigError, match=r"broken.yaml:3:11: nodes\[0\].kind: unknown node kind"):
        Graph().load_config(str(broken))


def test_typed_streams_refuse_the_wrong_type_at_the_door():
    graph = Graph()
    dav2d.nodes.moving_average("avg", "mix", n=3).register(graph)
    report = graph.push_many("mix", [1.0, 3.0], keys="k")
    assert report["accepted"] == 2
    with pytest.raises(dav2d.RejectedError, match="takes number values .read by numeric node 'avg'"):
        graph.push("mix", "oops", key="k")
    assert graph.latest("avg", "k") == 2.0, "the node never saw the string"
    assert graph.stats()["rejected_by_reason"] == {"type_mismatch": 1}
    graph.declare_stream("label", type="string")
    graph.push("label", "north", key="k")
    with pytest.raises(dav2d.RejectedError, match="takes string values"):
        graph.push("label", 1.0, key="k")
    with pytest.raises(dav2d.GraphError, match="declared to take string values"):
        dav2d.nodes.max("peak", "label", n=2).register(graph)
    with pytest.raises(ValueError, match="not a value type"):
        graph.declare_stream("other", type="strnig")


def test_an_offloaded_node_never_holds_the_engine():
    import threading

    graph = Graph(offload_workers=1)
    started, release = threading.Event(), threading.Event()

    def slow(data):
        started.set()
        assert release.wait(timeout=20)
        return data[-1] * 10

    Node("slow", logic=slow, input_source="temp", window=1, offload=True).register(graph)
    dav2d.nodes.scale("after", "slow", a=1.0, b=1.0).register(graph)
    dav2d.nodes.scale("double", "other", a=2.0).register(graph)
    updates = graph.subscribe("after")
    graph.push("temp", 1.0, key="k")
    assert started.wait(timeout=20), "a worker runs the slow logic"
    # Held on the event: the engine still applies and evaluates other samples.
    graph.push("other", 4.0, key="k")
    assert graph.latest("double", "k") == 8.0
    assert graph.latest("slow", "k") is None
    release.set()
    update = updates.get(timeout=20)
    assert (update.name, update.value) == ("after", 11.0)
    # The subscriber hears of the update inside the wave; the read model
    # that stats() reads is published when the wave ends.
    node = wait_until(
        "the offloaded node's evaluation in stats()",
        lambda: (n := graph.stats()["nodes"]["slow"])["evaluations"] == 1 and n,
    )
    assert node["offload"] is True and node["evaluations"] == 1
    graph.close()


def test_keep_names_how_many_samples_a_key_keeps():
    graph = Graph(keep=8)
    graph.push_many("s", [float(i) for i in range(20)], keys="k")
    assert len(graph.window("s", "k", 100)) == 8
    graph.declare_stream("t", keep=12)
    graph.push_many("t", [float(i) for i in range(20)], keys="k")
    assert len(graph.window("t", "k", 100)) == 12
    old = Graph(history=6)  # the former name still works
    old.push_many("s", [float(i) for i in range(20)], keys="k")
    assert len(old.window("s", "k", 100)) == 6
    with pytest.raises(TypeError, match="not both"):
        Graph(keep=2, history=3)


def test_sizes_a_user_types_raise_clear_errors_never_abort():
    with pytest.raises(ValueError, match="more than the 1048576 samples"):
        Graph(keep=10**12)
    graph = Graph()
    with pytest.raises(dav2d.GraphError, match="more than the 1048576"):
        graph.declare_stream("s", keep=10**12)
    with pytest.raises(dav2d.InvalidArgument, match="a window of 1000000000000 samples; give 1 to 1048576"):
        Node("n", logic=lambda d: 1.0, input_source="s", window=10**12).register(graph)
    with pytest.raises(ValueError, match="more than the 1048576"):
        dav2d.nodes.moving_average("avg", "s", n=10**12).register(graph)
    graph.push("s", 1.0, key="k")  # the graph still works
    assert graph.latest("s", "k") == 1.0


def test_once_streams_are_declared_a_misspelt_name_raises_with_the_closest_one() -> None:
    graph = dav2d.Graph()
    graph.push("scratch", 1.0)  # nothing declared yet: names are created
    graph.declare_stream("temperature")
    with pytest.raises(dav2d.RejectedError, match="did you mean 'temperature'"):
        graph.push("temprature", 1.0)
    with pytest.raises(dav2d.Dav2dError, match="did you mean 'temperature'"):
        graph.subscribe("temprature")
    report = graph.push_many("temprature", [1.0, 2.0])
    assert report["rejected"] == 2 and "did you mean 'temperature'" in report["errors"][0][1]
    graph.push("temperature", 21.5)
    assert graph.latest("temperature") == 21.5
    # The permissive mode keeps creating streams.
    permissive = dav2d.Graph(auto_create_streams=True)
    permissive.declare_stream("temperature")
    permissive.push("temprature", 1.0)
    assert permissive.latest("temprature") == 1.0


def test_a_late_sample_never_becomes_the_latest_and_is_dropped_or_kept_in_the_window() -> None:
    graph = dav2d.Graph()
    second = 1_000_000_000
    graph.declare_stream("t")
    graph.push("t", 20.0, key="k", ts=10 * second)
    with pytest.raises(dav2d.RejectedError, match=r"a sample at 1970-01-01T00:00:05.000Z for 't' key 'k' is 5 s older than its latest \(1970-01-01T00:00:10.000Z\)"):
        graph.push("t", 99.0, key="k", ts=5 * second)
    assert graph.latest("t", "k") == 20.0
    graph.declare_stream("u", keep=5, late="insert", allowed_lateness=5.0)
    graph.push("u", 1.0, key="k", ts=10 * second)
    graph.push("u", 2.0, key="k", ts=7 * second)  # 3 s late: into the window
    report = graph.push_many("u", [3.0], keys="k", ts=[1 * second])  # 9 s late: refused
    assert report["rejected"] == 1 and "allowed lateness of 5.000 s" in report["errors"][0][1]
    assert graph.latest("u", "k") == 1.0
    assert list(graph.window("u", "k", 5)) == [2.0, 1.0]
    assert graph.stats()["late"] == 3
    with pytest.raises(dav2d.Dav2dError, match="late='sometimes'"):
        graph.declare_stream("v", late="sometimes")
    with pytest.raises(dav2d.Dav2dError, match="allowed_lateness needs late='insert'"):
        graph.declare_stream("w", allowed_lateness=1.0)


def test_every_time_takes_ns_float_seconds_datetimes_and_iso_strings_alike() -> None:
    import datetime

    graph = dav2d.Graph()
    at = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    ns = int(at.timestamp()) * 1_000_000_000
    for key, ts in [
        ("int", ns),
        ("float", at.timestamp()),
        ("datetime", at),
        ("naive", at.replace(tzinfo=None)),
        ("iso", "2026-12-01T12:00:00+00:00"),
        ("numpy", np.datetime64("2026-12-01T12:00:00")),
        ("numpy-int", np.int64(ns)),
    ]:
        graph.push("s", 1.0, key=key, ts=ts)
        assert graph.latest("s", key, sample=True).ts == ns, key
    graph.push_many("f", np.array([1.0, 2.0]), keys=["a", "b"], ts=np.array([at.timestamp(), at.timestamp() + 1.5]))
    assert graph.latest("f", "b", sample=True).ts == ns + 1_500_000_000
    graph.push_many("d", [1.0], keys="a", ts=np.array(["2026-12-01T12:00:00"], dtype="datetime64[ns]"))
    assert graph.latest("d", "a", sample=True).ts == ns
    graph.push_many("l", [1.0, 2.0], keys="a", ts=["2026-12-01T12:00:00Z", at])
    assert graph.latest("l", "a", sample=True).ts == ns
    with pytest.raises(dav2d.Dav2dError, match="not a time"):
        graph.push("s", 1.0, key="x", ts=float("nan"))
    with pytest.raises(dav2d.Dav2dError, match="not an ISO 8601 time"):
        graph.push("s", 1.0, key="x", ts="yesterday")


def test_subscribing_to_an_unknown_name_raises_like_events_answers_404() -> None:
    graph = dav2d.Graph()
    graph.declare_stream("temperature")
    with pytest.raises(dav2d.GraphError, match="did you mean 'temperature'"):
        graph.subscribe("temprature")
    undeclared = dav2d.Graph()  # nothing declared yet: still an error
    with pytest.raises(dav2d.GraphError, match="'later' is not a stream"):
        undeclared.subscribe("later")
    permissive = dav2d.Graph(auto_create_streams=True)
    updates = permissive.subscribe("later")  # the permissive mode creates it
    permissive.push("later", 1.0, key="k")
    assert updates.get(timeout=1.0).value == 1.0


def test_a_constraint_takes_the_configs_spelling_of_direction() -> None:
    graph = dav2d.Graph()
    dav2d.Constraint("cold", "t", trip=5.0, reset=6.0, direction="below").register(graph)
    graph.push("t", 4.0, key="k")
    assert graph.latest("cold", "k") == "tripped"
    with pytest.raises(dav2d.Dav2dError, match="give 'above' or 'below'"):
        dav2d.Constraint("x", "t", trip=1.0, direction="under")
    with pytest.raises(dav2d.Dav2dError, match="disagree"):
        dav2d.Constraint("x", "t", trip=1.0, direction="above", below=True)


def test_every_mistake_raises_a_dav2d_error_that_is_also_the_builtin_kind() -> None:
    import socket

    graph = dav2d.Graph()
    graph.push("s", 1.0, key="k")
    with pytest.raises(dav2d.InvalidType) as wrong_type:
        graph.push("s", object(), key="k")
    assert isinstance(wrong_type.value, TypeError)
    with pytest.raises(dav2d.OutOfRange) as past_end:
        graph.window("s", "k", 4)[4]
    assert isinstance(past_end.value, IndexError)
    with pytest.raises(dav2d.Dav2dError, match="manual_clock=True"):
        graph.advance_clock(1.0)
    with pytest.raises(dav2d.InvalidType):
        dav2d.Node("n", logic=abs, inputs=[3]).register(graph)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(dav2d.Dav2dError, match=str(port)):
            graph.serve(http=f"127.0.0.1:{port}", tcp="off", data="off")
    assert graph.latest("s", "k") == 1.0


def test_nodes_can_be_registered_in_any_order() -> None:
    graph = dav2d.Graph()
    graph.declare_stream("temp")
    # Each reads one registered after it; they are added when the graph runs.
    dav2d.Constraint("hot", "smooth", trip=30.0).register(graph)
    Node("smooth", logic=lambda w: sum(w) / len(w), input_source="celsius", window=2).register(graph)
    Node("celsius", logic=lambda w: (w[-1] - 32) / 1.8, input_source="temp").register(graph)
    graph.push("temp", 212.0, key="k")
    assert graph.latest("celsius", "k") == 100.0
    assert graph.latest("hot", "k") == "tripped"
    assert [node["name"] for node in graph.nodes()][:2] == ["celsius", "smooth"]
    # Once running, registration is immediate: a wrong input raises at once.
    with pytest.raises(dav2d.GraphError, match="did you mean 'celsius'"):
        Node("late", logic=abs, input_source="celsuis").register(graph)


def test_validate_names_what_is_still_missing_and_loops() -> None:
    graph = dav2d.Graph()
    graph.declare_stream("temperature")
    Node("a", logic=abs, input_source="b").register(graph)
    Node("b", logic=abs, input_source="a").register(graph)
    with pytest.raises(dav2d.GraphError, match="cycle: a -> b -> a"):
        graph.validate()
    other = dav2d.Graph()
    other.declare_stream("temperature")
    Node("avg", logic=abs, input_source="temprature").register(other)
    with pytest.raises(dav2d.GraphError, match="did you mean 'temperature'"):
        other.push("temperature", 1.0, key="k")
    # The rest of the graph is unharmed: the push after the error lands.
    other.push("temperature", 2.0, key="k")
    assert other.latest("temperature", "k") == 2.0


def test_logic_batch_takes_a_waves_windows_as_one_array_and_returns_a_value_per_key() -> None:
    import numpy as np

    graph = dav2d.Graph()
    calls: list[tuple[int, int]] = []

    def mean(windows: np.ndarray) -> np.ndarray:
        calls.append(windows.shape)
        assert not windows.flags.writeable
        return np.nanmean(windows, axis=1)

    dav2d.Node("avg", logic_batch=mean, input_source="temp", window=3).register(graph)
    keys = [f"k{i}" for i in range(100)]
    for step in range(4):
        graph.push_many("temp", np.arange(100, dtype=np.float64) + step, keys=keys)
    assert calls[0] == (100, 3) and len(calls) == 4, calls
    # Rows are each key's newest 3 samples, oldest first: k7 saw 7, 8, 9, 10.
    assert graph.latest("avg", "k7") == 9.0
    assert np.asarray(graph.window("avg", "k0")).tolist() == [0.0, 0.5, 1.0, 2.0]

    def some(windows: np.ndarray) -> list[float | None]:
        return [None if i % 2 else float(row[-1]) for i, row in enumerate(windows)]

    dav2d.Node("odd", logic_batch=some, input_source="temp", window=2).register(graph)
    graph.push_many("temp", np.full(4, 50.0), keys=["a", "b", "c", "d"])
    assert graph.latest("odd", "a") == 50.0 and graph.latest("odd", "b") is None

    def broken(windows: np.ndarray) -> list[float]:
        return [1.0]

    dav2d.Node("bad", logic_batch=broken, input_source="temp", window=1).register(graph)
    graph.push_many("temp", np.full(3, 1.0), keys=["x", "y", "z"])
    with pytest.raises(dav2d.NodeError, match=r"returned 1 values for 3 keys"):
        graph.latest("bad", "y")
    assert graph.latest("avg", "x") == 1.0, "the rest of the graph went on"
    with pytest.raises(dav2d.InvalidArgument, match="exactly one of"):
        dav2d.Node("both", logic=len, logic_batch=mean, input_source="temp")


def test_an_all_edge_hands_a_run_of_one_key_to_logic_as_one_call_with_a_row_per_sample() -> None:
    import numpy as np

    graph = dav2d.Graph()
    shapes: list[tuple[int, int]] = []

    def doubled(windows: np.ndarray) -> np.ndarray:
        shapes.append(windows.shape)
        return windows[:, -1] * 2

    dav2d.Node("twice", logic_batch=doubled, input_source="temp", window=2, policy="all").register(graph)
    seen: list[float] = []
    dav2d.Node("each", logic=lambda w: seen.append(list(w)) or w[-1], input_source="temp", window=2, policy="all").register(graph)
    graph.push_many("temp", np.array([1.0, 2.0, 3.0, 4.0, 5.0]), keys=["k"] * 5)
    assert shapes == [(5, 2)], "one call, a row per sample"
    assert np.asarray(graph.window("twice", "k", 3)).tolist() == [6.0, 8.0, 10.0]
    assert graph.stats()["nodes"]["twice"]["evaluations"] == 5
    assert seen == [[1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0], [4.0, 5.0]], "each window ends at its sample"
    assert graph.stats()["nodes"]["each"]["evaluations"] == 5
