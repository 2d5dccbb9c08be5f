"""Type stubs for the compiled engine module ``dav2d._dav2d``."""

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__version__: str
DEFAULT_WINDOW: int
DEFAULT_SPAN_SAMPLES: int

class Dav2dError(Exception):
    """Base class of every dav2d error."""

class GraphError(Dav2dError):
    """A registration failed (cycle, unknown input, duplicate name, bad window) or a name is unknown."""

class RejectedError(Dav2dError):
    """A sample was rejected; the message says why."""

class NodeError(Dav2dError):
    """A node's logic failed for this key; the message holds the traceback."""

class ConfigError(Dav2dError):
    """A config file is invalid; the message names file, line, column and field."""

class InvalidArgument(Dav2dError, ValueError):
    """An argument out of its range or of the wrong shape (also a ValueError)."""

class InvalidType(Dav2dError, TypeError):
    """An argument of a type dav2d does not take (also a TypeError)."""

class OutOfRange(Dav2dError, IndexError):
    """An index past the end of a window (also an IndexError)."""

class Window:
    """The newest samples of one input for one key, oldest first; zero-copy to NumPy."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int | slice) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    @property
    def __array_interface__(self) -> dict[str, Any]: ...
    @property
    def timestamps(self) -> list[int]: ...
    @property
    def key(self) -> str: ...

class Sample:
    """The latest sample of one (stream, key) with its error state."""

    value: Any
    ts: int
    seq: int
    key: str
    error: str | None

class Update:
    """One change delivered to a subscriber."""

    name: str
    key: str
    value: Any
    ts: int
    seq: int
    error: str | None
    transition: tuple[str, str] | None

class Subscription:
    """Updates of one name; iterate (blocking) or ``get(timeout)``."""

    def __iter__(self) -> Iterator[Update]: ...
    def __next__(self) -> Update: ...
    def get(self, timeout: float | None = None) -> Update | None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def conflated(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def name(self) -> str: ...

class Server:
    """What ``serve()`` started (sources, sinks, the HTTP API) feeding a graph."""

    @property
    def http_address(self) -> str | None: ...
    @property
    def tcp_address(self) -> str | None: ...
    @property
    def running(self) -> bool: ...
    def stop(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...

def builtins() -> list[dict[str, Any]]:
    """The engine's table of built-in nodes: kind, help and params (name, default, integer)."""

def parse_duration(text: str, what: str) -> int:
    """Nanoseconds of a duration written as YAML writes it (``30s``, ``1m``, ``500ms``)."""

def _rust_allocations() -> int | None:
    """Rust heap allocations made on the calling thread so far (None when built without count-allocations)."""

def node_window(written: str, max_samples: float | None, what: str) -> tuple[int, int | None]:
    """(samples, span in ns or None) of a node's window as written (``16``, ``30s``), with its ``max_samples``."""

def cli(argv: list[str]) -> int:
    """Runs a ``dav2d`` command line (program name first) in this process; its exit status."""

def serve(
    graph: Graph,
    config: str | None = None,
    *,
    http: str | None = None,
    tcp: str | None = None,
    token: str | None = None,
    max_body: int | None = None,
    workers: int | None = None,
    data: str | None = None,
) -> Server: ...

