"""Run a tracker over sequences, in parallel processes, writing got10k's result layout.

Each sequence's boxes and times are written atomically as soon as it finishes,
so an interrupted evaluation resumes with the sequences that have no record yet.
A sequence that fails (a corrupt frame, say) is reported and the rest go on.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.sequences import Sequence
from ..errors import InputError
from ..files import write_text
from ..tracking.factory import TrackerSpec, build_tracker
from ..tracking.siamfc import run_tracker
from ..workers import new_pool, terminate

def otb_record(result_dir: str, name: str, seq: str) -> tuple[str, str]:
    """got10k's OTB-family layout: NAME/SEQ.txt and NAME/times/SEQ_time.txt."""
    return (os.path.join(result_dir, name, f"{seq}.txt"),
            os.path.join(result_dir, name, "times", f"{seq}_time.txt"))


def got10k_record(result_dir: str, name: str, seq: str) -> tuple[str, str]:
    """got10k's GOT-10k layout: NAME/SEQ/SEQ_001.txt and NAME/SEQ/SEQ_time.txt."""
    return (os.path.join(result_dir, name, seq, f"{seq}_001.txt"),
            os.path.join(result_dir, name, seq, f"{seq}_time.txt"))


def write_record(paths: tuple[str, str], boxes: np.ndarray, times: np.ndarray) -> None:
    """Times first, boxes last: a record's box file marks it complete."""
    write_text(paths[1], "".join(f"{t:.8f}\n" for t in times))
    write_text(paths[0], "".join(",".join(f"{v:.3f}" for v in b) + "\n" for b in boxes))


_WORKER: dict[str, Any] = {}
_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}


def _set_threads(threads: int) -> int:
    """PyTorch's and OpenCV's thread counts (OpenCV's DNN runs the peers); returns PyTorch's previous one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return previous


def _tracker(spec: TrackerSpec) -> Any:
    """The worker's tracker for ``spec``, built once and reused while the spec stays the same."""
    key = spec.key()
    if _WORKER.get("key") != key:
        _WORKER.update(key=key, tracker=build_tracker(spec))
    return _WORKER["tracker"]


def _track_one(spec: TrackerSpec, seq: Sequence, records: list[tuple[str, str]]) -> tuple[str, int, str | None]:
    try:
        boxes, times = run_tracker(_tracker(spec), seq.frames, seq.boxes[0])
    except InputError as e:
        return seq.name, len(seq), str(e)
    for paths in records:
        write_record(paths, boxes, times)
    return seq.name, len(seq), None


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """A pool that lives as long as this process: spawning workers (each imports torch)
    once, not for every evaluation, matters when compression scores dozens of checkpoints."""
    key = (workers, threads)
    if key not in _POOLS:
        _POOLS[key] = new_pool(workers, _set_threads, (threads,))
    return _POOLS[key]


def run_sequences(spec: TrackerSpec, sequences: list[Sequence], record_dirs: list[tuple[str, str]],
                  workers: int = 1, threads: int | None = None) -> dict[str, str]:
    """Track every sequence without a finished record; returns failures (name -> error).

    ``record_dirs`` lists ``(layout, result_dir)`` pairs with layout "otb" or
    "got10k"; each finished sequence is written in every listed layout.
    """
    layout = {"otb": otb_record, "got10k": got10k_record}
    name = spec.tracker_name
    todo = []
    for seq in sequences:
        records = [layout[kind](root, name, seq.name) for kind, root in record_dirs]
        if not all(os.path.exists(r[0]) for r in records):
            todo.append((seq, records))
    failed: dict[str, str] = {}
    if not todo:
        return failed
    workers = max(1, min(workers, len(todo)))
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    bar = tqdm(total=len(todo), desc=f"tracking {name}", unit="seq")
    if workers == 1:
        previous = _set_threads(threads)
        try:
            for seq, records in todo:
                _collect(_track_one(spec, seq, records), failed, bar)
        finally:
            _set_threads(previous)
            _WORKER.clear()
    else:
        pool = worker_pool(workers, threads)
        try:
            futures = [pool.submit(_track_one, spec, seq, records) for seq, records in todo]
            for fut in as_completed(futures):
                _collect(fut.result(), failed, bar)
        except BrokenProcessPool:
            _POOLS.pop((workers, threads), None)
            raise
        except BaseException:   # Ctrl-C, SIGTERM or a failure: no worker may outlive it
            terminate(_POOLS.pop((workers, threads)))
            raise
    bar.close()
    return failed


def _collect(result: tuple[str, int, str | None], failed: dict[str, str], bar: tqdm) -> None:
    name, _, error = result
    if error:
        failed[name] = error
        tqdm.write(f"failed: {error}")
    bar.update(1)
