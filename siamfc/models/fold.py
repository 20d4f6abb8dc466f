"""Fold a fully squeezed FD network into a slim plain chain.

After the last step every squeeze_i sits directly after conv_i with nothing in
between, and both are linear, so ``squeeze_i o conv_i`` is one conv: W' = S.W and
b' = S.b + s_b. The product is taken per group, in float64.
"""
from __future__ import annotations

import torch

from .fd import FDPlan

PREFIX = "backbone."


def dense_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Expand a grouped conv weight (O, I/g, k, k) to its dense (O, I, k, k) form."""
    out_ch, in_per_group = weight.shape[:2]
    dense = weight.new_zeros((out_ch, in_per_group * groups) + tuple(weight.shape[2:]))
    o, i = out_ch // groups, in_per_group
    for g in range(groups):
        dense[g * o:(g + 1) * o, g * i:(g + 1) * i] = weight[g * o:(g + 1) * o]
    return dense


def grouped_weight(dense: torch.Tensor, groups: int) -> torch.Tensor:
    """Inverse of :func:`dense_weight`; fails if weight lies outside the group blocks."""
    out_ch, in_ch = dense.shape[:2]
    o, i = out_ch // groups, in_ch // groups
    blocks = [dense[g * o:(g + 1) * o, g * i:(g + 1) * i] for g in range(groups)]
    off_block = dense.clone()
    for g in range(groups):
        off_block[g * o:(g + 1) * o, g * i:(g + 1) * i] = 0
    if off_block.abs().max() > 0:
        raise ValueError(f"weight has non-zero entries outside its {groups} group blocks")
    return torch.cat(blocks, dim=0)


def fold_conv(weight: torch.Tensor, bias: torch.Tensor, groups: int,
              s_weight: torch.Tensor, s_bias: torch.Tensor, s_groups: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose a 1x1 squeeze after a conv; returns float64 (weight, bias) with ``groups``."""
    w = dense_weight(weight.double(), groups)
    s = dense_weight(s_weight.double(), s_groups)[:, :, 0, 0]
    folded = torch.einsum("sc,cikl->sikl", s, w)
    return grouped_weight(folded, groups), s @ bias.double() + s_bias.double()


def fold_state_dict(state: dict[str, torch.Tensor], plan: FDPlan) -> dict[str, torch.Tensor]:
    """Map a last-step FD state dict to the slim chain's state dict (release key layout)."""
    if plan.step != plan.last_step:
        raise ValueError(f"only a fully squeezed FD model (step {plan.last_step}) folds; got step {plan.step}")
    slim: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith((PREFIX + "squeeze", PREFIX + "combine")):
            continue
        slim[key] = value.clone()
    for i, layer in enumerate(plan.base, 1):
        conv = f"{PREFIX}conv{i}.0."
        sq = f"{PREFIX}squeeze{i}."
        w, b = fold_conv(state[conv + "weight"], state[conv + "bias"], layer.groups,
                         state[sq + "weight"], state[sq + "bias"], plan.squeeze_groups(i))
        slim[conv + "weight"] = w.to(state[conv + "weight"].dtype)
        slim[conv + "bias"] = b.to(state[conv + "bias"].dtype)
    return slim
