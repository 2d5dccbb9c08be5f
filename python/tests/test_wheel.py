"""``pip install`` of the wheel the project builds: a fresh venv gets the
library and the ``dav2d`` command (the same command line as the Rust
binary), ``dav2d check`` works from it, and the README's Python tour runs
against the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]


def test_the_wheel_installs_the_library_and_the_dav2d_command(tmp_path: Path) -> None:
    maturin = Path(sys.executable).parent / "maturin"
    # A debug build (what `make test` already compiled); `make wheel` builds
    # the release one the same way.
    built = run(maturin, "build", "-q", "-o", tmp_path / "dist", "--compatibility", "linux", cwd=ROOT)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("dav2d-*.whl")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    installed = run(venv / "bin" / "pip", "install", "-q", f"{wheel}[history]", "pytest")
    assert installed.returncode == 0, installed.stderr[-3000:]
    dav2d = venv / "bin" / "dav2d"
    assert dav2d.is_file(), "the wheel installs the dav2d command"
    helped = run(dav2d, "--help")
    assert helped.returncode == 0 and "latest valid snapshot" in helped.stdout, helped
    config = tmp_path / "graph.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            streams:
              - name: temperature
            nodes:
              - name: avg
                kind: moving_average
                n: 5
                input: temperature
            """
        )
    )
    checked = run(dav2d, "check", config)
    assert checked.returncode == 0 and f"{config}: ok" in checked.stdout, checked
    bad = tmp_path / "bad.yaml"
    bad.write_text("streams:\n  - name: t\nnodes:\n  - name: a\n    kind: moving_avg\n    input: t\n")
    refused = run(dav2d, "check", bad)
    assert refused.returncode == 1 and f"{bad}:5:11: nodes[0].kind" in refused.stderr, refused
    # The README's tour against the installed package (not this checkout).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["DAV2D_EXPECT_INSTALLED"] = "1"
    tour = run(
        venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        ROOT / "python" / "tests" / "test_readme.py", "-k", "python_tour",
        cwd=tmp_path, env=env,
    )
    assert tour.returncode == 0, tour.stdout[-3000:] + tour.stderr[-2000:]
