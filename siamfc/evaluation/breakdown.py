"""Where one tracker beats another: AO per band of target motion.

A tracker built on random weights matches templates well while the target barely
moves, and loses it once the target moves far between frames; a trained one
should hold on. Splitting the sequences by how far the target moves per frame
(centre displacement over its first size) shows where a gap between two trackers
comes from, from records already on disk.
"""
from __future__ import annotations

import ast
import os
from typing import Any

import numpy as np
from got10k.utils.metrics import rect_iou

from ..data.sequences import Sequence


def motion(seq: Sequence) -> float:
    """Mean centre displacement per frame over the target's first size, where both frames show it."""
    boxes = seq.boxes
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    size = float(np.sqrt(boxes[0, 2] * boxes[0, 3]))
    return float(np.nanmean(step) / size) if np.isfinite(step).any() else 0.0


def _visible(seq: Sequence) -> np.ndarray:
    """Frames after the first that count for AO: those where the target shows (GOT-10k's absence rule)."""
    cover = seq.meta.get("cover")
    shown = np.asarray(cover)[1:] > 0 if cover is not None else np.ones(len(seq) - 1, bool)
    return shown & np.isfinite(seq.boxes[1:]).all(1)


def sequence_ious(seq: Sequence, record: str) -> np.ndarray:
    """IoU on each frame that counts, for one got10k-layout record."""
    pred = np.loadtxt(record, delimiter=",", ndmin=2)
    keep = _visible(seq)
    res = seq.meta.get("resolution")   # got10k bounds boxes by the frame, as its AO does
    bound = ast.literal_eval(res) if isinstance(res, str) else None
    return rect_iou(pred[1:][keep], seq.boxes[1:][keep], bound=bound)


def ao_by_motion(sequences: list[Sequence], results: str, names: dict[str, str],
                 bands: int = 4) -> dict[str, Any]:
    """AO of each tracker (``key -> got10k result name`` under ``results``) in ``bands`` equal-count
    bands of target motion, slowest first; AO pools frames as got10k does, None where a band has no frame."""
    speed = np.array([motion(s) for s in sequences])
    edges = np.quantile(speed, np.linspace(0, 1, bands + 1))
    band = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, bands - 1)
    out: dict[str, Any] = {"edges": [round(float(e), 4) for e in edges],
                           "sequences": np.bincount(band, minlength=bands).tolist(), "ao": {}}
    for key, name in names.items():
        sums, counts = np.zeros(bands), np.zeros(bands)
        for seq, b in zip(sequences, band):
            ious = sequence_ious(seq, os.path.join(results, name, seq.name, f"{seq.name}_001.txt"))
            sums[b] += ious.sum()
            counts[b] += len(ious)
        out["ao"][key] = [float(s / c) if c else None for s, c in zip(sums, counts)]   # None: no frame counts
    return out
