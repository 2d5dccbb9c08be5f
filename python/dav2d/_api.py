"""The Python face of dav2d: graphs, nodes, constraints and the default graph.

Everything here is a thin layer over the compiled engine in ``dav2d._dav2d``;
the engine does the work with the GIL released.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from . import _dav2d
from ._times import TimeLike, _ns, _ns_array

__all__ = [
    "Graph",
    "Node",
    "Constraint",
    "CallbackSubscription",
    "default_graph",
    "read_history",
    "reset",
    "TimeLike",
    "WindowLike",
    "DEFAULT_WINDOW",
    "DEFAULT_SPAN_SAMPLES",
]

#: Samples of each input a Python node sees unless ``window=`` says otherwise.
DEFAULT_WINDOW: int = _dav2d.DEFAULT_WINDOW

#: Samples a time window (``window="30s"``) keeps at most unless
#: ``max_samples=`` says otherwise; samples past it are counted as
#: ``window_overflow`` in ``stats()``.
DEFAULT_SPAN_SAMPLES: int = _dav2d.DEFAULT_SPAN_SAMPLES

_log = logging.getLogger("dav2d")

#: A window: a number of samples (``16``) or a duration on event time
#: (``"30s"``, ``"1m"``, ``"500ms"`` as YAML writes them, or a ``timedelta``).
WindowLike = Union[int, str, datetime.timedelta]

InputLike = str | tuple[str, WindowLike]


def _window(window: WindowLike, max_samples: int | None, where: str) -> tuple[int, int | None]:
    """(samples, span in ns or None) of a window given as a count or a
    duration, read by the engine's one window reader (the one YAML's
    ``window:`` and ``max_samples:`` go through)."""
    if isinstance(window, bool) or not isinstance(window, (int, str, datetime.timedelta)):
        raise _dav2d.InvalidType(
            f"{where}: window is a number of samples (int) or a duration ('30s' or a timedelta), got {type(window).__name__} {window!r}"
        )
    if isinstance(window, datetime.timedelta):
        ns = (window.days * 86_400 + window.seconds) * 1_000_000_000 + window.microseconds * 1_000
        text = f"{ns}ns"
    else:
        text = str(window)
    return _dav2d.node_window(text, None if max_samples is None else float(max_samples), where)


class CallbackSubscription:
    """A subscription whose updates are handed to a callback on a daemon thread.

    A slow callback never slows the engine: updates it has not reached yet are
    conflated per key. ``close()`` stops the thread.
    """

    def __init__(self, subscription: _dav2d.Subscription, callback: Callable[[_dav2d.Update], Any]) -> None:
        self.subscription = subscription
        self._callback = callback
        self._thread = threading.Thread(target=self._run, name=f"dav2d-subscriber-{subscription.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for update in self.subscription:
            try:
                self._callback(update)
            except Exception:  # noqa: BLE001 - a subscriber's bug must not end its subscription
                _log.exception("Subscriber callback for %r failed", self.subscription.name)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stops delivering updates and waits for the callback thread."""
        self.subscription.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def conflated(self) -> int:
        """Updates folded into newer ones because the callback was behind."""
        return self.subscription.conflated


