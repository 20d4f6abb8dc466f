"""Backbones, necks and heads, each registered by name (see :mod:`.registry`).

Importing this package registers every part.
"""
from . import alexnet, dwrpn, heads, necks, resnet, siamdw, uprpn, vgg  # noqa: F401  (registration)
from .registry import BACKBONES, HEADS, NECKS

__all__ = ["BACKBONES", "HEADS", "NECKS"]
