"""Writing ``bench/RESULTS.md``: the machine's description and the table of
figures ``bench/run.py`` measured, beside the soak section ``make soak``
appended."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def write_results(rows, repeats: int) -> None:
    """Writes `rows` (name, figure, bar, peer, verdict) as bench/RESULTS.md's
    table, keeping the section `make soak` appended last."""
    today = datetime.date.today().isoformat()
    lines = [
        "# Benchmark results",
        "",
        f"Measured {today} on {machine()} with `make bench`.",
        "The machine is shared and noisy: compare the ratios, measured in the same run, not the absolute times.",
        "Each figure is the best of 3 repetitions (latencies: the run with the lowest p99), for dav2d and its peer alike;",
        f"the wrk figures are one 10 s run each for dav2d and nginx; the processor figures are the fastest call of {repeats * 6} turns of 5",
        "back-to-back calls each, the three contenders taking turns, and its verdicts the median of the per-turn ratios.",
        "",
        "| benchmark | dav2d | bar | peer (same run) | result |",
        "|---|---|---|---|---|",
    ]
    for name, figure, bar, peer, verdict in rows:
        lines.append(f"| {name} | {figure} | {bar} | {peer} | {verdict} |")
    # `make soak` appends its own section: keep the latest one.
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    soak = previous[previous.rfind("## Soak"):] if "## Soak" in previous else ""
    RESULTS.write_text("\n".join(lines) + "\n" + ("\n" + soak if soak else ""))
    print(f"\nWrote {RESULTS}")
