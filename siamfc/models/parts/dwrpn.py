"""SiamRPN++'s depthwise-correlation RPN heads (Li et al., CVPR 2019; pysot's ``DepthwiseRPN``).

Each branch (classification, regression) gets its own 3x3 conv+BN+ReLU on the
exemplar and on the search map, correlates them channel by channel, mixes the
channels with a 1x1 conv+BN+ReLU and predicts with a 1x1 conv: 2A scores and 4A
offsets per position for A anchors. A 7x7 exemplar map and a 31x31 search map
give 25x25 outputs. :class:`MultiRPN` runs one RPN per backbone stage and fuses
them, by softmax-normalised learned weights or by the plain mean.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import HEADS


def xcorr_depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x`` correlated with the same channel of its own ``kernel`` (or of one for all)."""
    nk, c, kh, kw = kernel.shape
    if nk == 1:
        return F.conv2d(x, kernel.reshape(c, 1, kh, kw), groups=c)
    n = x.shape[0]
    if nk != n:
        raise ValueError(f"kernel batch {nk} does not match search batch {n}")
    out = F.conv2d(x.reshape(1, n * c, x.shape[2], x.shape[3]), kernel.reshape(n * c, 1, kh, kw), groups=n * c)
    return out.reshape(n, c, out.shape[2], out.shape[3])


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DepthwiseXCorr(nn.Module):
    """One branch: ``conv_kernel``/``conv_search`` (3x3, unpadded), depthwise xcorr, ``head`` (1x1, 1x1)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.conv_kernel = conv_bn_relu(in_channels, hidden, 3)
        self.conv_search = conv_bn_relu(in_channels, hidden, 3)
        self.head = nn.Sequential(*conv_bn_relu(hidden, hidden, 1), nn.Conv2d(hidden, out_channels, 1))

    def prepare(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_kernel(z)

    def respond(self, kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.head(xcorr_depthwise(self.conv_search(x), kernel))


@HEADS.register("depthwise_rpn")
class DepthwiseRPN(nn.Module):
    """Depthwise-correlation RPN on one feature map: ``cls`` (2A channels) and ``loc`` (4A) branches."""

    def __init__(self, anchor_num: int = 5, in_channels: int = 256, hidden: int = 256) -> None:
        super().__init__()
        self.cls = DepthwiseXCorr(in_channels, hidden, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, hidden, 4 * anchor_num)

    def prepare(self, fz: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exemplar's branch of both correlations, computed once per target."""
        return {"cls": self.cls.prepare(fz), "loc": self.loc.prepare(fz)}

    def respond(self, kernel: dict[str, torch.Tensor], fx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"cls": self.cls.respond(kernel["cls"], fx), "loc": self.loc.respond(kernel["loc"], fx)}


@HEADS.register("multi_rpn")
class MultiRPN(nn.Module):
    """One :class:`DepthwiseRPN` per stage (``rpn.0`` for the first), their outputs fused.

    With ``weighted``, the fusion weights ``cls_weight``/``loc_weight`` (one per
    stage, starting equal) are learned and softmax-normalised; otherwise the
    stages are averaged.
    """

    def __init__(self, anchor_num: int = 5, in_channels: Sequence[int] = (256, 256, 256),
                 weighted: bool = False) -> None:
        super().__init__()
        self.rpn = nn.ModuleList(DepthwiseRPN(anchor_num, c, c) for c in in_channels)
        self.weighted = weighted
        if weighted:
            self.cls_weight = nn.Parameter(torch.ones(len(in_channels)))
            self.loc_weight = nn.Parameter(torch.ones(len(in_channels)))

    def prepare(self, fz: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self._check(fz)
        return [rpn.prepare(f) for rpn, f in zip(self.rpn, fz)]

    def respond(self, kernel: Sequence[dict[str, torch.Tensor]], fx: Sequence[torch.Tensor]
                ) -> dict[str, torch.Tensor]:
        self._check(fx)
        outs = [rpn.respond(k, f) for rpn, k, f in zip(self.rpn, kernel, fx)]
        return {name: self._fuse([o[name] for o in outs], name) for name in ("cls", "loc")}

    def _fuse(self, maps: list[torch.Tensor], name: str) -> torch.Tensor:
        if not self.weighted:
            return torch.stack(maps).mean(0)
        weight = F.softmax(getattr(self, f"{name}_weight"), 0)
        return sum(w * m for w, m in zip(weight, maps))

    def _check(self, features: Sequence[torch.Tensor]) -> None:
        if len(features) != len(self.rpn):
            raise ValueError(f"expected {len(self.rpn)} feature maps, got {len(features)}")
