"""Finds the Python function a config's ``kind: python`` node names.

A node written as ``logic: module:function`` runs ``function`` from
``module``: imported from the Python path, or else from ``module.py`` in the
config file's folder. The engine calls :func:`load` when it builds the graph
(``dav2d run``/``check`` from the package, ``dav2d.serve``,
``Graph.load_config``), so a missing module or function is an error at the
node's line before anything runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _dav2d


def load(spec: str, config_dir: str | None) -> Callable[..., Any]:
    """The callable ``spec`` (``module:function``) names."""
    module_name, sep, function = spec.partition(":")
    if not sep or not module_name or not function:
        raise _dav2d.InvalidArgument(f"'{spec}' is not module:function; write e.g. `logic: mylogic:smooth`")
    module = _module(module_name, config_dir)
    try:
        found = getattr(module, function)
    except AttributeError:
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        where = getattr(module, "__file__", module_name)
        listed = ", ".join(names) if names else "no public functions"
        raise _dav2d.InvalidArgument(f"module {module_name} ({where}) has no '{function}'; it has {listed}") from None
    if not callable(found):
        raise _dav2d.InvalidType(f"{spec} is a {type(found).__name__}, not a function")
    return found


def _module(name: str, config_dir: str | None) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        # Only the module itself being absent falls back to the config's folder;
        # a module that exists but fails to import says why.
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            raise
    if config_dir is not None:
        path = Path(config_dir, *name.split(".")).with_suffix(".py")
        if path.is_file():
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
                return module
    beside = f" or {Path(config_dir, *name.split('.')).with_suffix('.py')}" if config_dir is not None else ""
    raise _dav2d.InvalidArgument(f"no module named '{name}' on the Python path{beside}")
