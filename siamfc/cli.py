"""Shared plumbing of the command-line tools in ``tools/``.

* :func:`run` turns bad input into one line on stderr and exit code 2, and a
  Ctrl-C or SIGTERM into a clean stop (worker processes ended, exit 130 / 143);
* :class:`ArgParser` reports a bad flag in one line with exit code 2, and the
  ``*_arg`` types check a flag's range or path before any work starts.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable

from .errors import InputError


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an exception so that cleanup code runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def run(main: Callable[[], int | None]) -> None:
    """Run a tool's ``main``; bad input ends with a one-line message, not a traceback."""
    from .workers import terminate_all

    os.environ.setdefault("MPLBACKEND", "Agg")  # plots are written to files, never shown
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = main()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except Terminated:
        terminate_all()
        print("terminated; run the same command again to resume", file=sys.stderr)
        code = 128 + signal.SIGTERM
    except KeyboardInterrupt:
        terminate_all()
        print("interrupted; run the same command again to resume", file=sys.stderr)
        code = 130
    sys.exit(code or 0)


class ArgParser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: TOOL: problem``) and exit code 2."""

    def __init__(self, doc: str | None, **kwargs: object) -> None:
        super().__init__(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _number(kind: type, low: float, strict: bool) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got '{text}'") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text} is out of range; it must be {'>' if strict else '>='} {low:g}")
        return value
    parse.__name__ = kind.__name__
    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _number(int, low, False)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{text} is out of range; it must be <= {high}")
        return value
    parse.__name__ = "int"
    return parse


count_arg = _number(int, 0, False)          # 0, 1, 2, ...
positive_int_arg = _number(int, 0, True)    # 1, 2, ...
positive_float_arg = _number(float, 0, True)


def fraction_arg(text: str) -> float:
    """A number in [0, 1)."""
    value = _number(float, 0, False)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} is out of range; it must be < 1")
    return value


def file_arg(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def dir_arg(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text
