"""SiamRPN++'s adjust necks (Li et al., CVPR 2019; pysot's ``AdjustLayer``/``AdjustAllLayer``).

A 1x1 conv and BN bring a backbone stage to the head's width (256 in SiamRPN++),
and the exemplar's map is cropped to its centre: at stride 8 a 127 px exemplar
gives 15x15, of which the centre 7x7 covers the target and drops the padded
border, which also cuts the cost of the correlation. Search maps, which are
wider, pass uncropped: a map narrower than ``crop_below`` is taken for an
exemplar's.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import NECKS


@NECKS.register("adjust")
class AdjustLayer(nn.Sequential):
    """1x1 conv (no bias) + BN to ``out_channels``; exemplar maps cropped to ``center_size``."""

    def __init__(self, in_channels: int, out_channels: int, center_size: int = 7, crop_below: int = 20) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.center_size = center_size
        self.crop_below = crop_below

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if x.shape[-1] < self.crop_below:
            lo = (x.shape[-1] - self.center_size) // 2
            x = x[:, :, lo:lo + self.center_size, lo:lo + self.center_size]
        return x


@NECKS.register("adjust_all")
class AdjustAllLayer(nn.Module):
    """One :class:`AdjustLayer` per backbone stage (``adjust.0`` for the first), applied pairwise."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], center_size: int = 7,
                 crop_below: int = 20) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError(f"{len(in_channels)} in_channels but {len(out_channels)} out_channels")
        self.adjust = nn.ModuleList(AdjustLayer(i, o, center_size, crop_below)
                                    for i, o in zip(in_channels, out_channels))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.adjust):
            raise ValueError(f"expected {len(self.adjust)} feature maps, got {len(features)}")
        return [adjust(f) for adjust, f in zip(self.adjust, features)]
