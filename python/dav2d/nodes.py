"""Native built-in nodes: constructors returning a :class:`~dav2d.Node` to ``register()``.

Built-ins run in Rust with no Python per sample::

    dav2d.nodes.moving_average("temp_avg", "sensor_stream", n=5).register()
"""

from __future__ import annotations

from typing import Any

from ._api import Node

__all__ = ["moving_average", "ewma", "min", "max", "sum", "rate", "delta", "clamp", "scale"]


def _builtin(kind: str, name: str, input: str, params: dict[str, float], options: dict[str, Any]) -> Node:  # noqa: A002
    return Node(name, builtin=kind, params=params, inputs=[input], **options)


def moving_average(name: str, input: str, n: int = 5, **options: Any) -> Node:  # noqa: A002
    """Mean of the newest ``n`` samples (of those available while fewer)."""
    return _builtin("moving_average", name, input, {"n": n}, options)


def ewma(name: str, input: str, alpha: float, **options: Any) -> Node:  # noqa: A002
    """Exponentially weighted moving average: ``alpha * x + (1 - alpha) * previous``."""
    return _builtin("ewma", name, input, {"alpha": alpha}, options)


def min(name: str, input: str, n: int, **options: Any) -> Node:  # noqa: A001,A002
    """Minimum of the newest ``n`` samples."""
    return _builtin("min", name, input, {"n": n}, options)


def max(name: str, input: str, n: int, **options: Any) -> Node:  # noqa: A001,A002
    """Maximum of the newest ``n`` samples."""
    return _builtin("max", name, input, {"n": n}, options)


def sum(name: str, input: str, n: int, **options: Any) -> Node:  # noqa: A001,A002
    """Sum of the newest ``n`` samples."""
    return _builtin("sum", name, input, {"n": n}, options)


def rate(name: str, input: str, **options: Any) -> Node:  # noqa: A002
    """Change per second between the two newest samples, from their timestamps."""
    return _builtin("rate", name, input, {}, options)


def delta(name: str, input: str, **options: Any) -> Node:  # noqa: A002
    """Difference between the two newest samples."""
    return _builtin("delta", name, input, {}, options)


def clamp(name: str, input: str, lo: float, hi: float, **options: Any) -> Node:  # noqa: A002
    """The newest sample limited to ``[lo, hi]``."""
    return _builtin("clamp", name, input, {"lo": lo, "hi": hi}, options)


def scale(name: str, input: str, a: float = 1.0, b: float = 0.0, **options: Any) -> Node:  # noqa: A002
    """``a * x + b`` of the newest sample."""
    return _builtin("scale", name, input, {"a": a, "b": b}, options)
