"""Shared test support: peers the tests need (pyarrow, onnxruntime, the
brokers) and condition waits.

Under ``make test`` (``DAV2D_REQUIRE_PEERS=1``) a missing peer fails the
run; a plain ``pytest`` skips the tests that need it and says why."""

from __future__ import annotations

import importlib
import os
import time
from types import ModuleType
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")


def require(module: str) -> ModuleType:
    """Imports ``module`` (a peer a test needs): skips without it, or fails
    when ``DAV2D_REQUIRE_PEERS`` is set, as ``make test`` sets it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        why = f"{module} is not installed ({error}); `make test` installs it"
        if os.environ.get("DAV2D_REQUIRE_PEERS"):
            pytest.fail(f"DAV2D_REQUIRE_PEERS is set but {why}", pytrace=False)
        pytest.skip(why, allow_module_level=True)
        raise  # unreachable: skip raises


def need(present: bool, why: str) -> None:
    """Skips the test saying ``why`` unless ``present``, or fails under
    ``make test`` (``DAV2D_REQUIRE_PEERS``), which provides everything."""
    if present:
        return
    if os.environ.get("DAV2D_REQUIRE_PEERS"):
        pytest.fail(f"DAV2D_REQUIRE_PEERS is set but {why}", pytrace=False)
    pytest.skip(why)


def wait_until(what: str, check: Callable[[], T | None], deadline: float = 10.0, every: float = 0.005) -> T:
    """Returns ``check()``'s first truthy result, calling it until then;
    fails the test naming ``what`` after ``deadline`` seconds. The condition
    wait the tests use instead of sleeping."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline} s waiting for {what}", pytrace=False)
        time.sleep(every)
