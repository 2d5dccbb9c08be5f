"""dav2d keeps the latest valid snapshot of a live system.

Samples flow into keyed streams; a graph of nodes recomputes only what a
change can reach; constraints raise and clear alerts; subscribers receive the
results. The engine is Rust; this package is its Python face::

    from dav2d import Node

    def moving_average(data):
        return sum(data[-5:]) / 5

    avg_node = Node(name="temp_avg", logic=moving_average, input_source="sensor_stream")
    avg_node.register()
"""

from __future__ import annotations

from typing import Any

from . import nodes
from ._api import (
    DEFAULT_SPAN_SAMPLES,
    DEFAULT_WINDOW,
    CallbackSubscription,
    Constraint,
    Graph,
    Node,
    TimeLike,
    WindowLike,
    default_graph,
    read_history,
    reset,
)
from ._dav2d import (
    ConfigError,
    Dav2dError,
    Dav2dProcessor,
    Frame,
    FrameStream,
    GraphError,
    InvalidArgument,
    InvalidType,
    NodeError,
    OutOfRange,
    Persistence,
    RejectedError,
    Sample,
    Server,
    Subscription,
    Update,
    Window,
    __version__,
)

__all__ = [
    "CallbackSubscription",
    "ConfigError",
    "Constraint",
    "DEFAULT_SPAN_SAMPLES",
    "DEFAULT_WINDOW",
    "Dav2dError",
    "Dav2dProcessor",
    "Frame",
    "FrameStream",
    "Graph",
    "GraphError",
    "InvalidArgument",
    "InvalidType",
    "Node",
    "NodeError",
    "OutOfRange",
    "Persistence",
    "RejectedError",
    "Sample",
    "Server",
    "Subscription",
    "TimeLike",
    "WindowLike",
    "Update",
    "Window",
    "__version__",
    "declare_stream",
    "default_graph",
    "history",
    "latest",
    "latest_all",
    "load_config",
    "spec",
    "nodes",
    "persist",
    "push",
    "push_many",
    "read_history",
    "replay",
    "reset",
    "serve",
    "stats",
    "subscribe",
    "tick",
    "window",
]


def push(stream: str, value: Any, key: str = "", ts: TimeLike | None = None) -> None:
    """Pushes one sample (or a NumPy array / list as a batch for ``key``) to the default graph."""
    default_graph().push(stream, value, key, ts)


def push_many(stream: str, values: Any, keys: Any = None, ts: Any = None) -> dict[str, Any]:
    """Pushes a batch of numbers to the default graph; see :meth:`Graph.push_many`."""
    return default_graph().push_many(stream, values, keys, ts)


def latest(name: str, key: str = "", *, sample: bool = False) -> Any:
    """The latest value of ``name`` for ``key`` in the default graph; see :meth:`Graph.latest`."""
    return default_graph().latest(name, key, sample=sample)


def latest_all(name: str) -> dict[str, Sample]:
    """Every key of ``name`` with its latest :class:`Sample`."""
    return default_graph().latest_all(name)


def window(name: str, key: str = "", n: int = DEFAULT_WINDOW) -> Window:
    """The newest ``n`` samples of ``name`` for ``key`` as a zero-copy :class:`Window`."""
    return default_graph().window(name, key, n)


def subscribe(name: str, callback: Any = None, *, mode: str = "every", capacity: int = 1024) -> Any:
    """Subscribes to changes of ``name`` in the default graph; see :meth:`Graph.subscribe`."""
    return default_graph().subscribe(name, callback, mode=mode, capacity=capacity)


def stats() -> dict[str, Any]:
    """Counters of the default graph; see :meth:`Graph.stats`."""
    return default_graph().stats()


def tick() -> int:
    """Checks constraint timers of the default graph now."""
    return default_graph().tick()


def declare_stream(name: str, **bounds: Any) -> None:
    """Declares a stream with bounds (``min``, ``max``, ``finite_only``), ``keep`` and ``type`` in the default graph."""
    default_graph().declare_stream(name, **bounds)


def serve(config: str | None = None, **options: Any) -> Server:
    """Starts the HTTP API and TCP server feeding the default graph; see :meth:`Graph.serve`."""
    return default_graph().serve(config, **options)


def persist(dir: str | None = None, **options: Any) -> Persistence:  # noqa: A002 - the config's name
    """Persists the default graph to ``dir`` (default ``./dav2d-data``); see :meth:`Graph.persist`.

    ``dav2d.history(...)`` then reads from there by default.
    """
    return default_graph().persist(dir, **options)


def history(
    name: str | None,
    key: str | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    *,
    dir: str | None = None,  # noqa: A002 - the config's name
) -> Any:
    """The persisted history of ``name`` (every name if None) as a ``pyarrow.Table``.

    Optionally one ``key``, from ``since`` (inclusive) to ``until``
    (exclusive): ns since the epoch, ISO 8601 strings or datetimes. Columns:
    ``ts`` (timestamp[ns, UTC]), ``name``, ``key``, ``value`` (float64, null
    for text), ``state`` (constraint states and text, null for numbers).
    ``dir`` defaults to where the default graph persists (else
    ``./dav2d-data``). Needs ``pyarrow``.
    """
    return default_graph().history(name, key, since, until, dir=dir)


def load_config(path: str) -> None:
    """Adds a YAML config's streams, nodes and constraints to the default graph."""
    default_graph().load_config(path)


def spec() -> dict[str, Any]:
    """The default graph's streams and nodes as data (see :meth:`Graph.spec`)."""
    return default_graph().spec()


def replay(config: str, source: str, vary: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Replays recorded samples through a config's graph, as ``dav2d replay`` does.

    ``source`` is a store's directory (its raw streams, kept when
    ``persistence.streams`` lists them) or an NDJSON, CSV or Parquet file
    of ``stream``, ``key``, ``value``, ``ts`` samples (a DataFrame's
    ``to_parquet`` will do; ``ts`` in ns or a timestamp). ``vary`` maps
    ``"NAME.PARAM"`` to the values to try (``{"overheat.trip": [80, 85, 90]}``);
    every combination runs side by side. Returns one row per variant and
    constraint (the recorded run's labelled ``"recorded"``), ready for
    ``pandas.DataFrame(rows)``: ``variant``, ``constraint``, ``raised``,
    ``cleared``, ``tripped_seconds``, ``keys_tripped`` (how many),
    ``first_trip_ns``, ``last_trip_ns`` and ``keys`` (which).
    """
    import json
    import subprocess
    import sys

    args = [sys.executable, "-m", "dav2d._cli", "replay", str(config), "--from", str(source), "--format", "json"]
    for target, values in (vary or {}).items():
        listed = values if isinstance(values, (list, tuple)) else [values]
        args += ["--vary", f"{target}=" + ",".join(str(v) for v in listed)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(done.stderr.strip().removeprefix("error: "))
    answer = json.loads(done.stdout)
    rows = []
    runs = [(v["label"], v["alerts"]) for v in answer["variants"]] + [("recorded", answer["recorded"])]
    for label, alerts in runs:
        for a in alerts:
            rows.append({
                "variant": label,
                "constraint": a["constraint"],
                "raised": a["raised"],
                "cleared": a["cleared"],
                "tripped_seconds": a["tripped_seconds"],
                "keys_tripped": len(a["keys_tripped"]),
                "first_trip_ns": a["first_trip_ns"],
                "last_trip_ns": a["last_trip_ns"],
                "keys": sorted(a["keys_tripped"]),
            })
    return rows
