"""The VGG-16 backbone of SiamVGG (Li and Zhang, arXiv 2019), as SiameseX builds it.

The first ten 3x3 convs of VGG-16 (Simonyan & Zisserman, ICLR 2015) without
padding, each followed by ReLU, with 2x2/2 max-pools after conv2, conv4 and
conv7, then a 1x1 conv to 256 channels with no ReLU. No BN. Stride 8, receptive
field 90 px; a 127 px exemplar embeds to 5x5, a 255 px search image to 21x21.
It is a plain :class:`~siamfc.models.chain.ConvChain`, so FD can compress it.
"""
from __future__ import annotations

from typing import Sequence

from ..chain import ConvChain, Layer
from .registry import BACKBONES

FULL_WIDTHS: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 256)
POOLED_AFTER: frozenset[int] = frozenset({2, 4, 7})       # 1-based layers followed by a 2x2/2 max-pool


def vgg_layers(widths: Sequence[int] = FULL_WIDTHS) -> tuple[Layer, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != len(FULL_WIDTHS):
        raise ValueError(f"expected {len(FULL_WIDTHS)} widths, got {widths}")
    last = len(widths)
    return tuple(Layer(w, 1 if i == last else 3, bn=False, relu=i < last,
                       pool=(2, 2) if i in POOLED_AFTER else None) for i, w in enumerate(widths, 1))


class VGG16(ConvChain):
    """SiamVGG's truncated VGG-16; ``widths`` are the output channels of conv1-11."""

    def __init__(self, widths: Sequence[int] = FULL_WIDTHS) -> None:
        super().__init__(vgg_layers(widths))


@BACKBONES.register("vgg16")
def vgg16(widths: Sequence[int] = FULL_WIDTHS) -> VGG16:
    return VGG16(widths)
