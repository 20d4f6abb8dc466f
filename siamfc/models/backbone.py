"""The SiamFC AlexNet: a plain chain (:mod:`.chain`) with configurable per-layer widths.

96-256-384-384-256 channels at full width; conv2, conv4 and conv5 have two groups;
BN and ReLU follow conv1-4, a 3x3/2 max-pool follows conv1 and conv2. Total
stride 8; an exemplar of 127 px embeds to 6x6, a search image of 255 px to 22x22.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..registry import Registry
from .chain import ConvChain, Layer

FULL_WIDTHS: tuple[int, ...] = (96, 256, 384, 384, 256)
GROUPS: tuple[int, ...] = (1, 2, 1, 2, 2)
KERNELS: tuple[int, ...] = (11, 5, 3, 3, 3)
STRIDES: tuple[int, ...] = (2, 1, 1, 1, 1)
POOLED: tuple[bool, ...] = (True, True, False, False, False)
TOTAL_STRIDE = 8


def slim_width(rate: float, full: int) -> int:
    """The FD width rule: an even number of channels, ``int(int(s*C/2)*2)``."""
    return int(int(rate * full / 2) * 2)


def widths_from_rates(rates: Sequence[float], full: Sequence[int] = FULL_WIDTHS) -> tuple[int, ...]:
    """Per-layer output widths for one squeeze rate per layer (1.0 keeps a layer's width)."""
    if len(rates) != len(full):
        raise ValueError(f"expected {len(full)} squeeze rates, got {len(rates)}")
    return tuple(slim_width(r, c) for r, c in zip(rates, full))


def alexnet_layers(widths: Sequence[int] = FULL_WIDTHS) -> tuple[Layer, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != 5:
        raise ValueError(f"expected 5 widths, got {widths}")
    last = len(widths) - 1
    return tuple(Layer(w, KERNELS[i], STRIDES[i], 0, GROUPS[i], bn=i < last, relu=i < last,
                       pool=(3, 2) if POOLED[i] else None) for i, w in enumerate(widths))


class AlexNet(ConvChain):
    """Five-layer SiamFC AlexNet; ``widths`` are the output channels of conv1-5."""

    def __init__(self, widths: Sequence[int] = FULL_WIDTHS) -> None:
        super().__init__(alexnet_layers(widths))


def _init_convs(module: nn.Module, conv_init: Callable[[torch.Tensor], Any]) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            conv_init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform convs with zero bias, unit BN: SiamFC's initialisation."""
    _init_convs(module, nn.init.xavier_uniform_)


def he_init(module: nn.Module) -> None:
    """He-normal convs (fan-in, ReLU gain) with zero bias, unit BN. Xavier halves a ReLU layer's signal
    variance, which BN undoes; a deep stack without BN (SiamVGG's ten ReLU convs) keeps its scale only with
    He et al.'s (ICCV 2015) gain."""
    _init_convs(module, lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"))


INITS: Registry[Callable[[nn.Module], None]] = Registry("backbone init")
INITS.add("xavier", init_weights)
INITS.add("he", he_init)
