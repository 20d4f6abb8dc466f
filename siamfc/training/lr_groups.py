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


def _sizes(model: nn.Module) -> dict[int, float]:
    """Each parameter's RMS now; a tensor that is all zeros (a fresh bias, an identity BN's shift) takes its
    module's weight's RMS, or 1."""
    sizes = {}
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        ref = _rms(own["weight"]) if "weight" in own else 0.0
        for p in own.values():
            sizes[id(p)] = _rms(p) or ref or 1.0
    return sizes


def relative_groups(model: nn.Module, relative: float,
                    groups: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One optimiser group per tensor, its lr ``relative`` x the tensor's size x its group's ``scale``.
    ``groups`` (dicts of ``params`` and an optional ``scale``) say which tensors train; by default every
    trainable tensor of ``model``, at scale 1."""
    sizes = _sizes(model)
    groups = groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return [{"params": [p], "lr": relative * g.get("scale", 1.0) * sizes[id(p)]} for g in groups for p in g["params"]]
