"""Backbones, necks and heads, each registered by name (see :mod:`.registry`).

Importing this package registers every part.
"""
from . import alexnet, dwrpn, heads, mobilenetv3, nanohead, necks, resnet, siamdw, uprpn, vgg  # noqa: F401
from .registry import BACKBONES, HEADS, NECKS

__all__ = ["BACKBONES", "HEADS", "NECKS"]
