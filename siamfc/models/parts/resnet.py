"""ResNet-18/34/50 as SiamRPN++ uses them (Li et al., CVPR 2019; pysot's ``resnet_atrous``).

He et al.'s ResNet with its last two stages dilated instead of strided, so that
layer2, layer3 and layer4 all keep stride 8 and can feed one RPN each. pysot's
padding conventions are kept, because they fix the feature sizes its heads
expect: conv1 (7x7/2) has no padding, stride-2 3x3 convs have none either, and
the first block of a dilated stage still runs at the previous stage's dilation
(its 3x3 shortcut too). A 127 px exemplar gives 15x15 maps at layers 2-4, a
255 px search image 31x31.

Module names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` ...), so ImageNet state dicts map onto it directly
except for the 3x3 shortcuts of the strided and dilated stages.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import BACKBONES

STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 1, 1)
STAGE_DILATIONS = (1, 1, 2, 4)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """A 3x3 conv that keeps the size at stride 1 and, as in pysot, pads nothing at stride 2."""
    padding = dilation if stride == 1 else 0
    return nn.Conv2d(in_planes, out_planes, 3, stride, padding, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); ``entry_dilation`` is the first conv's, ``dilation`` the second's."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 entry_dilation: int | None = None, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, entry_dilation or dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand by 4 (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 entry_dilation: int | None = None, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, entry_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


Block = type[BasicBlock] | type[Bottleneck]


def make_stage(block: Block, inplanes: int, planes: int, blocks: int, stride: int = 1,
               dilation: int = 1) -> nn.Sequential:
    """One stage: ``blocks`` blocks, the first changing width, stride or dilation.

    The first block enters at half the stage's dilation (the previous stage's), so
    that dilations grow 1, 2, 4 without a jump; its shortcut is a 3x3 conv with
    that dilation wherever the stage strides or dilates, a 1x1 conv otherwise.
    """
    if stride != 1 and dilation != 1:
        raise ValueError("a stage either strides or dilates, not both")
    entry = max(dilation // 2, 1)
    out = planes * block.expansion
    downsample = None
    if stride != 1 or dilation != 1:
        downsample = nn.Sequential(conv3x3(inplanes, out, stride, entry), nn.BatchNorm2d(out))
    elif inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, bias=False), nn.BatchNorm2d(out))
    layers = [block(inplanes, planes, stride, dilation, entry, downsample)]
    layers += [block(out, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """The stem (conv1, bn1, ReLU, 3x3/2 max-pool) and stages ``layer1`` .. ``layerN``.

    ``used_layers`` picks the outputs: 0 is the stem's ReLU (stride 2, before the
    pool), 1-4 the stages (stride 4, then 8 from layer2 on). Stages past the
    deepest one used are not built. One output is returned as a map, several as a
    list in the order given.
    """

    def __init__(self, block: Block, depths: Sequence[int], used_layers: Sequence[int] = (2, 3, 4)) -> None:
        super().__init__()
        self.used_layers = [int(i) for i in used_layers]
        if not self.used_layers or not all(0 <= i <= len(depths) for i in self.used_layers):
            raise ValueError(f"used_layers must be stage indices in 0..{len(depths)}, got {used_layers}")
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.stages = max(self.used_layers)
        inplanes = 64
        for i in range(self.stages):
            self.add_module(f"layer{i + 1}", make_stage(block, inplanes, STAGE_PLANES[i], depths[i],
                                                        STAGE_STRIDES[i], STAGE_DILATIONS[i]))
            inplanes = STAGE_PLANES[i] * block.expansion
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        outs = [x]
        x = self.maxpool(x)
        for i in range(1, self.stages + 1):
            x = getattr(self, f"layer{i}")(x)
            outs.append(x)
        picked = [outs[i] for i in self.used_layers]
        return picked[0] if len(picked) == 1 else picked


def init_weights(module: nn.Module) -> None:
    """He-normal convs (fan-out) and unit BN, as pysot starts its ResNets."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@BACKBONES.register("resnet18")
def resnet18(used_layers: Sequence[int] = (2, 3, 4)) -> ResNet:
    """ResNet-18: basic blocks 2-2-2-2; 64/128/256/512 channels at layers 1-4."""
    return ResNet(BasicBlock, (2, 2, 2, 2), used_layers)


@BACKBONES.register("resnet34")
def resnet34(used_layers: Sequence[int] = (2, 3, 4)) -> ResNet:
    """ResNet-34: basic blocks 3-4-6-3; 64/128/256/512 channels at layers 1-4."""
    return ResNet(BasicBlock, (3, 4, 6, 3), used_layers)


@BACKBONES.register("resnet50")
def resnet50(used_layers: Sequence[int] = (2, 3, 4)) -> ResNet:
    """ResNet-50: bottlenecks 3-4-6-3; 256/512/1024/2048 channels at layers 1-4."""
    return ResNet(Bottleneck, (3, 4, 6, 3), used_layers)
