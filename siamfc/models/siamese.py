"""A Siamese model assembled from registered parts: ``backbone -> neck -> head``.

A YAML file's ``model`` section names the parts and their arguments, the input
convention and the crop sizes, the way pysot's builders and SiameseX's model list
do; :func:`build_model` turns it into a :class:`SiamModel`. Adding a model is a
config and, where its parts are new, registry entries: nothing here changes.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import torch
from torch import nn

from ..config import Config, ConfigError, from_dict, load_yaml, param
from .parts import BACKBONES, HEADS, NECKS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# raw: RGB 0-255 as it is; raw_bgr: the same as BGR (models trained on cv2.imread frames, as pysot-family
# code trains them); imagenet: ImageNet-normalised RGB 0-1
INPUTS = ("raw", "raw_bgr", "imagenet")
# the trackers a model's config can name (tracking/factory.py maps each to its tracker and options)
TRACKERS = ("siamfc", "rpn", "nano")


@dataclasses.dataclass
class PartSpec(Config):
    """One part: its registered ``name`` and the keyword arguments it is built with."""

    name: str = ""
    args: dict = param(factory=dict)


@dataclasses.dataclass
class ModelConfig(Config):
    """What a model is made of, what it eats, and which tracker runs it."""

    name: str = "model"
    backbone: PartSpec = param(factory=PartSpec)
    neck: PartSpec | None = None
    head: PartSpec = param(factory=PartSpec)
    input: str = param("raw", choices=INPUTS)
    exemplar_sz: int = param(127, ge=15)
    instance_sz: int = param(255, ge=15)
    stride: int = param(8, ge=1)
    tracker: str = param("siamfc", choices=TRACKERS)
    anchor_ratios: list[float] = param(factory=lambda: [0.33, 0.5, 1.0, 2.0, 3.0], gt=0)
    anchor_scales: list[float] = param(factory=lambda: [8.0], gt=0)
    # SiameseX state-dict keys -> ours: (regex, replacement) pairs applied in order
    siamesex_keys: list[list[str]] = param(factory=list)
    # foreign checkpoint keys (regexes, matched before renaming) the model has no place for: trained
    # modules its tracker never runs (NanoTrack v2's neck). Every other key must still find its place.
    unused_keys: list[str] = param(factory=list)

    def check(self) -> None:
        for field, registry in (("backbone", BACKBONES), ("head", HEADS)):
            name = getattr(self, field).name
            if name not in registry:
                raise ConfigError(f"ModelConfig.{field}.name", f"unknown {field} '{name}'; choose one of "
                                                              f"{', '.join(registry.names())}")
        if self.neck is not None and self.neck.name not in NECKS:
            raise ConfigError("ModelConfig.neck.name", f"unknown neck '{self.neck.name}'; choose one of "
                                                       f"{', '.join(NECKS.names())}")
        anchors = self.head.args.get("anchor_num")
        if self.tracker == "rpn" and anchors is not None and anchors != self.anchor_num:
            raise ConfigError("ModelConfig.head.args.anchor_num", f"{anchors} does not match the "
                                                                  f"{self.anchor_num} anchor ratios x scales")
        for i, rule in enumerate(self.siamesex_keys):
            if len(rule) != 2:
                raise ConfigError(f"ModelConfig.siamesex_keys[{i}]", "expected [pattern, replacement]")
        for i, pattern in enumerate(self.unused_keys):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"ModelConfig.unused_keys[{i}]", f"not a regular expression: {e}") from None

    @property
    def anchor_num(self) -> int:
        return len(self.anchor_ratios) * len(self.anchor_scales)


class SiamModel(nn.Module):
    """Both branches share ``backbone`` (and ``neck``); ``head`` compares them."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = BACKBONES.get(cfg.backbone.name)(**cfg.backbone.args)
        self.neck = NECKS.get(cfg.neck.name)(**cfg.neck.args) if cfg.neck else None
        self.head = HEADS.get(cfg.head.name)(**cfg.head.args)

    def embed(self, img: torch.Tensor) -> Any:
        f = self.backbone(img)
        return self.neck(f) if self.neck is not None else f

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head.respond(self.head.prepare(self.embed(z)), self.embed(x))

    def normalise(self, img: torch.Tensor) -> torch.Tensor:
        """An RGB 0-255 batch in the model's input convention (the same in training and tracking)."""
        if self.cfg.input == "raw":
            return img
        if self.cfg.input == "raw_bgr":
            return img.flip(1)
        mean = img.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        std = img.new_tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
        return (img - mean) / std


class Branch(nn.Module):
    """One branch as deployed: RGB 0-255 NCHW in, the model's normalisation, backbone and neck, a tuple of
    feature maps out (one map, or a neck's several). Tracking and the ONNX export both run this module."""

    def __init__(self, model: SiamModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.model.embed(self.model.normalise(img))
        return tuple(f) if isinstance(f, (list, tuple)) else (f,)


def build_model(cfg: ModelConfig) -> SiamModel:
    return SiamModel(cfg)


def model_config(source: str | os.PathLike | dict[str, Any]) -> ModelConfig:
    """The ``model`` section of a YAML file, or a dict of it (as a checkpoint's meta keeps it)."""
    if isinstance(source, dict):
        return from_dict(ModelConfig, source, "model")
    return from_dict(ModelConfig, load_yaml(source).get("model"), f"{source}:model")


def count_parameters(module: nn.Module | None) -> int:
    """Trainable parameters, as SiameseX's table counts them."""
    return 0 if module is None else sum(p.numel() for p in module.parameters() if p.requires_grad)