class Persistence:
    """A running persistence thread (see :meth:`dav2d.Graph.persist`)."""

    @property
    def dir(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...

def persist(
    graph: Graph,
    dir: str | None = None,
    *,
    config: str | None = None,
    flush_interval: float | None = None,
    checkpoint_interval: float | None = None,
    fsync: str | None = None,
    max_file_actions_per_day: int | None = None,
    retention: float | None = None,
    segment_size: int | None = None,
    streams: list[str] | None = None,
    pixels: list[str] | None = None,
) -> Persistence: ...
def history(
    dir: str,
    name: str | None = None,
    key: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> dict[str, Any]: ...

class Graph:
    """The engine's graph; use :class:`dav2d.Graph`, which wraps it."""

    def frames(self, name: str, url: str, *, token: str | None = None) -> FrameStream: ...
    def processor_node(self, name: str, input: str, config_path: str) -> str: ...
    def frame_node(
        self,
        name: str,
        kind: str,
        input: str,
        *,
        width: int | None = None,
        height: int | None = None,
        offload: bool = True,
    ) -> None: ...
    def __init__(
        self,
        *,
        auto_create_streams: bool | None = None,
        keep: int | None = None,
        manual_clock: bool = False,
        offload_workers: int | None = None,
        limits: dict[str, int | str] | None = None,
    ) -> None: ...
    def declare_stream(
        self,
        name: str,
        *,
        min: float | None = None,
        max: float | None = None,
        finite_only: bool = False,
        keep: int | None = None,
        value_type: str | None = None,
        late: str | None = None,
        allowed_lateness: float | None = None,
    ) -> None: ...
    def register_node(
        self,
        name: str,
        inputs: list[tuple[str, int, int | None, str]],
        *,
        logic: Callable[..., Any] | None = None,
        builtin: str | None = None,
        params: dict[str, float] | None = None,
        priority: int = 0,
        deadband: float | None = None,
        returns: str = "number",
        offload: bool = False,
        window_given: bool = False,
        defer: bool = False,
        batch: bool = False,
    ) -> None: ...
    def register_constraint(
        self,
        name: str,
        input: str,
        *,
        trip: float,
        reset: float | None = None,
        below: bool = False,
        hold: float = 0.0,
        stale_after: float | None = None,
        policy_name: str = "latest",
        priority: int = 0,
        defer: bool = False,
    ) -> None: ...
    def load_config(self, path: str) -> None: ...
    def apply(self, source: str, spec: bool) -> dict[str, Any]: ...
    def spec_json(self) -> str: ...
    def push(self, stream: str, value: Any, key: str = "", ts: int | None = None) -> None: ...
    def push_many(
        self,
        stream: str,
        values: np.ndarray | list[float],
        keys: str | list[str] | None = None,
        ts: np.ndarray | None = None,
    ) -> dict[str, Any]: ...
    def latest(self, name: str, key: str = "", sample: bool = False) -> Any: ...
    def latest_all(self, name: str) -> dict[str, Sample]: ...
    def window(self, name: str, key: str = "", n: int = 16) -> Window: ...
    def subscribe(self, name: str, mode: str = "latest", capacity: int = 1024) -> Subscription: ...
    def tick(self) -> int: ...
    def advance_clock(self, seconds: float) -> int: ...
    def start_ticker(self, interval: float = 0.05) -> None: ...
    def stop_ticker(self) -> None: ...
    def stop_workers(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def nodes(self) -> list[dict[str, Any]]: ...
    def resolve(self) -> None: ...


class Frame:
    """One video frame: a lease on its pool slot, read without a copy.

    ``numpy.asarray(frame)`` shares the slot's memory (H×W×C, strides from the
    row pitch, read-only) and keeps the slot pinned until the array is freed.
    Use it in a ``with`` block; its pixels are unreadable after the block.
    """

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def stride(self) -> int: ...
    @property
    def strides(self) -> list[int]: ...
    @property
    def format(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def released(self) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> Frame: ...
    def __exit__(self, *args: object) -> None: ...
    def __buffer__(self, flags: int) -> memoryview: ...

class FrameStream:
    """A running frame source: ``FrameStream.open("synthetic:1920x1080@240?format=bgra8")``,
    ``"y4m:/path/file.y4m"`` or ``"y4m:-"``, ``"tcp://127.0.0.1:7071"`` (with
    ``token=``, a producer's first line must be ``AUTH <token>``), ``"x11::99"``."""

    @staticmethod
    def open(url: str, *, token: str | None = None) -> FrameStream: ...
    def latest(self, timeout: float | None = None) -> Frame | None: ...
    def next(self, timeout: float | None = None) -> Frame | None: ...
    def read_into(self, array: Any, timeout: float | None = None) -> int | None: ...
    def on_frame(self, callback: Callable[[Frame], Any]) -> Callable[[Frame], Any]: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def __next__(self) -> Frame: ...
    @property
    def address(self) -> str | None: ...
    @property
    def skipped(self) -> int: ...
    @property
    def published(self) -> int: ...
    @property
    def leased(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> FrameStream: ...
    def __exit__(self, *args: object) -> None: ...

class Dav2dProcessor:
    """A model from a YAML file (``model_path``, ``processing``) and the
    pipeline around it: resize, normalise, run, activate, threshold."""

    def __init__(self, config_path: str) -> None: ...
    def run(self, x: Any, *, probabilities: bool = False, threshold: list[float] | None = None) -> Any: ...
    def preprocess(self, x: Any) -> Any: ...
    @property
    def device(self) -> str: ...
    @property
    def library(self) -> str: ...
    @property
    def nan_outputs(self) -> int:
        """Model outputs that held NaN so far (their masks are empty there)."""
    @property
    def config(self) -> dict[str, Any]:
        """The resolved settings; ``activation`` is the one applied and
        ``activation_reason`` says why (written, or how the model ends)."""
    @property
    def last_timings(self) -> dict[str, float]: ...
