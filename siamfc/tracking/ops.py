"""Image operations of the tracker."""
from __future__ import annotations

import cv2
import numpy as np


def crop_region(img: np.ndarray, center: np.ndarray, size: float, out_size: int,
                fill: np.ndarray) -> np.ndarray:
    """Cut the square of side ``round(size)`` centred on ``center`` (row, col) and
    resize it to ``out_size`` x ``out_size`` (bilinear).

    Parts outside the frame take the colour ``fill``. Only the square itself is
    allocated, never a padded copy of the whole frame; the pixels are identical to
    padding the frame and slicing, which is what SiamFC implementations do.
    """
    side = max(int(round(size)), 1)
    y0, x0 = (int(v) for v in np.round(center - (side - 1) / 2))
    y1, x1 = y0 + side, x0 + side
    h, w = img.shape[:2]
    if y0 >= 0 and x0 >= 0 and y1 <= h and x1 <= w:
        patch = img[y0:y1, x0:x1]
    else:
        patch = np.empty((side, side, img.shape[2]), dtype=img.dtype)
        patch[:] = fill
        iy0, ix0, iy1, ix1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
        if iy1 > iy0 and ix1 > ix0:
            patch[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = img[iy0:iy1, ix0:ix1]
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


def fill_color(img: np.ndarray) -> np.ndarray:
    """The frame's mean colour as uint8 (round half to even, as cv2's saturate_cast)."""
    mean = np.asarray(cv2.mean(img)[:img.shape[2]])
    return np.clip(np.round(mean), 0, 255).astype(np.uint8)
