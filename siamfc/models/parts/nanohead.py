"""NanoTrack v2's head: pixel-wise correlation, channel attention, separable towers.

Every position of the exemplar map is a 1x1 kernel: its feature vector, dotted with the
search map's at each position, gives one channel, so an 8x8 exemplar gives 64 channels
on the 16x16 search grid (pixel-wise correlation, as in Alpha-Refine and LightTrack). A
channel-attention gate weighs those channels, a tower of depthwise-separable convs
(3x3 depthwise, 1x1 pointwise, BN, ReLU6) refines them, and 1x1 convs predict the class
(2 channels: background, target) and the box as distances (left, top, right, bottom) in
search-crop pixels from each point, ``exp`` of the prediction as in the ONNX file OpenCV runs.
Classification and box branches each have their own correlation and tower. Stride and
receptive field are the backbone's; the towers add 12 px of 3x3 context on the score map.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import HEADS


def pixelwise_xcorr(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """N x C x h x w and N x C x H x W -> N x (h*w) x H x W, channel i = exemplar position i (row-major)."""
    n, _, h, w = search.shape
    return torch.matmul(kernel.flatten(2).transpose(1, 2), search.flatten(2)).view(n, -1, h, w)


class ChannelAttention(nn.Module):
    """Squeeze-excitation over the correlation channels: average, 1x1 conv, ReLU, 1x1 conv, sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class PixelwiseCorr(nn.Module):
    """1x1 conv + BN on each branch's features, pixel-wise correlation, channel attention."""

    def __init__(self, channels: int, positions: int) -> None:
        super().__init__()
        self.conv_kernel = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.conv_search = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.attention = ChannelAttention(positions)

    def forward(self, kernel: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        """``kernel`` is ``conv_kernel`` of the exemplar (computed once per target by the head's ``prepare``)."""
        return self.attention(pixelwise_xcorr(kernel, self.conv_search(fx)))


def separable_tower(in_channels: int, hidden: int, depth: int) -> nn.Sequential:
    """``depth`` x (3x3 depthwise, 1x1 pointwise, BN, ReLU6), flat, so indices step by 4 as in the checkpoint."""
    layers: list[nn.Module] = []
    for i in range(depth):
        c = in_channels if i == 0 else hidden
        layers += [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv2d(c, hidden, 1, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
    return nn.Sequential(*layers)


@HEADS.register("nano")
class NanoHead(nn.Module):
    """``prepare(fz)`` -> the two branches' exemplar kernels; ``respond`` -> ``{"cls": N x 2 x H x W,
    "loc": N x 4 x H x W}`` (``loc``: positive ltrb distances in search-crop pixels).

    ``channels``: the backbone's (48); ``positions``: the exemplar map's h*w (8x8 = 64);
    ``hidden`` and ``depth``: the towers' width and number of separable convs.
    """

    def __init__(self, channels: int = 48, positions: int = 64, hidden: int = 96, depth: int = 6) -> None:
        super().__init__()
        self.positions = positions
        self.corr_cls = PixelwiseCorr(channels, positions)
        self.corr_loc = PixelwiseCorr(channels, positions)
        self.cls_tower = separable_tower(positions, hidden, depth)
        self.loc_tower = separable_tower(positions, hidden, depth)
        self.cls_pred = nn.Conv2d(hidden, 2, 1)
        self.loc_pred = nn.Conv2d(hidden, 4, 1)

    def layer_spans(self) -> dict[str, list[range]]:
        """Each tower's whole layers that map ``hidden`` to ``hidden`` channels (all but the first), as module
        indices in the tower: compression may replace one by the identity and refit the layer after it."""
        return {f"head.{b}_tower": [range(i, i + 4) for i in range(4, len(getattr(self, f"{b}_tower")), 4)]
                for b in ("cls", "loc")}

    def prepare(self, fz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fz.shape[-2] * fz.shape[-1] != self.positions:
            raise ValueError(f"the exemplar map is {fz.shape[-2]}x{fz.shape[-1]}; this head takes "
                             f"{self.positions} positions")
        return self.corr_cls.conv_kernel(fz), self.corr_loc.conv_kernel(fz)

    def respond(self, kernel: tuple[torch.Tensor, torch.Tensor], fx: torch.Tensor) -> dict[str, torch.Tensor]:
        cls = self.cls_pred(self.cls_tower(self.corr_cls(kernel[0], fx)))
        loc = torch.exp(self.loc_pred(self.loc_tower(self.corr_loc(kernel[1], fx))))
        return {"cls": cls, "loc": loc}
