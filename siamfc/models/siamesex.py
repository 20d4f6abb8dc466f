"""SiameseX state dicts onto our models.

SiameseX saves either a bare state dict or its demos' ``{"model." + key}`` form,
with or without BN's ``num_batches_tracked``. Each model's config carries the
rules that rename its keys onto our modules (``model.siamesex_keys``); they live
beside the model they describe, so a new model needs no code here.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

from ..errors import InputError
from .siamese import SiamModel

TRACKED = "num_batches_tracked"


def map_siamesex_keys(state: Mapping[str, torch.Tensor], rules: list[list[str]]) -> dict[str, torch.Tensor]:
    """``state`` renamed by ``rules`` (``model.`` prefixes dropped first)."""
    out = {}
    for key, value in state.items():
        if key.startswith("model."):
            key = key[len("model."):]
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def load_siamesex(model: SiamModel, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Copy a SiameseX (or other foreign) state dict into ``model``; every tensor must find its place and
    shape, except those the config's ``unused_keys`` names."""
    unused = [re.compile(p) for p in model.cfg.unused_keys]
    state = {k: v for k, v in state.items() if not any(p.search(k.removeprefix("model.")) for p in unused)}
    mapped = map_siamesex_keys(state, model.cfg.siamesex_keys)
    own = model.state_dict()
    missing = [k for k in own if k not in mapped and not k.endswith(TRACKED)]
    unknown = [k for k in mapped if k not in own and not k.endswith(TRACKED)]
    if missing or unknown:
        what = f"missing {missing[0]}" if missing else f"unexpected {unknown[0]}"
        raise InputError(f"{source}: not a SiameseX {model.cfg.name} checkpoint ({what}; "
                         f"{len(missing)} missing, {len(unknown)} unexpected keys)")
    for k, v in mapped.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise InputError(f"{source}: {k} has shape {tuple(v.shape)}, {model.cfg.name} needs "
                             f"{tuple(own[k].shape)}")
    model.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
