"""Plain convolution chains: the backbones that FD compresses and folds.

A chain is a sequence of layers, each one conv followed, optionally, by BN, ReLU
and a max-pool, with nothing that skips a layer. Layer ``i`` is the module
``conv{i}`` = Sequential(conv[, BN][, ReLU][, pool]), which keeps the state-dict
keys ``conv{i}.0.*`` (conv) and ``conv{i}.1.*`` (BN) of the public FDSiamFC
release, so its checkpoints load without renaming.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import torch
from torch import nn

BN_EPS = 1e-6          # the release checkpoints' BN eps
BN_MOMENTUM = 0.05


@dataclass(frozen=True)
class Layer:
    """One layer of a chain: its conv's shape and what follows the conv."""

    width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bn: bool = True
    relu: bool = True
    pool: tuple[int, int] | None = None     # (kernel, stride) of a max-pool after the ReLU

    def resized(self, width: int) -> "Layer":
        return replace(self, width=int(width))

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Layer":
        meta = dict(meta)
        if meta.get("pool") is not None:
            meta["pool"] = tuple(meta["pool"])
        return cls(**meta)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def conv_block(layer: Layer, in_channels: int) -> nn.Sequential:
    """``conv{i}``: the conv, then BN, ReLU and pool as ``layer`` asks."""
    parts: list[nn.Module] = [nn.Conv2d(in_channels, layer.width, layer.kernel, layer.stride, layer.padding,
                                        groups=layer.groups)]
    if layer.bn:
        parts.append(batch_norm(layer.width))
    if layer.relu:
        parts.append(nn.ReLU(inplace=True))
    if layer.pool:
        parts.append(nn.MaxPool2d(*layer.pool))
    return nn.Sequential(*parts)


def check_widths(layers: Sequence[Layer], in_channels: int = 3) -> None:
    """Every width must split into its own conv's groups and the next conv's."""
    if not layers:
        raise ValueError("a chain needs at least one layer")
    if in_channels % layers[0].groups:
        raise ValueError(f"conv1 groups {layers[0].groups} do not divide its {in_channels} input channels")
    for i, layer in enumerate(layers):
        nxt = layers[i + 1].groups if i + 1 < len(layers) else 1
        if layer.width <= 0 or layer.width % layer.groups or layer.width % nxt:
            raise ValueError(f"conv{i + 1} width {layer.width} does not fit its conv groups")


class ConvChain(nn.Module):
    """A plain chain of conv blocks ``conv1 .. convN`` (see the module docstring)."""

    def __init__(self, layers: Sequence[Layer], in_channels: int = 3) -> None:
        super().__init__()
        layers = tuple(layers)
        check_widths(layers, in_channels)
        self.layers = layers
        self.in_channels = in_channels
        channels = in_channels
        for i, layer in enumerate(layers, 1):
            self.add_module(f"conv{i}", conv_block(layer, channels))
            channels = layer.width

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(layer.width for layer in self.layers)

    @property
    def out_channels(self) -> int:
        return self.layers[-1].width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, len(self.layers) + 1):
            x = getattr(self, f"conv{i}")(x)
        return x


def layers_meta(layers: Sequence[Layer]) -> list[dict[str, Any]]:
    return [layer.to_meta() for layer in layers]


def layers_from_meta(meta: Sequence[dict[str, Any]]) -> tuple[Layer, ...]:
    return tuple(Layer.from_meta(m) for m in meta)
