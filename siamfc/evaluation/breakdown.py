"""Where one tracker beats another: AO per band of target motion.

A tracker built on random weights matches templates well while the target barely
moves, and loses it once the target moves far between frames; a trained one
should hold on. Splitting the sequences by how far the target moves per frame
(centre displacement over its first size) shows where a gap between two trackers
comes from. The per-sequence AOs are got10k's own (``sequence_ao`` of an
evaluation summary), pooled over the frames it counted.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.sequences import Sequence


def motion(seq: Sequence) -> float:
    """Mean centre displacement per frame over the target's first size, where both frames show it."""
    boxes = seq.boxes
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    size = float(np.sqrt(boxes[0, 2] * boxes[0, 3]))
    return float(np.nanmean(step) / size) if np.isfinite(step).any() else 0.0


def ao_by_motion(sequences: list[Sequence], summaries: dict[str, dict[str, Any]], bands: int = 4) -> dict[str, Any]:
    """AO of each tracker (``key -> its GOT-10k evaluation summary``) in ``bands`` equal-count bands of
    target motion, slowest first; AO pools frames as got10k does, None where a band has no frame."""
    speed = np.array([motion(s) for s in sequences])
    edges = np.quantile(speed, np.linspace(0, 1, bands + 1))
    band = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, bands - 1)
    out: dict[str, Any] = {"edges": [round(float(e), 4) for e in edges],
                           "sequences": np.bincount(band, minlength=bands).tolist(), "ao": {}}
    for key, summary in summaries.items():
        sums, counts = np.zeros(bands), np.zeros(bands)
        for seq, b in zip(sequences, band):
            n = summary["sequence_frames"][seq.name]
            if n:
                sums[b] += summary["sequence_ao"][seq.name] * n
                counts[b] += n
        out["ao"][key] = [float(s / c) if c else None for s, c in zip(sums, counts)]   # None: no frame counts
    return out
