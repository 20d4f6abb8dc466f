"""The up-channel RPN head of SiamRPN (Li, Yan, Wu, Zhu and Hu, CVPR 2018), as SiameseX builds it.

A 3x3 conv lifts the exemplar embedding to ``2A * hidden`` (classification) and
``4A * hidden`` (regression) channels, which are read as ``2A`` and ``4A``
correlation kernels of ``hidden`` channels each; a 3x3 conv per task maps the
search embedding to ``hidden`` channels, and each sample's kernels are
correlated with its own search map. A 1x1 conv then mixes the ``4A`` box
offsets. With AlexNet at 127/255 px the kernels are 4x4 and the maps 17x17.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import HEADS

Kernels = tuple[torch.Tensor, torch.Tensor]


def xcorr_kernels(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Correlate each sample's ``K`` kernels (``N x K x C x k x k``) with its search map (``N x C x H x W``).

    The batch is folded into the channel axis as one grouped conv; one exemplar's
    kernels are applied to every search map.
    """
    n, k = kernel.shape[:2]
    nx = x.shape[0]
    if n == 1 and nx > 1:
        return F.conv2d(x, kernel[0])
    if n != nx:
        raise ValueError(f"exemplar batch {n} does not match search batch {nx}")
    out = F.conv2d(x.reshape(1, -1, x.shape[2], x.shape[3]), kernel.flatten(0, 1), groups=n)
    return out.reshape(n, k, out.shape[-2], out.shape[-1])


@HEADS.register("up_rpn")
class UpChannelRPN(nn.Module):
    """``in_channels``: the embedding's width; ``hidden``: the width of each correlation kernel
    (SiameseX uses the embedding's width: 256 for AlexNet and VGG, 512 or 640 for SiamDW's
    22-layer backbones); ``anchor_num``: anchors per position (5 ratios x 1 scale).

    The template convs start small (``template_std``): their outputs are correlation kernels of
    ``hidden`` x 4 x 4 taps, so PyTorch's default init (or SiameseX's N(0, 0.01)) gives logits in
    the tens and a first loss near 100 on synthetic pairs; at 5e-4 it starts near 3."""

    def __init__(self, in_channels: int = 256, hidden: int = 256, anchor_num: int = 5,
                 template_std: float = 5e-4) -> None:
        super().__init__()
        self.hidden = hidden
        self.anchor_num = anchor_num
        self.template_cls = nn.Conv2d(in_channels, 2 * anchor_num * hidden, 3)
        self.template_loc = nn.Conv2d(in_channels, 4 * anchor_num * hidden, 3)
        self.search_cls = nn.Conv2d(in_channels, hidden, 3)
        self.search_loc = nn.Conv2d(in_channels, hidden, 3)
        self.loc_adjust = nn.Conv2d(4 * anchor_num, 4 * anchor_num, 1)
        for conv in (self.template_cls, self.template_loc):
            nn.init.normal_(conv.weight, std=template_std)
            nn.init.zeros_(conv.bias)

    def _kernels(self, conv: nn.Conv2d, fz: torch.Tensor) -> torch.Tensor:
        k = conv(fz)
        return k.reshape(k.shape[0], -1, self.hidden, k.shape[2], k.shape[3])

    def prepare(self, fz: torch.Tensor) -> Kernels:
        return self._kernels(self.template_cls, fz), self._kernels(self.template_loc, fz)

    def respond(self, kernel: Kernels, fx: torch.Tensor) -> dict[str, torch.Tensor]:
        cls_kernel, loc_kernel = kernel
        cls = xcorr_kernels(cls_kernel, self.search_cls(fx))
        loc = self.loc_adjust(xcorr_kernels(loc_kernel, self.search_loc(fx)))
        return {"cls": cls, "loc": loc}
