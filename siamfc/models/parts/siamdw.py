"""SiamDW's cropping-inside residual backbones (Zhang & Peng, "Deeper and Wider
Siamese Networks for Real-Time Visual Tracking", CVPR 2019), as SiameseX builds them.

Every unit ends by cropping one pixel from each side of its output: the outermost
ring is the one that saw zero padding, and a Siamese tracker must not learn where
the padding is. All four nets share one layout, 22 weight layers deep:

    7x7/2 conv stem -> layer1: 3 units -> layer2: unit, 2x2/2 max-pool, 3 units

with total stride 8 and no ReLU after the last unit (the features feed a
correlation). A 127 px exemplar embeds to 5x5, a 255 px search image to 21x21.
The variants differ only in the unit (:class:`CropInsideUnit` with another body).
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .registry import BACKBONES

STEM_CHANNELS = 64
DEPTHS = (3, 4)                         # units in layer1 and layer2


def conv(in_ch: int, out_ch: int, kernel: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=False)


def bottleneck(in_ch: int, mid: int, inner: int, out_ch: int, groups: int = 1) -> nn.Sequential:
    """1x1 (``mid``) -> 3x3 (``inner``, grouped) -> 1x1 (``out_ch``), each with BN; no final ReLU."""
    return nn.Sequential(OrderedDict(
        conv1=conv(in_ch, mid, 1), bn1=nn.BatchNorm2d(mid), relu1=nn.ReLU(inplace=True),
        conv2=conv(mid, inner, 3, groups), bn2=nn.BatchNorm2d(inner), relu2=nn.ReLU(inplace=True),
        conv3=conv(inner, out_ch, 1), bn3=nn.BatchNorm2d(out_ch)))


class CropInsideUnit(nn.Module):
    """``crop(relu(norm(merge(body(x), shortcut(x)))))``, the SiamDW CIR unit.

    ``merge`` adds (residual units) or concatenates (the Inception unit, whose
    ``shortcut`` is its 1x1 branch, not the identity). ``norm`` is ResNeXt's BN
    after the addition; ``relu`` is off for the last unit of the net.
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module, out_channels: int, concat: bool = False,
                 norm: nn.Module | None = None, relu: bool = True) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.norm = norm if norm is not None else nn.Identity()
        self.out_channels = out_channels
        self.concat = concat
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.body(x), self.shortcut(x)
        out = self.norm(torch.cat([a, b], 1) if self.concat else a + b)
        if self.relu:
            out = F.relu(out)
        return out[:, :, 1:-1, 1:-1]


Unit = Callable[[int, int, bool], CropInsideUnit]     # (in channels, stage width, relu) -> unit


def residual_unit(in_ch: int, planes: int, relu: bool, wide: int = 1) -> CropInsideUnit:
    """CIR bottleneck (ResNet): 4 x ``planes`` out; ``wide`` multiplies only the 3x3 conv's channels."""
    out = 4 * planes
    shortcut = nn.Identity() if in_ch == out else nn.Sequential(conv(in_ch, out, 1), nn.BatchNorm2d(out))
    return CropInsideUnit(bottleneck(in_ch, planes, wide * planes, out), shortcut, out, relu=relu)


def inception_unit(in_ch: int, planes: int, relu: bool) -> CropInsideUnit:
    """CIR-Inception: a bottleneck branch (4 x ``planes``) beside a 1x1 branch (``planes``), concatenated.

    One ReLU after the concatenation is SiamDW's ReLU at the end of each branch.
    """
    branch1x1 = nn.Sequential(conv(in_ch, planes, 1), nn.BatchNorm2d(planes, eps=1e-3))
    return CropInsideUnit(bottleneck(in_ch, planes, planes, 4 * planes), branch1x1, 5 * planes, concat=True,
                          relu=relu)


def resnext_unit(in_ch: int, width: int, relu: bool, cardinality: int = 32) -> CropInsideUnit:
    """CIR-ResNeXt: ``cardinality`` groups of ``width`` channels in the 3x3, expanded 2x; BN after the sum."""
    inner = cardinality * width
    out = 2 * inner
    shortcut = nn.Identity() if in_ch == out else nn.Sequential(conv(in_ch, out, 1))     # no BN here
    return CropInsideUnit(bottleneck(in_ch, inner, inner, out, cardinality), shortcut, out,
                          norm=nn.BatchNorm2d(out), relu=relu)


def crop_inside_stage(unit: Unit, in_ch: int, width: int, depth: int, pool: bool, last_relu: bool
                      ) -> nn.Sequential:
    """``depth`` units; with ``pool``, a 2x2/2 max-pool after the first (SiamDW's stand-in for a strided conv)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(unit(in_ch, width, last_relu or i < depth - 1))
        in_ch = layers[-1].out_channels
        if pool and i == 0:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class CropInsideNet(nn.Module):
    """Stem, then ``layer1`` (stride 4) and ``layer2`` (stride 8) of ``unit``s; ``out_channels`` features.

    The stem is conv 7x7/2 -> BN -> ReLU -> crop ``stem_crop`` -> ``stem_pool``/2 max-pool.
    """

    def __init__(self, unit: Unit, widths: tuple[int, int], stem_padding: int, stem_crop: int, stem_pool: int,
                 stem_bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, 2, stem_padding, bias=stem_bias)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.stem_crop = stem_crop
        self.pool = nn.MaxPool2d(stem_pool, 2)
        self.layer1 = crop_inside_stage(unit, STEM_CHANNELS, widths[0], DEPTHS[0], pool=False, last_relu=True)
        self.layer2 = crop_inside_stage(unit, self.layer1[-1].out_channels, widths[1], DEPTHS[1], pool=True,
                                        last_relu=False)
        self.out_channels = self.layer2[-1].out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        c = self.stem_crop
        if c:
            x = x[:, :, c:-c, c:-c]
        return self.layer2(self.layer1(self.pool(x)))


@BACKBONES.register("ciresnet22")
def ciresnet22() -> CropInsideNet:
    """CIResNet-22: 512 channels, receptive field 93. The padded stem is cropped by 2 before its 2x2 pool."""
    return CropInsideNet(residual_unit, (64, 128), stem_padding=3, stem_crop=2, stem_pool=2)


@BACKBONES.register("ciresnet22w")
def ciresnet22w() -> CropInsideNet:
    """CIResNet-22W: CIResNet-22 with twice the channels in each 3x3 conv; 512 channels, receptive field 93."""
    return CropInsideNet(functools.partial(residual_unit, wide=2), (64, 128), stem_padding=3, stem_crop=2,
                         stem_pool=2)


@BACKBONES.register("ciresincep22")
def ciresincep22() -> CropInsideNet:
    """CIResInception-22: 640 channels (512 + 128), receptive field 95; unpadded stem, 3x3/2 pool."""
    return CropInsideNet(inception_unit, (64, 128), stem_padding=0, stem_crop=0, stem_pool=3)


@BACKBONES.register("ciresnext22")
def ciresnext22(cardinality: int = 32, width: int = 4) -> CropInsideNet:
    """CIResNeXt-22 (32x4d): 512 channels, receptive field 95; unpadded stem conv with a bias, 3x3/2 pool.

    ``width`` is the per-group width of layer1's 3x3 conv; layer2 doubles it.
    """
    return CropInsideNet(functools.partial(resnext_unit, cardinality=cardinality), (width, 2 * width),
                         stem_padding=0, stem_crop=0, stem_pool=3, stem_bias=True)
