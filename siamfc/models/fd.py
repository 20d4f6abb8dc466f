"""The Feature-Distilling (FD) backbone.

Layer i of the AlexNet gets an hourglass of two 1x1 convs between conv_i and BN_i:
``squeeze{i}`` (C -> sC) and ``combine{i}`` (sC -> C). Compression walks through
steps 0..9; an :class:`FDPlan` says, for one step, which layers carry a squeeze, a
combine, or have been narrowed (BN_i and conv_{i+1}'s input are sC wide), and
which parameters train. The network itself only reads the plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import torch
from torch import nn

from .backbone import FULL_WIDTHS, GROUPS, batch_norm, conv_block, widths_from_rates

LAST_STEP = 9
SQUEEZE_GROUPINGS = ("conv", "aligned")


@dataclass(frozen=True)
class FDPlan:
    """Structure of the FD backbone at one compression ``step`` (0 = teacher).

    ``grouping`` sets the groups of squeeze/combine: ``conv`` groups them like
    conv_i (the paper); ``aligned`` uses 2 groups everywhere, so that combine_i's
    groups line up with conv_{i+1}'s and can be folded into it without loss.
    """

    rates: tuple[float, ...]
    step: int
    grouping: str = "conv"
    slim: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.step <= LAST_STEP:
            raise ValueError(f"FD step must be in 0..{LAST_STEP}, got {self.step}")
        if self.grouping not in SQUEEZE_GROUPINGS:
            raise ValueError(f"grouping must be one of {SQUEEZE_GROUPINGS}")
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        object.__setattr__(self, "slim", widths_from_rates(self.rates))

    def squeezed(self, layer: int) -> bool:
        """Layer (1-based) has a squeeze after its conv."""
        return self.step >= 2 * layer - 1

    def combined(self, layer: int) -> bool:
        """Layer has the combine that restores the full width (odd steps only)."""
        return layer < 5 and self.step == 2 * layer - 1

    def narrowed(self, layer: int) -> bool:
        """BN_layer and conv_{layer+1}'s input run at the squeezed width."""
        return layer < 5 and self.step >= 2 * layer

    def squeeze_groups(self, layer: int) -> int:
        return GROUPS[layer - 1] if self.grouping == "conv" else 2

    def trainable_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes that train at this step (fine-tunes train all)."""
        if self.step == 0:
            return ("",)
        layer = (self.step + 1) // 2
        if self.step % 2:
            return (f"squeeze{layer}.", f"combine{layer}.")
        return (f"conv{layer}.1.", f"conv{layer + 1}.0.")

    def to_meta(self) -> dict:
        return {"rates": list(self.rates), "step": self.step, "grouping": self.grouping}

    @classmethod
    def from_meta(cls, meta: dict) -> "FDPlan":
        return cls(tuple(meta["rates"]), int(meta["step"]), meta.get("grouping", "conv"))


class FDAlexNet(nn.Module):
    """AlexNet with the squeeze/combine hourglasses that ``plan`` prescribes."""

    def __init__(self, plan: FDPlan) -> None:
        super().__init__()
        self.plan = plan
        in_ch = 3
        for i in range(1, 6):
            full, slim = FULL_WIDTHS[i - 1], plan.slim[i - 1]
            block = conv_block(i - 1, in_ch, full)
            if plan.narrowed(i):
                block[1] = batch_norm(slim)
            self.add_module(f"conv{i}", block)
            if plan.squeezed(i):
                g = plan.squeeze_groups(i)
                self.add_module(f"squeeze{i}", nn.Conv2d(full, slim, 1, groups=g))
                if plan.combined(i):
                    self.add_module(f"combine{i}", nn.Conv2d(slim, full, 1, groups=g))
            in_ch = slim if plan.narrowed(i) else full

    @property
    def out_channels(self) -> int:
        return self.plan.slim[4] if self.plan.squeezed(5) else FULL_WIDTHS[4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            block = getattr(self, f"conv{i}")
            x = block[0](x)
            if self.plan.squeezed(i):
                x = getattr(self, f"squeeze{i}")(x)
                if self.plan.combined(i):
                    x = getattr(self, f"combine{i}")(x)
            for j in range(1, len(block)):
                x = block[j](x)
        return x

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Intermediate tensors by name: ``conv{i}`` (conv output, pre-squeeze),
        ``squeeze{i}`` (squeeze output) and ``block{i}`` (the layer's output)."""
        out = {}
        for i in range(1, 6):
            block = getattr(self, f"conv{i}")
            x = out[f"conv{i}"] = block[0](x)
            if self.plan.squeezed(i):
                x = out[f"squeeze{i}"] = getattr(self, f"squeeze{i}")(x)
                if self.plan.combined(i):
                    x = getattr(self, f"combine{i}")(x)
            for j in range(1, len(block)):
                x = block[j](x)
            out[f"block{i}"] = x
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
