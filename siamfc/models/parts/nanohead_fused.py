"""NanoTrack's head with its two branches run as one: the same numbers in about half the layers.

The class and box branches have the same shape layer for layer (a 1x1 conv + BN on each input, the
pixel-wise correlation, channel attention, a tower of separable convs, a 1x1 prediction), so each pair
of layers is one layer of twice the width: the depthwise convs side by side, the 1x1 convs (BN folded
in) as one conv of two groups, the two correlations as one batched matrix product. OpenCV runs the head
as some 34 small convs on a 16x16 map, where the time goes per layer more than per multiply-add. Exact
up to float rounding (the BN folds are taken in float64); the export checks it against the head as given.
"""
from __future__ import annotations

import torch
from torch import nn

from ..batchnorm import conv_bn_affine
from .nanohead import NanoHead


def _conv(weights: list[torch.Tensor], biases: list[torch.Tensor] | None, groups: int, padding: int = 0) -> nn.Conv2d:
    """One conv whose output channels are the given weights' stacked, read in ``groups`` groups."""
    w = torch.cat(weights)
    conv = nn.Conv2d(w.shape[1] * groups, len(w), w.shape[-1], padding=padding, groups=groups,
                     bias=biases is not None)
    with torch.no_grad():
        conv.weight.copy_(w.float())
        if biases is not None:
            conv.bias.copy_(torch.cat(biases).float())
    return conv


def _layers(tower: nn.Sequential) -> list[tuple[nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]]:
    """The tower's live separable layers (dropped ones are identities): (depthwise, pointwise, BN)."""
    live = [m for m in tower if not isinstance(m, nn.Identity)]
    return [(live[i], live[i + 1], live[i + 2]) for i in range(0, len(live), 4)]


def fusable(head: NanoHead) -> bool:
    """Both branches alike layer for layer (a cut narrows them alike, but may drop different layers)."""
    cls, loc = _layers(head.cls_tower), _layers(head.loc_tower)
    return len(cls) == len(loc) and all(a[1].weight.shape == b[1].weight.shape for a, b in zip(cls, loc)) \
        and head.cls_pred.in_channels == head.loc_pred.in_channels


class FusedNanoHead(nn.Module):
    """``(zf, xf) -> (cls, loc)`` as :class:`NanoHead` computes them, the two branches as one."""

    def __init__(self, head: NanoHead) -> None:
        super().__init__()
        if not fusable(head):
            raise ValueError("the head's branches differ in shape: they cannot run as one")
        corr = (head.corr_cls, head.corr_loc)
        self.kernel = _conv(*zip(*(conv_bn_affine(c.conv_kernel[0], c.conv_kernel[1]) for c in corr)), groups=1)
        self.search = _conv(*zip(*(conv_bn_affine(c.conv_search[0], c.conv_search[1]) for c in corr)), groups=1)
        self.fc1 = _conv(*zip(*(conv_bn_affine(c.attention.fc1, None) for c in corr)), groups=2)
        self.fc2 = _conv(*zip(*(conv_bn_affine(c.attention.fc2, None) for c in corr)), groups=2)
        tower: list[nn.Module] = []
        for (dw1, pw1, bn1), (dw2, pw2, bn2) in zip(_layers(head.cls_tower), _layers(head.loc_tower)):
            tower.append(_conv([dw1.weight.detach().double(), dw2.weight.detach().double()], None,
                               groups=dw1.groups + dw2.groups, padding=dw1.padding[0]))
            tower += [_conv(*zip(conv_bn_affine(pw1, bn1), conv_bn_affine(pw2, bn2)), groups=2), nn.ReLU6()]
        self.tower = nn.Sequential(*tower)
        (wc, bc), (wl, bl) = conv_bn_affine(head.cls_pred, None), conv_bn_affine(head.loc_pred, None)
        self.classes = len(wc)
        pad = len(wl) - len(wc)   # the class rows padded to the box rows' count, so the groups are equal
        self.pred = _conv([torch.cat([wc, wc.new_zeros((pad, *wc.shape[1:]))]), wl],
                          [torch.cat([bc, bc.new_zeros(pad)]), bl], groups=2)

    def forward(self, zf: torch.Tensor, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = xf.shape
        c = self.search.out_channels // 2   # each branch's correlation width
        kernel = self.kernel(zf).reshape(2 * n, c, -1).transpose(1, 2)   # (2n, exemplar positions, c)
        corr = torch.matmul(kernel, self.search(xf).reshape(2 * n, c, h * w)).reshape(n, -1, h, w)
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(corr.mean((2, 3), keepdim=True)))))
        out = self.pred(self.tower(corr * gate))
        half = out.shape[1] // 2
        return out[:, :self.classes], torch.exp(out[:, half:])
