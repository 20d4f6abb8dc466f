"""The AlexNet backbone of SiamFC (Bertinetto et al., ECCV-W 2016), as SiameseX builds it.

It is this project's own plain chain (:class:`~siamfc.models.backbone.AlexNet`):
BN (eps 1e-6, momentum 0.05) and ReLU after conv1-4, two groups in conv2/4/5,
3x3/2 max-pools after conv1 and conv2, no padding. Stride 8, receptive field
87 px, 256 output channels; a 127 px exemplar embeds to 6x6, a 255 px search
image to 22x22. Being a :class:`~siamfc.models.chain.ConvChain`, FD compresses it.
"""
from __future__ import annotations

from typing import Sequence

from ..backbone import FULL_WIDTHS, AlexNet
from .registry import BACKBONES


@BACKBONES.register("alexnet")
def alexnet(widths: Sequence[int] = FULL_WIDTHS) -> AlexNet:
    """``widths``: the output channels of conv1-5 (full width by default)."""
    return AlexNet(widths)
