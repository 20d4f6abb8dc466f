"""Boxes and crop geometry, shared by the crop job and the tracker.

Every interface uses ``x, y, w, h`` boxes in 1-based pixel coordinates (the OTB and
got10k convention). Inside the tracker a target is a 0-based centre and a size,
both in ``(row, col)`` = ``(y, x)`` order to match numpy's image indexing.
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
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


def context_size(size: np.ndarray, context: float) -> Any:
    """Side of SiamFC's exemplar region for a target ``size``: sqrt((w + p)(h + p)),
    p = context (w + h). A float for one size, an array for sizes along the last axis."""
    size = np.asarray(size, float)
    side = np.sqrt(np.prod(size + context * size.sum(-1, keepdims=True), axis=-1))
    return float(side) if side.ndim == 0 else side


def crop_region(img: np.ndarray, center: np.ndarray, size: float, out_size: int,
                fill: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Cut the square of side ``round(size)`` centred on ``center`` (row, col) and
    resize it to ``out_size`` x ``out_size`` (bilinear).

    Parts outside the frame take the colour ``fill``. Only the square itself is
    built (by ``copyMakeBorder`` around the part inside the frame, 20-50x faster
    than filling an array in numpy), never a padded copy of the whole frame; the
    pixels are identical to padding the frame and slicing, which is what SiamFC
    implementations do. ``out`` (out_size x out_size x C, uint8) receives the
    result when given.
    """
    if out is None:
        out = np.empty((out_size, out_size, img.shape[2]), img.dtype)
    resize_scales(img, center, [size], out_size, fill, out[None])
    return out


def fill_color(img: np.ndarray) -> np.ndarray:
    """The frame's mean colour as uint8 (round half to even, as cv2's saturate_cast)."""
    mean = np.asarray(cv2.mean(img)[:img.shape[2]])
    return np.clip(np.round(mean), 0, 255).astype(np.uint8)


def warp_region(img: np.ndarray, center: np.ndarray, size: float, out_size: int,
                fill: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`crop_region`'s square, sampled by one affine warp straight from the frame.

    The same map from output to frame pixels as resizing the square (pixel centres
    aligned), but the warp reads only the pixels it samples and paints the outside
    with ``fill`` itself, so no square is built: at 1280x720 with a large target
    that is 0.05 ms against 0.2-0.3 ms a crop. OpenCV's warp quantizes sample
    positions to 1/32 pixel, so pixels may differ from the resize's by a level or
    two, and at the square's edge it reads the frame where the resize repeats the
    edge pixel.
    """
    y0, x0, y1, _ = square(center, size)
    scale = (y1 - y0) / out_size
    shift = 0.5 * scale - 0.5
    m = np.array([[scale, 0.0, x0 + shift], [0.0, scale, y0 + shift]])
    border = tuple(int(v) for v in np.broadcast_to(fill, img.shape[2:]))
    return cv2.warpAffine(img, m, (out_size, out_size), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def square(center: np.ndarray, size: float) -> tuple[int, int, int, int]:
    """The pixel square of side ``round(size)`` centred on ``center``: y0, x0, y1, x1."""
    side = max(int(round(size)), 1)
    y0, x0 = (int(v) for v in np.round(center - (side - 1) / 2))
    return y0, x0, y0 + side, x0 + side


def resize_scales(img: np.ndarray, center: np.ndarray, sizes: Sequence[float], out_size: int,
                  fill: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`crop_region` for several sizes around one centre, into ``out`` (N, S, S, C).

    The squares are nested, so the frame is padded (where they leave it) once, around
    the largest, and each square is a view of that: the pixels equal
    :func:`crop_region`'s, at a third of the copying for SiamFC's three scales.
    """
    boxes = [square(center, s) for s in sizes]
    uy0, ux0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    uy1, ux1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    h, w = img.shape[:2]
    iy0, ix0, iy1, ix1 = max(uy0, 0), max(ux0, 0), min(uy1, h), min(ux1, w)
    if iy1 <= iy0 or ix1 <= ix0:   # wholly outside: constant squares resize to themselves
        out[:] = fill
        return out
    union = img[iy0:iy1, ix0:ix1]
    if (iy0, ix0, iy1, ix1) != (uy0, ux0, uy1, ux1):
        union = cv2.copyMakeBorder(union, iy0 - uy0, uy1 - iy1, ix0 - ux0, ux1 - ix1, cv2.BORDER_CONSTANT,
                                   value=tuple(int(v) for v in np.broadcast_to(fill, img.shape[2:])))
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        cv2.resize(union[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0], (out_size, out_size), dst=out[i],
                   interpolation=cv2.INTER_LINEAR)
    return out


def warp_scales(img: np.ndarray, center: np.ndarray, sizes: Sequence[float], out_size: int,
                fill: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`warp_region` for several sizes around one centre, into ``out`` (N, S, S, C)."""
    for i, size in enumerate(sizes):
        warp_region(img, center, size, out_size, fill, out=out[i])
    return out


# How the tracker cuts its squares (TrackerConfig.crop), all scales of a frame at once:
# ``resize`` is pixel-identical to the public code's padded-frame crops; ``warp`` is
# the same geometry sampled straight from the frame.
CROPS = {"resize": resize_scales, "warp": warp_scales}