class Graph:
    """A dataflow graph of streams, nodes and constraints.

    Most programs use the default graph through the module-level functions
    (``dav2d.push``, ``dav2d.latest`` ...); make a ``Graph`` for isolation.

    ``auto_create_streams``: by default (``None``) pushing to or subscribing
    to an unknown stream name creates it until the graph declares its first
    stream (:meth:`declare_stream`); from then on an unknown name raises
    with the closest declared name. ``True`` keeps creating streams (the
    permissive mode); ``False`` never creates them. ``keep``: samples each
    (stream, key) keeps at least (default 4; ``history`` is its former
    name). ``manual_clock``: time moves only with :meth:`advance_clock`, for
    deterministic tests. ``offload_workers``: threads running offloaded nodes
    (default: one per core, at most 4). ``limits``: what clients can make the
    graph hold, by the names of a config's ``limits:`` section, e.g.
    ``{"keys": 10_000, "value_size": "64KiB"}``; a sample past one is
    rejected with its reason.
    """

    def __init__(
        self,
        *,
        auto_create_streams: bool | None = None,
        keep: int | None = None,
        manual_clock: bool = False,
        offload_workers: int | None = None,
        history: int | None = None,
        limits: Mapping[str, int | str] | None = None,
    ) -> None:
        self._engine = _dav2d.Graph(
            auto_create_streams=auto_create_streams,
            keep=_keep(keep, history),
            manual_clock=manual_clock,
            offload_workers=offload_workers,
            limits=dict(limits) if limits is not None else None,
        )
        self._callbacks: list[CallbackSubscription] = []
        self._persistence: _dav2d.Persistence | None = None
        # False until the graph first runs or validate(): till then a node
        # whose inputs do not exist yet is registered with defer=True and
        # waits in the engine (see validate).
        self._running = False

    # -- building ---------------------------------------------------------------------

    def register(self, item: Node | Constraint) -> Node | Constraint:
        """Registers a :class:`Node` or :class:`Constraint` and returns it."""
        return item.register(self)

    def validate(self) -> None:
        """Adds what was registered before its inputs existed, or says why not.

        Nodes and constraints can be registered in any order: one whose
        input is not yet a stream or a node waits (its other mistakes, such
        as a taken name or a window of 0, raise at once), and is added with
        the others waiting, in dependency order, here or at the first call
        that runs or reads the graph (``push``, ``latest``, ``subscribe``,
        ``serve`` ...), whichever comes first; from then on registration is
        immediate. One that still cannot be added (an input that is neither
        a stream nor a node while streams must be declared, with the closest
        name; nodes reading each other in a loop) raises ``GraphError`` and
        is left out, and the rest are added.
        """
        self._running = True
        self._engine.resolve()

    def _run(self) -> _dav2d.Graph:
        """The engine, once what waited for its inputs is resolved (see :meth:`validate`)."""
        if not self._running:
            self.validate()
        return self._engine

    def declare_stream(
        self,
        name: str,
        *,
        min: float | None = None,  # noqa: A002 - the config's name
        max: float | None = None,  # noqa: A002
        finite_only: bool = False,
        keep: int | None = None,
        type: str | None = None,  # noqa: A002 - the config's name
        history: int | None = None,
        late: str | None = None,
        allowed_lateness: float | None = None,
    ) -> None:
        """Declares an input stream with validity bounds and the type of values it takes.

        ``type`` is ``"number"``, ``"string"``, ``"bool"``, ``"record"``,
        ``"bytes"``, ``"frame"`` or ``"any"``; by default a stream that numeric nodes
        (built-ins, constraints) read takes numbers and any other takes
        anything. ``keep``: samples each key keeps at least (``history`` is its
        former name). Invalid samples are rejected (``RejectedError``) and
        counted.

        A sample older than its key's latest never becomes the latest; it is
        counted in ``stats()["late"]`` and, by ``late``, refused
        (``"drop"``, the default) or put into the key's window in timestamp
        order (``"insert"``) when at most ``allowed_lateness`` seconds older.
        """
        self._engine.declare_stream(
            name,
            min=min,
            max=max,
            finite_only=finite_only,
            keep=_keep(keep, history),
            value_type=type,
            late=late,
            allowed_lateness=allowed_lateness,
        )

    def frames(self, name: str, url: str, *, token: str | None = None) -> _dav2d.FrameStream:
        """Feeds the frames of the source ``url`` (see :class:`FrameStream`)
        into stream ``name`` (key ``""``), a wave per frame, so nodes can read
        them; returns the stream (``close()`` stops the feed). Frames are
        values of type ``frame``: ``latest(name)`` and Python node logic get
        :class:`Frame` objects, which ``numpy.asarray`` views without a copy.
        ``token``: what a ``tcp://`` producer must send first (``AUTH <token>``)."""
        return self._run().frames(name, url, token=token)

    def frame_node(
        self,
        name: str,
        kind: str,
        input: str,  # noqa: A002 - the product's vocabulary
        *,
        width: int | None = None,
        height: int | None = None,
        offload: bool = True,
    ) -> None:
        """Registers a built-in frame node over frame stream ``input``:
        ``mean_luma`` and ``motion`` (numbers: the mean BT.601 luma, and its
        mean absolute difference from the previous frame), ``grayscale`` and
        ``downscale`` (with ``width`` and ``height``), which make frames.

        A frame node reads a whole frame, so it runs on an offload worker by
        default and never holds the wave (``offload=False`` runs it in the
        wave, so its output is there when ``push`` returns)."""
        self._run().frame_node(name, kind, input, width=width, height=height, offload=offload)

    def processor_node(self, name: str, input: str, config_path: str) -> str:  # noqa: A002 - the product's vocabulary
        """Registers a processor node over frame stream ``input``: the model
        of the YAML file ``config_path`` (see :class:`Dav2dProcessor`) runs on
        the newest frame, always offloaded (frames that come meanwhile are
        conflated and counted in ``stats()``), and its mask is published as a
        ``gray8`` :class:`Frame` of 0/1 (``numpy.asarray`` views it without a
        copy). ``frame_node(..., "coverage", name)`` gives the fraction of its
        pixels set, for constraints. Returns where the model runs (``"cpu"``
        or ``"cuda"``)."""
        return self._run().processor_node(name, input, os.fspath(config_path))

    def spec(self) -> dict[str, Any]:
        """What this graph is, as data: ``streams`` (name, type, bounds,
        keep) and ``nodes`` (name, kind, logic, inputs with window and
        policy, priority, deadband, offload), in the shape ``dav2d check
        --format json`` prints and ``GET /graph`` serves. Two specs compare
        with ``==``."""
        import json

        return json.loads(self._run().spec_json())

    def load_config(self, path: str) -> None:
        """Adds the streams, nodes and constraints of a YAML config file."""
        self._engine.load_config(path)

    def apply(self, config: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
        """Applies a YAML config, or a spec, to this running graph, keeping its state (a hot reload).

        ``config`` is a YAML file's path, or a spec as data: what
        :meth:`spec` returns, edited (``logic`` of a built-in or constraint
        is written as ``spec()`` shows it, e.g. ``"constraint(above trip=85
        reset=80)"``). It is validated whole first: an invalid one raises
        ``ConfigError`` naming the file and line (or the spec's field) and
        changes nothing. Changed parameters of built-ins and constraints
        apply in place, keeping windows and alert states (keys now across a
        new threshold transition once); new nodes are added and evaluated
        from the windows already held; a re-wired node (other inputs,
        windows, priority, deadband) changes in place, keeping its keys and
        alert states; nodes and constraints it lacks (Python ones
        registered here too) are removed. A spec can keep, drop or re-wire
        Python nodes but not add them: register those from code.
        Returns ``{"version": N, "changes": [...]}``.
        """
        if isinstance(config, dict):
            import json

            return self._engine.apply(json.dumps(config), True)
        return self._engine.apply(os.fspath(config), False)

    # -- data in ----------------------------------------------------------------------

    def push(self, stream: str, value: Any, key: str = "", ts: TimeLike | None = None) -> None:
        """Pushes one sample (or, given a NumPy array or list, a batch for ``key``).

        ``ts`` (default: now) is any time: ns since the epoch (int), seconds
        (float, e.g. ``time.time()``), an ISO 8601 string or a datetime.
        Raises ``RejectedError`` when the sample breaks the stream's bounds.
        """
        if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
            report = self.push_many(stream, value, keys=key, ts=ts)
            if report["rejected"]:
                index, reason = report["errors"][0]
                raise _dav2d.RejectedError(
                    f"{report['rejected']} of the batch rejected (the others were applied); first at index {index}: {reason}"
                )
            return
        if not self._running:
            self.validate()
        self._engine.push(stream, value, key, _ns(ts, "ts"))

    def push_many(
        self,
        stream: str,
        values: Any,
        keys: str | Sequence[str] | None = None,
        ts: Any = None,
    ) -> dict[str, Any]:
        """Pushes a batch of numbers: ``values`` a float64 array or sequence,
        ``keys`` one key or one per value, ``ts`` optional: one time for all,
        or one per value (an int64 ns array, a float array of seconds, a
        ``datetime64`` array, or a sequence of any times ``push`` takes).

        Good samples are applied beside rejected ones; returns
        ``{"accepted": n, "rejected": m, "errors": [(index, reason), ...]}``.
        """
        if type(values).__name__ == "ndarray" and str(values.dtype) != "float64":
            values = values.astype("float64")
        if not self._running:
            self.validate()
        return self._engine.push_many(stream, values, keys, _ns_array(ts))

    # -- reading ----------------------------------------------------------------------

    def latest(self, name: str, key: str = "", *, sample: bool = False) -> Any:
        """The latest value of ``name`` for ``key`` (None before any).

        Raises ``NodeError`` with the traceback while that node's key is
        failing; ``sample=True`` returns a :class:`Sample` with ``.error``
        instead of raising.
        """
        return self._run().latest(name, key, sample)

    def latest_all(self, name: str) -> dict[str, _dav2d.Sample]:
        """Every key of ``name`` with its latest :class:`Sample`."""
        return self._run().latest_all(name)

    def window(self, name: str, key: str = "", n: int = DEFAULT_WINDOW) -> _dav2d.Window:
        """The newest ``n`` samples of ``name`` for ``key`` as a zero-copy :class:`Window`."""
        return self._run().window(name, key, n)

    def subscribe(
        self,
        name: str,
        callback: Callable[[_dav2d.Update], Any] | None = None,
        *,
        mode: str = "every",
        capacity: int = 1024,
    ) -> _dav2d.Subscription | CallbackSubscription:
        """Subscribes to changes of a stream, node or constraint.

        Without ``callback``, returns an iterator of :class:`Update` (blocking;
        ``.get(timeout)`` waits a bounded time). With ``callback``, calls it
        for each update on a daemon thread. ``mode="every"`` delivers every
        change while the reader keeps up and conflates per key beyond
        ``capacity`` waiting; ``mode="latest"`` keeps only the newest per key.
        """
        subscription = self._run().subscribe(name, mode, capacity)
        if callback is None:
            return subscription
        handle = CallbackSubscription(subscription, callback)
        self._callbacks.append(handle)
        return handle

    def stats(self) -> dict[str, Any]:
        """Counters: samples in, accepted, rejected (by reason), evaluations,
        conflated, errors, cutoffs, waves, transitions, and per node; while
        persisting, ``"persistence"`` holds the store's counters (records
        persisted, checkpoints, file actions used and left today, the budget,
        the schedule in force and the current problem, if any)."""
        stats = self._run().stats()
        if self._persistence is not None:
            stats["persistence"] = self._persistence.stats()
        return stats

    def nodes(self) -> list[dict[str, Any]]:
        """Every node in evaluation (topological) order: a dict each with
        ``name``, ``kind``, ``logic``, ``inputs`` (``(name, window, policy,
        seconds)`` tuples: ``seconds`` is a time window's length, None for a
        count window, whose ``window`` is then the samples it sees), ``priority``,
        ``deadband`` and ``keys``."""
        return self._run().nodes()

    # -- time -------------------------------------------------------------------------

    def tick(self) -> int:
        """Checks constraint timers (``for_``, ``stale_after``) now; returns transitions."""
        return self._run().tick()

    def advance_clock(self, seconds: float) -> int:
        """Moves a manual clock forward and ticks (graphs made with ``manual_clock=True``)."""
        return self._run().advance_clock(seconds)

    def serve(
        self,
        config: str | None = None,
        *,
        http: str | None = None,
        tcp: str | None = None,
        token: str | None = None,
        max_body: int | None = None,
        workers: int | None = None,
        data: str | None = None,
    ) -> _dav2d.Server:
        """Runs the YAML ``config`` (if given) in this process, feeding this graph.

        The same runtime as ``dav2d run``: the config's streams, nodes and
        constraints are added to this graph, its ``sources:`` and ``sinks:``
        start, and the HTTP API and TCP server listen as its ``http``, ``tcp``
        and ``ingest`` sections say. The keywords override it: ``http``/``tcp``
        are ``"host:port"`` or ``"off"`` (defaults 127.0.0.1:8080 and
        127.0.0.1:7070), ``token`` a bearer token, ``max_body`` in bytes,
        ``workers`` the parser pool size, ``data`` a store directory or
        ``"off"`` (by default a Python graph persists only when the config
        has a ``persistence`` section; see also :meth:`persist`). Returns a
        :class:`Server`; ``stop()`` stops it in order (sources, a last wave,
        sinks, the store's checkpoint).
        """
        return _dav2d.serve(
            self._run(),
            config,
            http=http,
            tcp=tcp,
            token=token,
            max_body=max_body,
            workers=workers,
            data=data,
        )

    def persist(
        self,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002 - the config's name
        *,
        config: str | None = None,
        flush_interval: float | None = None,
        checkpoint_interval: float | None = None,
        fsync: str | None = None,
        max_file_actions_per_day: int | None = None,
        retention: float | None = None,
        segment_size: int | None = None,
        streams: Sequence[str] | None = None,
        pixels: Sequence[str] | None = None,
    ) -> _dav2d.Persistence:
        """Persists this graph to a store directory (default ``./dav2d-data``).

        Restores the graph from the store first (register the same nodes
        before calling it), then logs every node output and constraint state
        (and the raw ``streams`` listed), makes them durable every
        ``flush_interval`` seconds, checkpoints every ``checkpoint_interval``
        seconds and rolls the log into Parquet history, all within
        ``max_file_actions_per_day``. Settings come from the ``persistence``
        section of the YAML ``config`` (if given), then the keywords
        (durations in seconds, ``fsync`` one of ``"always"``, ``"batch"``,
        ``"off"``). Returns a :class:`Persistence`; :meth:`close` (or its
        ``stop()``) flushes and checkpoints one last time.

        Frames are stored as their description (seq, ts, size, format,
        skipped), never their pixels, except for the frame streams and frame
        nodes named in ``pixels``: their frames are logged and checkpointed
        whole (W x H x bytes per pixel each), so after a restart
        ``latest(name)`` is the last frame again. Persist a ``downscale``
        node's small frames rather than a full-size camera.
        """
        if self._persistence is not None and self._persistence.running:
            raise _dav2d.Dav2dError(
                f"this graph is already persisted to {self._persistence.dir}; stop() the Persistence that persist() returned before persisting it again"
            )
        self._persistence = _dav2d.persist(
            self._run(),
            None if dir is None else os.fspath(dir),
            config=config,
            flush_interval=flush_interval,
            checkpoint_interval=checkpoint_interval,
            fsync=fsync,
            max_file_actions_per_day=max_file_actions_per_day,
            retention=retention,
            segment_size=segment_size,
            streams=None if streams is None else list(streams),
            pixels=None if pixels is None else list(pixels),
        )
        return self._persistence

    def history(
        self,
        name: str | None,
        key: str | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        *,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002
    ) -> Any:
        """The persisted history of ``name`` as a ``pyarrow.Table``; see :func:`read_history`.

        ``dir`` defaults to where this graph persists (else ``./dav2d-data``).
        """
        if dir is None:
            dir = self._persistence.dir if self._persistence is not None else "dav2d-data"  # noqa: A001
        return read_history(dir, name, key, since, until)

    def close(self) -> None:
        """Stops persistence (flushing and checkpointing), callback
        subscriptions, the timer thread and the offload workers."""
        if self._persistence is not None:
            self._persistence.stop()
        for handle in self._callbacks:
            handle.close()
        self._callbacks.clear()
        self._engine.stop_ticker()
        self._engine.stop_workers()


def _keep(keep: int | None, history: int | None) -> int | None:
    """``keep``, or its former name ``history``; not both."""
    if keep is not None and history is not None:
        raise _dav2d.InvalidType("give keep= (history= is its former name), not both")
    return history if keep is None else keep


def _inputs(
    inputs: Sequence[InputLike], window: WindowLike, max_samples: int | None, policy: str, node: str
) -> list[tuple[str, int, int | None, str]]:
    resolved = []
    for item in inputs:
        if isinstance(item, str):
            resolved.append((item, *_window(window, max_samples, f"node {node!r}"), policy))
        elif isinstance(item, tuple) and len(item) == 2:
            resolved.append((item[0], *_window(item[1], max_samples, f"node {node!r}, input {item[0]!r}"), policy))
        else:
            raise _dav2d.InvalidType(f"an input is a name or a (name, window) tuple, got {item!r}")
    return resolved


class Node:
    """A transform from one or more inputs to an output stream named ``name``.

    ``logic`` is a Python callable receiving one :class:`Window` per input
    (the newest samples for one key) and returning the new value, or None for
    no output. Alternatively ``builtin``/``params`` name a native transform
    (see :mod:`dav2d.nodes`).

    The shortest form, one function over one stream::

        Node(name="temp_avg", logic=moving_average, input_source="sensor_stream").register()

    ``inputs``: names or ``(name, window)`` tuples (instead of
    ``input_source``). ``window``: what the logic sees of each input: the
    newest N samples (an int, default 16), or the samples of the last
    duration on event time (``"30s"``, ``"1m"``, a ``timedelta``): those
    whose timestamp is within that duration of the newest one. A time window
    keeps at most ``max_samples`` (default :data:`DEFAULT_SPAN_SAMPLES`);
    when more fall within the duration the oldest are left out and counted as
    ``stats()["nodes"][name]["window_overflow"]``. Built-ins take a window
    too, as in YAML: ``dav2d.nodes.moving_average("avg", "temp", window="30s")``,
    or ``window=8`` for the newest 8 (their length ``n``; give one of the two).
    ``policy``: ``"latest"`` evaluates once per wave on the newest sample,
    ``"all"`` once per sample. ``priority``: higher runs first among
    independent nodes. ``deadband``: output changes smaller than this wake no
    children. ``returns``: ``"number"`` (anything else is an error state) or
    ``"any"``. ``logic_batch`` (instead of ``logic``): a callable run once
    per wave for every key that wave evaluates, for logic written over
    arrays (with ``policy="all"``, a batch of many samples for one key is
    one call too, with a row per sample: the window ending at it). It
    receives one read-only 2-D float64 NumPy array per input, a row per key
    (or sample) and a column per window position, oldest first (a key with
    fewer samples than the window is padded with NaN on the left), and
    returns one number per row (a sequence or a 1-D array; None or NaN: no
    output for that key). An exception fails every key of the call, with
    its traceback. ``offload``: run the logic on a worker thread outside the wave
    (slow logic: a model, heavy Python), so it never holds the engine; its
    output enters in a later wave, newer inputs replace pending ones while a
    call runs (counted as conflated), and ``stats()["nodes"][name]["lag_s"]``
    says how far behind it is.
    """

    def __init__(
        self,
        name: str,
        logic: Callable[..., Any] | None = None,
        input_source: str | None = None,
        *,
        inputs: Sequence[InputLike] | None = None,
        window: WindowLike | None = None,
        max_samples: int | None = None,
        priority: int = 0,
        deadband: float | None = None,
        policy: str = "latest",
        returns: str = "number",
        builtin: str | None = None,
        params: dict[str, float] | None = None,
        graph: Graph | None = None,
        offload: bool = False,
        logic_batch: Callable[..., Any] | None = None,
    ) -> None:
        if inputs is None:
            if input_source is None:
                raise _dav2d.InvalidArgument(f"node {name!r} needs an input: pass input_source= or inputs=")
            inputs = [input_source]
        elif input_source is not None:
            inputs = [input_source, *inputs]
        if sum(x is not None for x in (logic, builtin, logic_batch)) != 1:
            raise _dav2d.InvalidArgument(f"node {name!r} needs exactly one of logic=, logic_batch= or builtin=")
        self.batch = logic_batch is not None
        logic = logic if logic_batch is None else logic_batch
        self.name = name
        self.logic = logic
        self.inputs = list(inputs)
        self.window = window
        self.max_samples = max_samples
        self.priority = priority
        self.deadband = deadband
        self.policy = policy
        self.returns = returns
        self.builtin = builtin
        self.params = dict(params or {})
        self.graph = graph
        self.offload = offload

    def register(self, graph: Graph | None = None) -> Node:
        """Adds the node to ``graph`` (default: the default graph) and returns it.

        Raises ``GraphError`` for a cycle, an unknown input (with
        ``auto_create_streams=False``), a duplicate name or a window of 0.
        """
        graph = graph or self.graph or default_graph()
        # A built-in's window, when written, sets its length `n` (as YAML's
        # `window:` does); left out, the engine widens it to what `n` needs.
        given = self.window is not None or any(isinstance(i, tuple) for i in self.inputs)
        window = self.window
        if window is None:
            window = 1 if self.builtin is not None else DEFAULT_WINDOW
        graph._engine.register_node(
            self.name,
            _inputs(self.inputs, window, self.max_samples, self.policy, self.name),
            logic=self.logic,
            builtin=self.builtin,
            params=self.params or None,
            priority=self.priority,
            deadband=self.deadband,
            returns=self.returns,
            offload=self.offload,
            window_given=self.builtin is not None and given,
            defer=not graph._running,
            batch=self.batch,
        )
        self.graph = graph
        return self

    def latest(self, key: str = "") -> Any:
        """This node's latest output for ``key``."""
        return (self.graph or default_graph()).latest(self.name, key)

    def __repr__(self) -> str:
        what = self.builtin or getattr(self.logic, "__name__", "logic")
        return f"Node(name={self.name!r}, logic={what}, inputs={self.inputs!r})"


class Constraint:
    """An alert per key over one numeric input, with hysteresis and timers.

    Trips when the input reaches ``trip`` (or falls to it with
    ``direction="below"``, as a config's ``direction:`` says; ``below=True``
    is the older spelling), clears at ``reset`` (default ``trip``). ``for_``
    (a config's ``for:``, which YAML also takes as ``for_``): seconds the
    condition must hold before tripping. ``stale_after``: seconds without
    an update after which the key is ``"stale"``. The state per key
    (``"ok"``, ``"tripped"``, ``"stale"``) is a stream named ``name``;
    subscribe to it to receive transitions.
    """

    def __init__(
        self,
        name: str,
        input: str,  # noqa: A002 - the product's vocabulary
        *,
        trip: float,
        reset: float | None = None,
        direction: str | None = None,
        below: bool = False,
        for_: float = 0.0,
        stale_after: float | None = None,
        policy: str = "latest",
        priority: int = 0,
        graph: Graph | None = None,
    ) -> None:
        self.name = name
        self.input = input
        self.trip = trip
        self.reset = reset
        if direction not in (None, "above", "below"):
            raise _dav2d.InvalidArgument(f"direction={direction!r}: give 'above' or 'below'")
        if direction is not None and below and direction != "below":
            raise _dav2d.InvalidArgument("direction='above' and below=True disagree; give direction only")
        self.below = below or direction == "below"
        self.for_ = for_
        self.stale_after = stale_after
        self.policy = policy
        self.priority = priority
        self.graph = graph

    def register(self, graph: Graph | None = None) -> Constraint:
        """Adds the constraint to ``graph`` (default: the default graph) and returns it."""
        graph = graph or self.graph or default_graph()
        graph._engine.register_constraint(
            self.name,
            self.input,
            trip=self.trip,
            reset=self.reset,
            below=self.below,
            hold=self.for_,
            stale_after=self.stale_after,
            policy_name=self.policy,
            priority=self.priority,
            defer=not graph._running,
        )
        self.graph = graph
        return self

    def state(self, key: str = "") -> str | None:
        """The constraint's state for ``key``: ``"ok"``, ``"tripped"``, ``"stale"`` or None."""
        return (self.graph or default_graph()).latest(self.name, key)

    def tripped(self) -> list[str]:
        """The keys currently tripped."""
        samples = (self.graph or default_graph()).latest_all(self.name)
        return sorted(key for key, s in samples.items() if s.value == "tripped")

    def __repr__(self) -> str:
        return f"Constraint(name={self.name!r}, input={self.input!r}, trip={self.trip}, reset={self.reset})"


def read_history(
    dir: str | os.PathLike[str],  # noqa: A002 - the config's name
    name: str | None,
    key: str | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
) -> Any:
    """The history in store directory ``dir`` of ``name`` (every name if None), optionally one
    ``key``, from ``since`` (inclusive) to ``until`` (exclusive), as a
    ``pyarrow.Table`` with columns ``ts`` (timestamp[ns, UTC]), ``name``,
    ``key``, ``value`` (float64, null for text) and ``state`` (string:
    constraint states and text values, null for numbers).

    Reads the store's Parquet history and the log not yet rolled into it,
    without changing anything (a running store may be writing it). Needs
    ``pyarrow`` (``pip install pyarrow``).
    """
    try:
        import pyarrow as pa
    except ImportError:
        raise ImportError("dav2d.history() returns a pyarrow Table: pip install pyarrow") from None
    columns = _dav2d.history(os.fspath(dir), name, key, _ns(since, "since"), _ns(until, "until"))
    return pa.table(
        {
            "ts": pa.array(columns["ts"], type=pa.timestamp("ns", tz="UTC")),
            "name": pa.array(columns["name"], type=pa.string()),
            "key": pa.array(columns["key"], type=pa.string()),
            "value": pa.array(columns["value"], type=pa.float64()),
            "state": pa.array(columns["state"], type=pa.string()),
        }
    )


_default: Graph | None = None
_default_lock = threading.Lock()


def default_graph() -> Graph:
    """The process-wide graph the module-level functions use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Graph()
        return _default


def reset() -> Graph:
    """Replaces the default graph with an empty one (handy in tests and notebooks)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = Graph()
        return _default
