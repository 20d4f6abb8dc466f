"""Process pools that never outlive the job that started them.

A worker asks the kernel to send it SIGTERM when its parent dies (Linux), so even
a SIGKILLed job leaves no worker behind; a job stopped by an exception, Ctrl-C or
SIGTERM (see :mod:`siamfc.cli`) terminates its pools' workers on the way out.
"""
from __future__ import annotations

import atexit
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import weakref
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

_LIVE: "weakref.WeakSet[ProcessPoolExecutor]" = weakref.WeakSet()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
        if os.getppid() == 1:   # the parent is already gone
            os._exit(1)


def _init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)


def new_pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = (),
             start_method: str = "spawn") -> ProcessPoolExecutor:
    """A process pool whose workers die with this process; :func:`terminate` ends it."""
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context(start_method), initializer=_init,
                               initargs=(initializer, initargs))
    _LIVE.add(pool)
    return pool


def terminate(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: cancel queued work and kill its worker processes."""
    processes = list(getattr(pool, "_processes", {}).values())   # no public handle in Python < 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    _LIVE.discard(pool)


def terminate_all() -> None:
    for pool in list(_LIVE):
        terminate(pool)


@contextmanager
def pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = (),
         start_method: str = "spawn") -> Iterator[ProcessPoolExecutor]:
    """A pool for one block: shut down normally, or terminated if the block fails."""
    executor = new_pool(workers, initializer, initargs, start_method)
    try:
        yield executor
    except BaseException:
        terminate(executor)
        raise
    executor.shutdown()
    _LIVE.discard(executor)


atexit.register(terminate_all)
