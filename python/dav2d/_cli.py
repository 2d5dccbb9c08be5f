"""The ``dav2d`` console command of the installed package: ``dav2d run``,
``check``, ``inspect`` and ``export``, run by the same Rust code as the
``dav2d`` binary (so a wheel from ``pip install`` is all a user needs)."""

from __future__ import annotations

import signal
import sys

from . import _dav2d


def main() -> None:
    """Runs ``sys.argv`` as a ``dav2d`` command line and exits with its status."""
    # The command stops in order on SIGINT and SIGTERM by itself, as the
    # binary does; Python's own SIGINT handler would then raise
    # KeyboardInterrupt as the command returns, and exit as if killed.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_dav2d.cli(["dav2d", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
