"""The Feature-Distilling (FD) backbone, for any plain chain of convolutions.

Layer i of the teacher's chain gets an hourglass of two 1x1 convs between conv_i
and the rest of its block (BN, ReLU, pool): ``squeeze{i}`` (C -> sC) and
``combine{i}`` (sC -> C). For a chain of N layers compression walks through
steps 0 .. 2N-1:

* step 2i-1 (i < N) inserts squeeze_i and combine_i and trains only them;
* step 2i drops combine_i and narrows BN_i and conv_{i+1}'s input to sC, and
  trains only those;
* step 2N-1 inserts the squeeze after the last conv (and narrows the last BN, if
  the layer has one) and trains it.

An :class:`FDPlan` says, for one step, which layers carry a squeeze, a combine,
or run narrowed, and which parameters train; it is derived from the teacher's
chain and the per-layer rates. The network only reads the plan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .backbone import FULL_WIDTHS, alexnet_layers, slim_width
from .chain import Layer, batch_norm, check_widths, conv_block, layers_from_meta, layers_meta

SQUEEZE_GROUPINGS = ("conv", "aligned")


@dataclass(frozen=True)
class FDPlan:
    """Structure of the FD backbone over the teacher chain ``base`` at one ``step`` (0 = teacher).

    ``rates`` are relative to the teacher's widths (one per layer, or one for all).
    ``grouping`` sets the groups of squeeze/combine: ``conv`` groups them like
    conv_i (the paper); ``aligned`` uses the least common multiple of conv_i's and
    conv_{i+1}'s groups, so that combine_i's groups line up with conv_{i+1}'s.
    """

    base: tuple[Layer, ...]
    rates: tuple[float, ...]
    step: int
    grouping: str = "conv"
    slim: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        base = tuple(self.base)
        rates = tuple(float(r) for r in self.rates)
        if len(rates) == 1:
            rates = rates * len(base)
        if len(rates) != len(base):
            raise ValueError(f"{len(rates)} squeeze rates for a chain of {len(base)} layers")
        if not all(0 < r <= 1 for r in rates):
            raise ValueError(f"squeeze rates must be in (0, 1], got {rates}")
        if not 0 <= self.step <= self.last_step_of(base):
            raise ValueError(f"FD step must be in 0..{self.last_step_of(base)}, got {self.step}")
        if self.grouping not in SQUEEZE_GROUPINGS:
            raise ValueError(f"grouping must be one of {SQUEEZE_GROUPINGS}")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "rates", rates)
        slim = tuple(slim_width(r, layer.width) for r, layer in zip(rates, base))
        object.__setattr__(self, "slim", slim)
        check_widths([layer.resized(w) for layer, w in zip(base, slim)])

    @staticmethod
    def last_step_of(base: Sequence[Layer]) -> int:
        return 2 * len(base) - 1

    @property
    def layers(self) -> int:
        return len(self.base)

    @property
    def last_step(self) -> int:
        return self.last_step_of(self.base)

    @property
    def slim_layers(self) -> tuple[Layer, ...]:
        """The chain the fold produces: the teacher's layers at the slim widths."""
        return tuple(layer.resized(w) for layer, w in zip(self.base, self.slim))

    def at(self, step: int) -> "FDPlan":
        return FDPlan(self.base, self.rates, step, self.grouping)

    def squeezed(self, layer: int) -> bool:
        """Layer (1-based) has a squeeze after its conv."""
        return self.step >= 2 * layer - 1

    def combined(self, layer: int) -> bool:
        """Layer has the combine that restores the full width (its odd step only)."""
        return layer < self.layers and self.step == 2 * layer - 1

    def narrowed(self, layer: int) -> bool:
        """The rest of the layer's block (BN, ReLU, pool) and the next conv's input run at sC."""
        return self.step >= (2 * layer if layer < self.layers else 2 * layer - 1)

    def squeeze_groups(self, layer: int) -> int:
        own = self.base[layer - 1].groups
        if self.grouping == "conv":
            return own
        nxt = self.base[layer].groups if layer < self.layers else 1
        return math.lcm(own, nxt)

    def trainable_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes that train at this step (fine-tunes train all)."""
        if self.step == 0:
            return ("",)
        layer = (self.step + 1) // 2
        bn = lambda i: (f"conv{i}.1.",) if self.base[i - 1].bn else ()  # noqa: E731
        if self.step == self.last_step:
            return (f"squeeze{layer}.",) + bn(layer)
        if self.step % 2:
            return (f"squeeze{layer}.", f"combine{layer}.")
        return bn(layer) + (f"conv{layer + 1}.0.",)

    def to_meta(self) -> dict[str, Any]:
        return {"base": layers_meta(self.base), "rates": list(self.rates), "step": self.step,
                "grouping": self.grouping}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "FDPlan":
        """Our checkpoints' ``fd`` entry; one without ``base`` is from the full AlexNet."""
        base = layers_from_meta(meta["base"]) if meta.get("base") else alexnet_layers(FULL_WIDTHS)
        return cls(base, tuple(meta["rates"]), int(meta["step"]), meta.get("grouping", "conv"))


class FDChain(nn.Module):
    """The teacher's chain with the squeeze/combine hourglasses that ``plan`` prescribes."""

    def __init__(self, plan: FDPlan, in_channels: int = 3) -> None:
        super().__init__()
        self.plan = plan
        channels = in_channels
        for i, layer in enumerate(plan.base, 1):
            block = conv_block(layer, channels)
            if plan.narrowed(i) and layer.bn:
                block[1] = batch_norm(plan.slim[i - 1])
            self.add_module(f"conv{i}", block)
            if plan.squeezed(i):
                g = plan.squeeze_groups(i)
                self.add_module(f"squeeze{i}", nn.Conv2d(layer.width, plan.slim[i - 1], 1, groups=g))
                if plan.combined(i):
                    self.add_module(f"combine{i}", nn.Conv2d(plan.slim[i - 1], layer.width, 1, groups=g))
            channels = plan.slim[i - 1] if plan.narrowed(i) else layer.width

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.plan.base

    @property
    def out_channels(self) -> int:
        n = self.plan.layers
        return self.plan.slim[n - 1] if self.plan.squeezed(n) else self.plan.base[n - 1].width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x, keep=False)["out"]

    def trace(self, x: torch.Tensor, keep: bool = True, upto: int | None = None) -> dict[str, torch.Tensor]:
        """Intermediate tensors by name: ``conv{i}`` (conv output, pre-squeeze),
        ``squeeze{i}`` (squeeze output), ``block{i}`` (the layer's output) and ``out``.
        ``upto`` stops after that layer (calibration fits need no more)."""
        out: dict[str, torch.Tensor] = {}
        for i in range(1, (upto or self.plan.layers) + 1):
            block = getattr(self, f"conv{i}")
            x = block[0](x)
            if keep:
                out[f"conv{i}"] = x
            if self.plan.squeezed(i):
                x = getattr(self, f"squeeze{i}")(x)
                if keep:
                    out[f"squeeze{i}"] = x
                if self.plan.combined(i):
                    x = getattr(self, f"combine{i}")(x)
            for j in range(1, len(block)):
                x = block[j](x)
            if keep:
                out[f"block{i}"] = x
        out["out"] = x
        return out

    def set_trainable(self, fine_tune: bool) -> list[str]:
        """Freeze all but this step's parameters (or none when fine-tuning).

        Returns the names of the trainable parameters.
        """
        prefixes = ("",) if fine_tune else self.plan.trainable_prefixes()
        names = []
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith(prefixes))
            if p.requires_grad:
                names.append(name)
        return names
