"""The tracker's cross-correlation of a fixed exemplar with each frame's search batch."""
from __future__ import annotations

import numpy as np
import torch


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
