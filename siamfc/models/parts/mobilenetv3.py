"""MobileNetV3-small (Howard et al., ICCV 2019) cut after a chosen block, as NanoTrack uses it.

Inverted residuals (1x1 expand, depthwise k x k, squeeze-excitation, 1x1 project) with
ReLU in the early blocks and hard-swish in the later ones. Cut after block 8 (NanoTrack
v2) the backbone has stride 16 and 48 channels: a 127 px exemplar gives 8x8, a 255 px
search image 16x16. The convolutions' receptive field is then 319 px; squeeze-excitation
pools the whole image, so strictly every output sees every pixel.

Module names follow d-li14's ``mobilenetv3.pytorch`` (``features.{i}.conv.{j}``), which
NanoTrack and the ImageNet weights it starts from use, so their state dicts load as they are.
"""
from __future__ import annotations

import torch
from torch import nn

from ..batchnorm import conv_bn_affine
from .registry import BACKBONES

# kernel, expanded width, out width, squeeze-excitation, hard-swish, stride (the paper's table 2)
SMALL_BLOCKS = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)
STEM_WIDTH = 16


def _divisible(v: float, divisor: int = 8) -> int:
    """The reference implementation's channel rounding (to a multiple of 8, never below 90%)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


class SqueezeExcite(nn.Module):
    """Channel gates from the global average: Linear, ReLU, Linear, hard-sigmoid."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = _divisible(channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # indexing, not view(b, c, 1, 1): the exported graph then holds no size, so one
        # ONNX file serves the 127 and the 255 input (OpenCV runs it at both)
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


class InvertedResidual(nn.Module):
    """One block; ``conv``'s indices are the reference's, whose layout differs with and without expansion."""

    def __init__(self, inp: int, hidden: int, out: int, kernel: int, stride: int, se: bool, hswish: bool) -> None:
        super().__init__()
        self.identity = stride == 1 and inp == out

        def act() -> nn.Module:
            return nn.Hardswish() if hswish else nn.ReLU(inplace=True)

        dw = [nn.Conv2d(hidden, hidden, kernel, stride, (kernel - 1) // 2, groups=hidden, bias=False),
              nn.BatchNorm2d(hidden)]
        gate = SqueezeExcite(hidden) if se else nn.Identity()
        project = [nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        if inp == hidden:   # no expansion: the activation comes before the gate
            layers = [*dw, act(), gate, *project]
        else:
            layers = [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(), *dw, gate, act(),
                      *project]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.identity else self.conv(x)


@BACKBONES.register("mobilenetv3_small")
class MobileNetV3Small(nn.Module):
    """The stem (3x3/2 conv, BN, hard-swish) and the first ``blocks`` inverted residuals.

    ``blocks`` = 8 (NanoTrack): stride 16, 48 channels out; 3: stride 8, 24; 11: stride 32, 96.
    Input: whatever the model's config says (NanoTrack was trained on BGR 0-255).
    """

    def __init__(self, blocks: int = 8) -> None:
        super().__init__()
        if not 1 <= blocks <= len(SMALL_BLOCKS):
            raise ValueError(f"blocks must be 1-{len(SMALL_BLOCKS)}, got {blocks}")
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, STEM_WIDTH, 3, 2, 1, bias=False),
                                                 nn.BatchNorm2d(STEM_WIDTH), nn.Hardswish())]
        inp = STEM_WIDTH
        for kernel, hidden, out, se, hswish, stride in SMALL_BLOCKS[:blocks]:
            layers.append(InvertedResidual(inp, hidden, out, kernel, stride, se, hswish))
            inp = out
        self.features = nn.Sequential(*layers)
        self.out_channels = inp
        self.stride = 2 ** (1 + sum(b[5] == 2 for b in SMALL_BLOCKS[:blocks]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    @torch.no_grad()
    def fold_for_inference(self) -> list[str]:
        """Fold each block's project conv + BN into the next block's expand conv where nothing lies between
        (no residual add, no activation) and the product costs no more multiply-adds than the pair; the
        project becomes the identity. Exact up to float rounding (products taken in float64). Returns the
        blocks whose project went."""
        folded = []
        for i in range(1, len(self.features) - 1):
            block, after = self.features[i], self.features[i + 1]
            project, bn = block.conv[-2], block.conv[-1]
            expand, bn2 = after.conv[0], after.conv[1]
            # a residual add on either side reads the block's output a second time; a depthwise first
            # conv means the next block has no expand conv; the expand conv's own bias would need a home
            if block.identity or after.identity or not isinstance(project, nn.Conv2d) or expand.groups != 1 \
                    or expand.kernel_size != (1, 1) or expand.bias is not None:
                continue
            n_in, n_mid, n_out = project.in_channels, project.out_channels, expand.out_channels
            if n_in * n_out > n_mid * (n_in + n_out):
                continue
            p, shift = conv_bn_affine(project, bn)
            e = expand.weight.double().flatten(1)
            merged = nn.Conv2d(n_in, n_out, 1, bias=False)
            merged.weight.copy_((e @ p.flatten(1)).view_as(merged.weight))
            bn2.running_mean.copy_(bn2.running_mean.double() - e @ shift)   # E(Px + c) = (EP)x + Ec
            after.conv[0] = merged
            block.conv[-2], block.conv[-1] = nn.Identity(), nn.Identity()
            folded.append(f"features.{i}")
        return folded
