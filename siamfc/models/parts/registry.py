"""The model-part registries: a backbone, neck or head is one named entry.

An entry is a callable that takes the keyword arguments of its config section
and returns an ``nn.Module``. Interfaces, so that any backbone meets any head:

- a backbone maps an image batch to a feature map, or to a list of them (one per
  stage it exposes, as the ResNet-50 of SiamRPN++ does);
- a neck maps what the backbone returns to what the head takes, for both branches;
- a head has ``prepare(fz)``, run once per exemplar (the tracker caches it), and
  ``respond(kernel, fx)``, which returns a dict: ``{"score": N x 1 x H x W}`` for a
  score map, or ``{"cls": N x 2A x H x W, "loc": N x 4A x H x W}`` for anchors.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ...registry import Registry

Part = Callable[..., nn.Module]

BACKBONES: Registry[Part] = Registry("backbone")
NECKS: Registry[Part] = Registry("neck")
HEADS: Registry[Part] = Registry("head")
