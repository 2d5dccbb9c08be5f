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
from ._api import DEFAULT_WINDOW, CallbackSubscription, Constraint, Graph, Node, default_graph, reset
from ._dav2d import (
    ConfigError,
    Dav2dError,
    GraphError,
    NodeError,
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
    "DEFAULT_WINDOW",
    "Dav2dError",
    "Graph",
    "GraphError",
    "Node",
    "NodeError",
    "RejectedError",
    "Sample",
    "Server",
    "Subscription",
    "Update",
    "Window",
    "__version__",
    "declare_stream",
    "default_graph",
    "latest",
    "latest_all",
    "load_config",
    "nodes",
    "push",
    "push_many",
    "reset",
    "serve",
    "stats",
    "subscribe",
    "tick",
    "window",
]


def push(stream: str, value: Any, key: str = "", ts: int | None = None) -> None:
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
    """Declares a stream with bounds (``min``, ``max``, ``finite_only``, ``history``) in the default graph."""
    default_graph().declare_stream(name, **bounds)


def serve(config: str | None = None, **options: Any) -> Server:
    """Starts the HTTP API and TCP server feeding the default graph; see :meth:`Graph.serve`."""
    return default_graph().serve(config, **options)


def load_config(path: str) -> None:
    """Adds a YAML config's streams, nodes and constraints to the default graph."""
    default_graph().load_config(path)
