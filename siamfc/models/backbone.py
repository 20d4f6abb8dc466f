"""The SiamFC AlexNet backbone with configurable per-layer widths.

The module layout (``conv{i}`` = Sequential(conv, BN, ReLU[, max-pool])) keeps the
state-dict keys ``conv{i}.0.*`` (conv) and ``conv{i}.1.*`` (BN) that the public
FDSiamFC release checkpoints use, so they load without renaming.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

FULL_WIDTHS: tuple[int, ...] = (96, 256, 384, 384, 256)
GROUPS: tuple[int, ...] = (1, 2, 1, 2, 2)
KERNELS: tuple[int, ...] = (11, 5, 3, 3, 3)
STRIDES: tuple[int, ...] = (2, 1, 1, 1, 1)
POOLED: tuple[bool, ...] = (True, True, False, False, False)
BN_EPS = 1e-6
BN_MOMENTUM = 0.05
TOTAL_STRIDE = 8


def slim_width(rate: float, full: int) -> int:
    """The FD width rule: an even number of channels, ``int(int(s*C/2)*2)``."""
    return int(int(rate * full / 2) * 2)


def widths_from_rates(rates: Sequence[float]) -> tuple[int, ...]:
    """Per-layer output widths for five squeeze rates (1.0 keeps a layer full)."""
    if len(rates) != 5:
        raise ValueError(f"expected 5 squeeze rates, got {len(rates)}")
    return tuple(slim_width(r, c) for r, c in zip(rates, FULL_WIDTHS))


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def conv_block(i: int, in_ch: int, out_ch: int) -> nn.Sequential:
    """Layer ``i`` (0-based): conv, then BN + ReLU (+ pool) for all but the last."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, KERNELS[i], STRIDES[i], groups=GROUPS[i])]
    if i < 4:
        layers += [batch_norm(out_ch), nn.ReLU(inplace=True)]
    if POOLED[i]:
        layers.append(nn.MaxPool2d(3, 2))
    return nn.Sequential(*layers)


class AlexNet(nn.Module):
    """Five-layer SiamFC AlexNet; ``widths`` are the output channels of conv1-5."""

    def __init__(self, widths: Sequence[int] = FULL_WIDTHS) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 5:
            raise ValueError(f"expected 5 widths, got {widths}")
        for i, w in enumerate(widths):
            next_groups = GROUPS[i + 1] if i < 4 else 1
            if w <= 0 or w % GROUPS[i] or w % next_groups:
                raise ValueError(f"conv{i + 1} width {w} does not fit its conv groups")
        self.widths = widths
        in_ch = 3
        for i, w in enumerate(widths):
            self.add_module(f"conv{i + 1}", conv_block(i, in_ch, w))
            in_ch = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv{i}")(x)
        return x


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform convs with zero bias, unit BN: SiamFC's initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
