"""The notes' node logic, and its per-call cost in dav2d against a plain
Python loop (``bench/run.py`` row 2b)."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

import dav2d
from timing import best_of


def moving_average(data):
    """The original notes' node logic, unchanged."""
    return sum(data[-5:]) / 5


def python_call_shapes(keys: list[str], values: list[float], repeats: int = 3) -> dict:
    """The notes' function per sample three ways over the same data: as a
    dav2d node (batches of 1,000), as a dav2d ``logic_batch`` node over the
    wave's windows as one array, and in a plain loop that calls it on a list
    of a per-key deque window."""
    array = np.asarray(values, dtype=np.float64)

    def ma_batch(windows):
        return windows[:, -5:].sum(axis=1) / 5

    def dav2d_run(**logic):
        def run():
            graph = dav2d.Graph()
            dav2d.Node("avg", input_source="temp", window=5, policy="all", **logic).register(graph)
            start = time.perf_counter()
            for begin in range(0, len(values), 1000):
                graph.push_many("temp", array[begin : begin + 1000], keys=keys[begin : begin + 1000])
            seconds = time.perf_counter() - start
            assert graph.stats()["nodes"]["avg"]["evaluations"] == len(values)
            return seconds, None

        return best_of(repeats, run)[0]

    def plain():
        def run():
            windows: dict = {}
            out = {}
            start = time.perf_counter()
            for key, value in zip(keys, values):
                window = windows.get(key)
                if window is None:
                    window = windows[key] = deque(maxlen=5)
                window.append(value)
                out[key] = moving_average(list(window))
            return time.perf_counter() - start, None

        return best_of(repeats, run)[0]

    return {"call": dav2d_run(logic=moving_average), "batch": dav2d_run(logic_batch=ma_batch), "plain": plain()}
