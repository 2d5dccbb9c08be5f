"""Type stub of dav2d.nodes: one constructor per built-in of the engine's table."""

from typing import Any, Callable

from ._api import Node

__all__: list[str]

# The constructors (moving_average, ewma, min, max, sum, rate, delta, clamp,
# scale, ...) are made at import from the engine's table of built-ins.
def __getattr__(name: str) -> Callable[..., Node]: ...
