"""Where a tracker's per-frame time goes: the parts of one ``update()`` call.

A tracker owns a :class:`FrameProfile` and marks the end of each part as it runs.
Off (the default) a mark is one attribute test; on, it is one ``perf_counter``
call (about 0.1 us), so a profiled run times the same code that tracks.
"""
from __future__ import annotations

import statistics
import time

# The parts of SiamFC's update(), in the order they run.
PARTS = ("crop", "backbone", "correlation", "upsample", "peak", "state")


class FrameProfile:
    """Per-part seconds of every profiled ``update()`` call."""

    def __init__(self) -> None:
        self.enabled = False
        self.times: dict[str, list[float]] = {p: [] for p in PARTS}
        self._last = 0.0

    def start(self) -> None:
        if self.enabled:
            self._last = time.perf_counter()

    def mark(self, part: str) -> None:
        """The part that has just ended."""
        if self.enabled:
            now = time.perf_counter()
            self.times[part].append(now - self._last)
            self._last = now

    def reset(self) -> None:
        self.times = {p: [] for p in PARTS}

    def medians_ms(self) -> dict[str, float]:
        """Median milliseconds of each part over the profiled frames, plus ``outside``:
        the median of each frame's total of every part but the backbone."""
        frames = len(self.times["state"])
        if not frames:
            raise ValueError("no profiled update() calls")
        out = {p: 1e3 * statistics.median(t) for p, t in self.times.items()}
        outside = [sum(self.times[p][i] for p in PARTS if p != "backbone") for i in range(frames)]
        out["outside"] = 1e3 * statistics.median(outside)
        out["total"] = 1e3 * statistics.median(sum(self.times[p][i] for p in PARTS) for i in range(frames))
        return out
