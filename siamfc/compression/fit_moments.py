"""Least-squares fits of the AlexNet FD steps, streamed over calibration crops.

The fits accumulate their normal equations over chunks of the sample, so the number of
calibration crops is bounded by time, not memory; each crop gives at most
``ROWS_PER_CROP`` of its positions (chosen at random, reproducibly).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from ..models.fd import FDChain

Sample = Sequence[torch.Tensor]   # batches of crops; sizes may differ between batches

CHUNK = 16               # crops per forward pass of a fit
ROWS_PER_CROP = 1024     # positions of one crop that enter a fit (evenly subsampled at random)


def batches(sample: Sample | torch.Tensor) -> Sequence[torch.Tensor]:
    """A sample given as one tensor is one batch."""
    return [sample] if isinstance(sample, torch.Tensor) else sample


def chunks(sample: Sample | torch.Tensor, size: int = CHUNK) -> Iterator[torch.Tensor]:
    for batch in batches(sample):
        for i in range(0, len(batch), size):
            yield batch[i:i + size]


def as_rows(t: torch.Tensor, pick: torch.Tensor | None = None) -> torch.Tensor:
    """N, C, H, W -> rows of C (one per position), in float64."""
    rows = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).double()
    return rows if pick is None else rows[pick]


def pick_rows(n_crops: int, positions: int, gen: torch.Generator) -> torch.Tensor | None:
    total = n_crops * positions
    keep = n_crops * ROWS_PER_CROP
    return None if keep >= total else torch.randperm(total, generator=gen)[:keep]


class Moments:
    """Normal equations of a least-squares fit ``y ~ [x, 1] w``, accumulated over chunks."""

    def __init__(self) -> None:
        self.xx: torch.Tensor | None = None
        self.xy = self.ysum = None
        self.yy = 0.0
        self.n = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        xx, xy = x1.T @ x1, x1.T @ y
        if self.xx is None:
            self.xx, self.xy, self.ysum = xx, xy, y.sum(0)
        else:
            self.xx += xx
            self.xy += xy
            self.ysum += y.sum(0)
        self.yy += float((y * y).sum())
        self.n += len(x)

    def solve(self, lam: float = 1e-4) -> tuple[torch.Tensor, float]:
        """Weights ((nx + 1) x ny, bias last) with a small ridge, and the relative residual
        (residual energy over the target's variance; 0 = exact)."""
        if self.xx is None:
            raise RuntimeError("a least-squares fit saw no data")
        reg = lam * self.xx.diagonal().mean() * torch.eye(len(self.xx), dtype=self.xx.dtype)
        w = torch.linalg.solve(self.xx + reg, self.xy)
        sse = self.yy - 2 * float((w * self.xy).sum()) + float((w * (self.xx @ w)).sum())
        return w, max(sse, 0.0) / self.variance()

    def variance(self) -> float:
        """The target's summed variance (times n): what a relative residual is relative to."""
        return max(self.yy - float((self.ysum ** 2).sum()) / self.n, 1e-12)

    def fitted_moment(self, w: torch.Tensor) -> torch.Tensor:
        """Second moment of the fitted values, E[yhat yhat^T]."""
        return w.T @ self.xx @ w / self.n


def top_eigvecs(cov: torch.Tensor, k: int) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs[:, torch.argsort(vals, descending=True)[:k]]


def activation_pairs(old: FDChain, ref: FDChain | None, sample: Sample, name: str,
                     upto: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(old's, the target's) activation ``name`` on each chunk of the sample."""
    with torch.no_grad():
        for x in chunks(sample):
            src = old.trace(x, upto=upto)[name]
            yield src, (src if ref is None else ref.trace(x, upto=upto)[name])


def measure_bn(bn: torch.nn.BatchNorm2d, inputs: Iterator[torch.Tensor]) -> None:
    """Give ``bn`` the statistics of its inputs (streamed in chunks)."""
    n, total, squares = 0, 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            x = x.double()
            n += x.numel() // x.shape[1]
            total = total + x.sum((0, 2, 3))
            squares = squares + (x * x).sum((0, 2, 3))
    mean = total / n
    bn.running_mean.copy_(mean.float())
    bn.running_var.copy_((squares / n - mean * mean).clamp_min(0).float())


def bn_scale(block: torch.nn.Sequential, has_bn: bool, channels: int) -> torch.Tensor:
    """How BN_i scales each channel (|gamma| / sigma): the error metric of the PCA, so that
    the reconstruction is weighed as the next layer sees it; 1 where the layer has no BN."""
    if not has_bn:
        return torch.ones(channels, dtype=torch.float64)
    bn = block[1]
    scale = bn.weight.double().abs() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale.clamp_min(1e-3 * scale.max())

