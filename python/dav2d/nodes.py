"""Native built-in nodes: constructors returning a :class:`~dav2d.Node` to ``register()``.

Built-ins run in Rust with no Python per sample::

    dav2d.nodes.moving_average("temp_avg", "sensor_stream", n=5).register()

The constructors are made from the engine's table of built-ins (the one the
YAML ``kind:`` reads), so both faces take the same names, parameters and
defaults: ``moving_average(name, input, n)``, ``ewma(name, input, alpha)``,
``min``/``max``/``sum(name, input, n)``, ``rate(name, input)``,
``delta(name, input)``, ``clamp(name, input, lo, hi)``,
``scale(name, input, a=1.0, b=0.0)``. Parameters may be given by position
after ``input`` or by name; any other keyword (``window``, ``max_samples``,
``priority``, ``deadband``, ``policy``, ``offload``, ``graph``) goes to
:class:`~dav2d.Node`. The windowed built-ins (``moving_average``, ``min``,
``max``, ``sum``, ``rate``, ``delta``) take ``window`` instead of ``n``, a
count (``window=8``, as ``n=8``) or a duration::

    dav2d.nodes.moving_average("temp_30s", "sensor_stream", window="30s").register()
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from . import _dav2d
from ._api import Node

__all__: list[str] = []


def _constructor(kind: str, help_text: str, params: list[tuple[str, float | None, bool]]) -> Callable[..., Node]:
    names = [name for name, _, _ in params]

    def make(name: str, input: str, *args: Any, **options: Any) -> Node:  # noqa: A002 - the config's name
        if len(args) > len(names):
            raise _dav2d.InvalidType(f"{kind}() takes {len(names)} parameter(s) after name and input ({', '.join(names)}), got {len(args)}")
        given = dict(zip(names, args))
        for param in names:
            if param in options:
                if param in given:
                    raise _dav2d.InvalidType(f"{kind}() got {param!r} twice")
                given[param] = options.pop(param)
        # Defaults and validation are the engine's: it names what is missing or wrong.
        return Node(name, builtin=kind, params={k: float(v) for k, v in given.items()}, inputs=[input], **options)

    parameters = [
        inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
        inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
    ]
    for param, default, integer in params:
        parameters.append(
            inspect.Parameter(
                param,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=inspect.Parameter.empty if default is None else (int(default) if integer else default),
                annotation=int if integer else float,
            )
        )
    parameters.append(inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD, annotation=Any))
    make.__name__ = make.__qualname__ = kind
    make.__doc__ = help_text
    make.__signature__ = inspect.Signature(parameters, return_annotation=Node)  # type: ignore[attr-defined]
    return make


for _builtin in _dav2d.builtins():
    globals()[_builtin["kind"]] = _constructor(_builtin["kind"], _builtin["help"], _builtin["params"])
    __all__.append(_builtin["kind"])
del _builtin
