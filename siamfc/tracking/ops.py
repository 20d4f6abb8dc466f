"""The tracker's cross-correlation of a fixed exemplar with each frame's search batch."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided


class Correlator:
    """Cross-correlation of one exemplar embedding with a batch of search embeddings.

    The exemplar is fixed for a sequence, so it is laid out once as a
    (kh*kw, C) matrix; each frame is then one GEMM over the channels into a
    reused buffer, and one strided sum that adds each tap's shifted plane: tap
    (u, v) of output pixel p sits at flat offset ``u*w + v`` from p, which is
    linear in u and v, so one view covers every tap and no im2col copy is made.
    The GEMM runs on PyTorch's thread pool: numpy's BLAS would start a second
    pool of spinning threads that fights the backbone's for the cores.
    """

    def __init__(self, kernel: np.ndarray) -> None:
        _, c, self.kh, self.kw = kernel.shape
        self.weights = torch.from_numpy(np.ascontiguousarray(kernel[0].reshape(c, -1).T))
        self._buffers: dict[tuple[int, ...], tuple[torch.Tensor, np.ndarray, np.ndarray]] = {}

    def _buffers_for(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Per input shape: the GEMM's view of the taps' storage (which has slack, so the
        strided view of the last image's bottom-right taps stays inside it), the strided
        view of every tap and the sum's output. The views keep the storage alive."""
        if shape not in self._buffers:
            n, _, h, w = shape
            taps = self.kh * self.kw
            oh = h - self.kh + 1
            store = torch.zeros(n * taps * h * w + self.kh * w)
            gemm = store[:n * taps * h * w].view(n, taps, h * w)
            step = store.element_size()
            view = as_strided(store.numpy(), (n, self.kh, self.kw, oh * w),
                              (taps * h * w * step, (self.kw * h * w + w) * step, (h * w + 1) * step, step),
                              writeable=False)
            self._buffers[shape] = (gemm, view, np.empty((n, oh * w), np.float32))
        return self._buffers[shape]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(N, C, H, W) features -> (N, H-kh+1, W-kw+1) score maps (a view of a reused buffer)."""
        n, c, h, w = features.shape
        gemm, view, sums = self._buffers_for(features.shape)
        flat = torch.from_numpy(np.ascontiguousarray(features)).view(n, c, h * w)
        torch.matmul(self.weights, flat, out=gemm)
        view.sum(axis=(1, 2), out=sums)
        return sums.reshape(n, -1, w)[:, :, :w - self.kw + 1]


class Upsampler:
    """Bicubic upsampling of a batch of square score maps as two small GEMMs.

    Resizing is linear, so OpenCV's own bicubic weights (taps clamped at the
    border) are read off once by resizing the identity: ``up = A.T @ m @ A``
    with ``A`` (size, size * factor). The maps equal ``cv2.resize(...,
    INTER_CUBIC)``'s to float32 rounding (a relative 1e-7), at a fifth of the
    cost of one resize call per map.
    """

    def __init__(self, n: int, size: int, factor: int) -> None:
        import cv2

        up = size * factor
        a = cv2.resize(np.eye(size, dtype=np.float32), (up, size), interpolation=cv2.INTER_CUBIC)
        self.cols = torch.from_numpy(a)                       # (size, up)
        self.rows = self.cols.T.contiguous()                  # (up, size)
        self._half = torch.empty((n, size, up))
        self._out = torch.empty((n, up, up))

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        """(N, size, size) -> (N, up, up), a reused buffer."""
        torch.matmul(torch.from_numpy(maps), self.cols, out=self._half)
        torch.matmul(self.rows, self._half, out=self._out)
        return self._out.numpy()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``n`` for the block (unchanged for None)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
