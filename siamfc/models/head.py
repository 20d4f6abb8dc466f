"""The SiamFC head: cross-correlation of exemplar and search embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def xcorr(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Correlate each exemplar with its own search map (or one exemplar with all).

    The batch is folded into the channel axis and run as one grouped conv, which
    is the standard "fast" cross-correlation.
    """
    nz, c = z.shape[:2]
    nx = x.shape[0]
    if nz == 1 and nx > 1:
        return F.conv2d(x, z)
    if nz != nx:
        raise ValueError(f"exemplar batch {nz} does not match search batch {nx}")
    out = F.conv2d(x.reshape(1, nx * c, x.shape[2], x.shape[3]), z, groups=nx)
    return out.reshape(nx, 1, out.shape[-2], out.shape[-1])


class XCorrHead(nn.Module):
    """Cross-correlation scaled by ``out_scale`` (0.001 in SiamFC) to keep logits small."""

    def __init__(self, out_scale: float = 0.001) -> None:
        super().__init__()
        self.out_scale = out_scale

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return xcorr(z, x) * self.out_scale
