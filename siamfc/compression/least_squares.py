"""Float64 least squares for the closed-form fits: moments gathered over batches, ridge regression pulled
towards the weights a fit replaces, greedy forward selection of input channels, and a 1x1 conv (+ BN) read
and written as one affine map."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.batchnorm import conv_bn_affine


def rows(t: torch.Tensor) -> torch.Tensor:
    """N x C [x H x W] -> float64 rows of C, one per sample and position."""
    return (t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.dim() == 4 else t).double()


def phi_rows(t: torch.Tensor) -> torch.Tensor:
    """The rows with a column of ones (the fitted shift)."""
    r = rows(t)
    return torch.cat([r, r.new_ones(len(r), 1)], 1)


class Moments:
    """``G = Phi^T Phi``, ``C = Phi^T T``, ``|T|^2`` and ``|Y|^2`` (the reference) summed over batches."""

    def __init__(self) -> None:
        self.g: Any = 0
        self.c: Any = 0
        self.tt = self.ref = 0.0

    def add(self, phi: torch.Tensor, t: torch.Tensor) -> None:
        self.g, self.c = self.g + phi.T @ phi, self.c + phi.T @ t
        self.tt += float((t * t).sum())

    def pick(self, idx: torch.Tensor) -> "Moments":
        out = copy.copy(self)
        out.g, out.c = self.g[idx][:, idx], self.c[idx]
        return out

    def error(self, w: torch.Tensor) -> float:
        """Relative RMS error of ``Phi W^T`` against ``T``."""
        sq = self.tt - 2 * float((w.T * self.c).sum()) + float(((w @ self.g) * w).sum())
        return float(np.sqrt(max(sq, 0.0) / max(self.ref, 1e-30)))


def ridge_towards(g: torch.Tensor, c: torch.Tensor, w0: torch.Tensor, ridge: float) -> torch.Tensor:
    """``argmin |T - Phi W^T|^2 + lam |W - W0|^2`` from ``G``, ``C``; ``lam`` = ``ridge`` x mean diag ``G``."""
    lam = ridge * float(g.diagonal().mean())
    return w0 + torch.linalg.solve(g + lam * torch.eye(len(g), dtype=g.dtype), c - g @ w0.T).T


def greedy_keep(g: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` channels (rows of ``G`` but the last, the bias, which is always in) chosen one at a time
    for the largest drop of the least-squares error; the moments are orthogonalised on each choice."""
    g, c, d = g.clone(), c.clone(), len(g) - 1
    floor = 1e-12 * float(g.diagonal()[:d].max().clamp_min(1e-30))
    chosen: list[int] = []
    for j in [d] + [-1] * k:
        if j < 0:
            diag = g.diagonal()[:d]
            gain = torch.where(diag > floor, (c[:d] ** 2).sum(1) / diag.clamp_min(floor), torch.zeros_like(diag))
            gain[chosen] = -1.0
            j = int(gain.argmax())
            chosen.append(j)
        col = g[:, j] / g[j, j].clamp_min(floor)
        c, g = c - torch.outer(col, c[j]), g - torch.outer(col, g[j])
    return torch.tensor(sorted(chosen))


def affine(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> torch.Tensor:
    """The 1x1 conv (+ BN) as ``[A b]`` (out x in+1), float64."""
    a, b = conv_bn_affine(conv, bn)
    return torch.cat([a.flatten(1), b[:, None]], 1)


@torch.no_grad()
def set_affine(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, w: torch.Tensor) -> None:
    """Write ``[A b]`` back: A into the conv; b into its bias, or into the BN, which becomes the identity."""
    conv.weight.copy_(w[:, :-1].view_as(conv.weight))
    if bn is None:
        if conv.bias is None:
            raise ValueError("a consumer without bias or BN cannot hold the fitted shift")
        conv.bias.copy_(w[:, -1])
        return
    if conv.bias is not None:
        conv.bias.zero_()
    bn.weight.fill_(1.0)
    bn.bias.copy_(w[:, -1])
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
