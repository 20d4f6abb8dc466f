"""Update rates of several trackers measured side by side, so that their ratio survives a busy machine.

Timing one tracker over a whole benchmark and then the next lets a change of load (another job on the
same cores) fall on one of them only. Here every sequence's frames are decoded once and each tracker
runs them in turn, in an order that rotates from sequence to sequence; a tracker's rate is one over
its median ``update`` time (frame decoding excluded), which a few slow frames do not move. A ratio of
two trackers is best taken run by run (:func:`paired_speedup`): within one sequence's turn they ran
within a second of each other, under the same load.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import cv2
from tqdm import tqdm

from ..data.sequences import Sequence, read_frame
from ..tracking.factory import TrackerSpec, build_tracker
from ..tracking.ops import torch_threads


@dataclass
class Timing:
    fps: dict[str, float]               # name -> 1 / median update time over every frame
    runs: dict[str, list[float]]        # name -> median update seconds of each sequence run, aligned across names


def paired_speedup(timing: Timing, name: str, base: str) -> tuple[float, float, float]:
    """Median, lower and upper quartile over the sequence runs of ``base``'s time over ``name``'s."""
    ratios = [b / t for b, t in zip(timing.runs[base], timing.runs[name])]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return statistics.median(ratios), q[0], q[-1]


def interleaved_fps(specs: dict[str, TrackerSpec], sequences: list[Sequence], threads: int,
                    rounds: int = 1) -> Timing:
    """Every tracker on every frame ``rounds`` times, side by side, with ``threads`` PyTorch and OpenCV threads."""
    trackers = {name: build_tracker(spec) for name, spec in specs.items()}
    times: dict[str, list[float]] = {name: [] for name in specs}
    runs: dict[str, list[float]] = {name: [] for name in specs}
    names = list(trackers)
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        with torch_threads(threads):
            turn = 0
            for _ in range(rounds):
                for seq in tqdm(sequences, desc="timing side by side", unit="seq"):
                    frames = [read_frame(p) for p in seq.frames]
                    for name in names[turn % len(names):] + names[:turn % len(names)]:
                        tracker = trackers[name]
                        tracker.init(frames[0], seq.boxes[0])
                        run = []
                        for frame in frames[1:]:
                            start = time.perf_counter()
                            tracker.update(frame)
                            run.append(time.perf_counter() - start)
                        times[name] += run
                        runs[name].append(statistics.median(run))
                    turn += 1
    finally:
        cv2.setNumThreads(before)
    return Timing({name: 1.0 / statistics.median(t) for name, t in times.items()}, runs)
