"""Learning rates relative to each weight's own size.

Adam moves every weight by about its lr a step, whatever the weight's size. One lr of 1e-4 for all is a 16%
step on SiamFC_VID's conv1 (RMS 6e-4: raw pixel input, BN folded into the convs) and a 0.1% step on a BN scale.
With a relative lr each tensor steps by the same fraction of its own RMS, so a network whose layers sit at
very different scales trains as a normalised one would.
"""
from __future__ import annotations

from typing import Any

from torch import nn


def _rms(p: nn.Parameter) -> float:
    return float(p.detach().float().square().mean().sqrt())


def relative_groups(model: nn.Module, relative: float, trainable_only: bool = True) -> list[dict[str, Any]]:
    """One optimiser group per parameter tensor of ``model``, its lr ``relative`` x the tensor's RMS now.
    A tensor that is all zeros (a fresh bias, an identity BN's shift) takes its module's weight's RMS, or 1."""
    groups = []
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        ref = _rms(own["weight"]) if "weight" in own else 0.0
        for p in own.values():
            if trainable_only and not p.requires_grad:
                continue
            groups.append({"params": [p], "lr": relative * (_rms(p) or ref or 1.0)})
    return groups
