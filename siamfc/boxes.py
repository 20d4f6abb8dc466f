"""Box conventions.

Every interface uses ``x, y, w, h`` boxes in 1-based pixel coordinates (the OTB and
got10k convention). Inside the tracker a target is a 0-based centre and a size,
both in ``(row, col)`` = ``(y, x)`` order to match numpy's image indexing.
"""
from __future__ import annotations

import numpy as np


def to_center(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x, y, w, h`` (1-based) -> centre ``(cy, cx)`` (0-based) and size ``(h, w)``."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([y - 1 + (h - 1) / 2, x - 1 + (w - 1) / 2])
    return center, np.array([h, w])


def from_center(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_center`."""
    return np.array([
        center[1] + 1 - (size[1] - 1) / 2,
        center[0] + 1 - (size[0] - 1) / 2,
        size[1], size[0]])


def is_valid_box(box: np.ndarray) -> bool:
    box = np.asarray(box, dtype=float)
    return box.shape == (4,) and bool(np.all(np.isfinite(box))) and box[2] > 0 and box[3] > 0
