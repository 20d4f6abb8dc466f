"""Checkpoints of config-built models (:mod:`.siamese`), ours and foreign ones (SiameseX's, NanoTrack's).

Ours are ``{"state_dict", "meta": {"model": <the model section>, ...}}``: the file
alone rebuilds the network. A SiameseX state dict (bare or with its demos'
``model.`` prefix), or a pysot-style snapshot (``{"state_dict", "epoch", "optimizer"}``), has no
meta, so it loads with the config that names its model and maps its keys.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..config import to_dict
from ..errors import InputError
from ..files import torch_save
from .checkpoint import read_checkpoint
from .siamese import ModelConfig, SiamModel, build_model, model_config
from .siamesex import load_siamesex


@dataclass
class LoadedModel:
    model: SiamModel
    meta: dict[str, Any]


def is_model_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of our config-model checkpoints (it names its model)."""
    obj = read_checkpoint(path)
    return isinstance(obj.get("meta"), dict) and isinstance(obj["meta"].get("model"), dict)


def model_name(path: str | os.PathLike) -> str | None:
    """The model name one of our checkpoints records (memory-mapped: the tensors are not read)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:   # not ours, or unreadable: the caller names it otherwise
        return None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    return meta.get("model", {}).get("name") if isinstance(meta, dict) else None


def save_model(path: str | os.PathLike, model: SiamModel, **meta: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save({"state_dict": state, "meta": {"model": to_dict(model.cfg), **meta}}, path)


def load_model(path: str | os.PathLike | None, config: str | os.PathLike | ModelConfig | None = None
               ) -> LoadedModel:
    """The model in ``path`` (ours, or SiameseX's with ``config``); no path: ``config``'s freshly built model."""
    if isinstance(config, ModelConfig):
        cfg: ModelConfig | None = config
    else:
        cfg = model_config(config) if config is not None else None
    if path is None:
        if cfg is None:
            raise InputError("a model needs a config or a checkpoint")
        return LoadedModel(build_model(cfg).eval(), {})
    obj = read_checkpoint(path)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    if meta.get("model"):
        model = build_model(model_config(meta["model"]) if cfg is None else cfg)
        state = obj["state_dict"]
        own = model.state_dict()
        problems = [k for k in own if k not in state] + [k for k in state if k not in own]
        if problems:
            raise InputError(f"{path}: checkpoint does not fit {model.cfg.name}: "
                             f"{len(problems)} keys differ, first {problems[0]}")
        model.load_state_dict(state)
        return LoadedModel(model.eval(), dict(meta))
    if cfg is None:
        raise InputError(f"{path}: a bare state dict names no model; give the config of its model "
                         f"(configs/siamesex/NAME.yaml)")
    model = build_model(cfg)
    # pysot-family snapshots (NanoTrack's) nest the weights beside the epoch and optimizer state
    state = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj
    load_siamesex(model, {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, str(path))
    return LoadedModel(model.eval(), {"source": "siamesex"})


def load_backbone_weights(model: SiamModel, path: str | os.PathLike) -> list[str]:
    """A local backbone state dict (torchvision's ResNet-50 file, say), or a trained model's
    checkpoint with the same backbone, into ``model.backbone``.

    Keys the backbone lacks (a classifier's ``fc.*``) are left out. Tensors whose shape differs
    keep their initialisation and are returned: pysot's ResNet has 3x3 shortcut convs in
    layer2-4 where torchvision's are 1x1. Every other backbone tensor must be in the file."""
    obj = read_checkpoint(path)
    state = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("backbone.") for k in state):   # a whole model's checkpoint: its backbone
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    own = model.backbone.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(f"{path}: not a {model.cfg.backbone.name} state dict (missing {missing[0]} "
                         f"and {len(missing) - 1} more)")
    kept = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    model.backbone.load_state_dict({k: state[k] for k in own if k in state and k not in kept}, strict=False)
    return kept
