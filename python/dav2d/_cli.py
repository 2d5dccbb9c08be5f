"""The ``dav2d`` console command of the installed package: ``dav2d run``,
``check``, ``inspect`` and ``export``, run by the same Rust code as the
``dav2d`` binary (so a wheel from ``pip install`` is all a user needs)."""

from __future__ import annotations

import sys

from . import _dav2d


def main() -> None:
    """Runs ``sys.argv`` as a ``dav2d`` command line and exits with its status."""
    sys.exit(_dav2d.cli(["dav2d", *sys.argv[1:]]))
