"""How the benchmarks time a call: the fastest of a few repetitions."""

from __future__ import annotations

import time


def fastest(repeats, run) -> float:
    """The fewest seconds ``run()`` took over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of(repeats, run):
    """Runs ``run()`` (returning seconds, extra) ``repeats`` times; keeps the fastest."""
    results = [run() for _ in range(repeats)]
    return min(results, key=lambda r: r[0])
