"""Image operations of the tracker."""
from __future__ import annotations

import cv2
import numpy as np
import torch


def crop_region(img: np.ndarray, center: np.ndarray, size: float, out_size: int,
                fill: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Cut the square of side ``round(size)`` centred on ``center`` (row, col) and
    resize it to ``out_size`` x ``out_size`` (bilinear).

    Parts outside the frame take the colour ``fill``. Only the square itself is
    allocated, never a padded copy of the whole frame; the pixels are identical to
    padding the frame and slicing, which is what SiamFC implementations do.
    ``out`` (out_size x out_size x C, uint8) receives the result when given.
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
    return cv2.resize(patch, (out_size, out_size), dst=out, interpolation=cv2.INTER_LINEAR)


def fill_color(img: np.ndarray) -> np.ndarray:
    """The frame's mean colour as uint8 (round half to even, as cv2's saturate_cast)."""
    mean = np.asarray(cv2.mean(img)[:img.shape[2]])
    return np.clip(np.round(mean), 0, 255).astype(np.uint8)


class Correlator:
    """Cross-correlation of one exemplar embedding with a batch of search embeddings.

    The exemplar is fixed for a sequence, so it is laid out once as a
    (kh*kw, C) matrix; each frame is then one GEMM over the channels followed by
    kh*kw shifted adds, with no im2col copy (2-3x faster than a conv call here).
    The GEMM runs on PyTorch's thread pool: numpy's BLAS would start a second
    pool of spinning threads that fights the backbone's for the cores.
    """

    def __init__(self, kernel: np.ndarray) -> None:
        _, c, self.kh, self.kw = kernel.shape
        self.weights = torch.from_numpy(np.ascontiguousarray(kernel[0].reshape(c, -1).T))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        n, c, h, w = features.shape
        oh, ow = h - self.kh + 1, w - self.kw + 1
        flat = torch.from_numpy(np.ascontiguousarray(features)).reshape(n, c, h * w)
        taps = torch.matmul(self.weights, flat).numpy().reshape(n, -1, h, w)
        out = taps[:, 0, :oh, :ow].copy()
        for t in range(1, taps.shape[1]):
            u, v = divmod(t, self.kw)
            out += taps[:, t, u:u + oh, v:v + ow]
        return out
