"""Anchors of the SiamRPN family (Li et al., CVPR 2018; SiamRPN++, CVPR 2019).

Each cell of an ``S`` x ``S`` score map carries ``A`` anchors, one per
ratio (h / w) and scale. Cells sit ``stride`` pixels apart and the centre cell's
anchors on the search crop's centre pixel, ``(instance_sz - 1) / 2``: boxes are
``(cx, cy, w, h)`` in the search crop's 0-based pixels, as the training pairs give
them. (SiameseX puts the grid's origin at ``-(S / 2) * stride``, which Python 3 no
longer truncates, moving every anchor by ``-stride / 2``; here the grid is
symmetric, as in pysot.)

Channel layout of a head's outputs (pysot's and SiameseX's, read off their
trackers' ``view(2, -1)`` / ``view(4, -1)``): ``cls`` channel ``k * A + a`` is
class ``k`` of anchor ``a``, with ``k = 0`` background and ``k = 1`` target;
``loc`` channel ``c * A + a`` is coordinate ``c`` (dx, dy, dw, dh) of anchor ``a``.
Every array here puts the coordinate last: anchors are ``(A, S, S, 4)``.
"""
from __future__ import annotations

from types import ModuleType
from typing import Sequence, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def anchor_sizes(ratios: Sequence[float], scales: Sequence[float], stride: int) -> np.ndarray:
    """``(A, 2)`` anchor widths and heights, ratio-major: an anchor of ratio ``r`` and
    scale ``s`` covers ``stride**2 * s**2`` pixels with ``h / w ~ r``.

    The base width and height are truncated to whole pixels before scaling, as
    pysot and SiameseX do, because their trained regressors expect those sizes:
    ratio 0.33 gives 104 x 32 at scale 8, not 111 x 37.
    """
    sizes = []
    for r in ratios:
        w = int(np.sqrt(stride * stride / r))
        h = int(w * r)
        sizes.extend((w * s, h * s) for s in scales)
    return np.array(sizes, np.float32)


def make_anchors(ratios: Sequence[float], scales: Sequence[float], stride: int, size: int,
                 instance_sz: int) -> np.ndarray:
    """``(A, size, size, 4)`` anchors ``(cx, cy, w, h)`` in an ``instance_sz`` search crop;
    ``[a, i, j]`` belongs to row ``i``, column ``j`` of the score map."""
    wh = anchor_sizes(ratios, scales, stride)
    centres = (np.arange(size, dtype=np.float32) - (size - 1) / 2) * stride + (instance_sz - 1) / 2
    grid = np.empty((len(wh), size, size, 4), np.float32)
    grid[..., 0] = centres[None, None, :]
    grid[..., 1] = centres[None, :, None]
    grid[..., 2:] = wh[:, None, None, :]
    return grid


def split_cls(cls: torch.Tensor, anchor_num: int) -> torch.Tensor:
    """``(N, 2A, S, S)`` logits -> ``(N, A, S, S, 2)``: background, target."""
    n, _, h, w = cls.shape
    return cls.reshape(n, 2, anchor_num, h, w).permute(0, 2, 3, 4, 1)


def split_loc(loc: torch.Tensor, anchor_num: int) -> torch.Tensor:
    """``(N, 4A, S, S)`` deltas -> ``(N, A, S, S, 4)``: dx, dy, dw, dh."""
    n, _, h, w = loc.shape
    return loc.reshape(n, 4, anchor_num, h, w).permute(0, 2, 3, 4, 1)


def _lib(x: Array) -> ModuleType:
    return torch if isinstance(x, torch.Tensor) else np


def encode(boxes: Array, anchors: Array) -> Array:
    """Deltas that move ``anchors`` onto ``boxes`` (both ``(..., 4)`` cx, cy, w, h; they
    broadcast): ``dx = (x - xa) / wa``, ``dy = (y - ya) / ha``, ``dw = log(w / wa)``,
    ``dh = log(h / ha)``."""
    lib = _lib(boxes)
    return lib.stack([(boxes[..., 0] - anchors[..., 0]) / anchors[..., 2],
                      (boxes[..., 1] - anchors[..., 1]) / anchors[..., 3],
                      lib.log(boxes[..., 2] / anchors[..., 2]),
                      lib.log(boxes[..., 3] / anchors[..., 3])], -1)


def decode(deltas: Array, anchors: Array) -> Array:
    """Inverse of :func:`encode`: the boxes ``(..., 4)`` that ``deltas`` make of ``anchors``."""
    lib = _lib(deltas)
    return lib.stack([deltas[..., 0] * anchors[..., 2] + anchors[..., 0],
                      deltas[..., 1] * anchors[..., 3] + anchors[..., 1],
                      lib.exp(deltas[..., 2]) * anchors[..., 2],
                      lib.exp(deltas[..., 3]) * anchors[..., 3]], -1)


def iou(anchors: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of each ``(..., 4)`` anchor with one ``box`` (cx, cy, w, h),
    areas as continuous rectangles (``w * h``, as pysot's ``IoU``)."""
    box = np.asarray(box, np.float64)
    lo = np.maximum(anchors[..., :2] - anchors[..., 2:] / 2, box[:2] - box[2:] / 2)
    hi = np.minimum(anchors[..., :2] + anchors[..., 2:] / 2, box[:2] + box[2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = np.prod(anchors[..., 2:], axis=-1) + np.prod(box[2:]) - inter
    return inter / union
