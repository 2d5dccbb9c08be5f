"""The one conversion of every time the package takes (``push``'s ``ts``,
``history``'s ``since``/``until``) to ns since the epoch: ints are ns,
floats seconds, strings ISO 8601, datetimes and NumPy times as they say.
HTTP bodies follow the same rule in the engine's decoder."""

from __future__ import annotations

import datetime
from typing import Any, Union

from . import _dav2d

TimeLike = Union[int, float, str, datetime.datetime]
"""A time: ns since the epoch (int), seconds since the epoch (float, as
``time.time()`` gives), an ISO 8601 string, or a datetime (naive means UTC);
NumPy integers, floats and ``datetime64`` alike."""


def _ns(value: TimeLike | None, what: str) -> int | None:
    """The one conversion of every time dav2d takes to ns since the epoch."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _dav2d.InvalidType(f"{what} must be a time, not a bool")
    kind = type(value).__name__
    if kind == "datetime64":
        return int(value.astype("datetime64[ns]").astype("int64"))
    if hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a NumPy integer or float
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _dav2d.InvalidArgument(f"{what}={value} is not a time; give seconds since the epoch")
        return round(value * 1_000_000_000)
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError as error:
            raise _dav2d.InvalidArgument(f"{what}={value!r} is not an ISO 8601 time ({error})") from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    raise _dav2d.InvalidType(
        f"{what} must be ns since the epoch (int), seconds (float), an ISO 8601 string or a datetime, "
        f"not {type(value).__name__}"
    )


def _ns_array(ts: Any) -> Any:
    """``ts`` of a batch as what the engine takes: None, one int for all, or
    an int64 array of ns (from ints, float seconds, datetime64, or a
    sequence of any time :func:`_ns` reads)."""
    if ts is None:
        return None
    if type(ts).__name__ == "ndarray":
        kind = ts.dtype.kind
        if kind == "M":
            return ts.astype("datetime64[ns]").astype("int64")
        if kind == "f":
            import numpy as np

            if not np.isfinite(ts).all():
                raise _dav2d.InvalidArgument("ts holds NaN or infinity; give seconds since the epoch")
            return np.rint(ts * 1e9).astype("int64")
        return ts if str(ts.dtype) == "int64" else ts.astype("int64")
    if isinstance(ts, (list, tuple)):
        import numpy as np

        return np.asarray([_ns(t, "ts") for t in ts], dtype=np.int64)
    return _ns(ts, "ts")
