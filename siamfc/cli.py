"""Shared plumbing of the command-line tools in ``tools/``."""
from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import InputError


def run(main: Callable[[], int | None]) -> None:
    """Run a tool's ``main``; bad input ends with a one-line message, not a traceback."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # plots are written to files, never shown
    try:
        code = main()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
