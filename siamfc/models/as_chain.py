"""A config-built score-map model whose backbone is a plain chain (SiamVGG) as our chain checkpoint.

FD compresses, folds and tracks :class:`~.net.SiamNet` chains: raw RGB 0-255 in, the
chain's embedding, a cross-correlation times ``out_scale``. A :class:`~.siamese.SiamModel`
with a :class:`~.chain.ConvChain` backbone, no neck and the ``xcorr`` head becomes one:

* its input convention is folded into conv1 (ImageNet normalisation is a per-channel
  affine map of the pixels, and an unpadded conv1 absorbs it exactly);
* the head's scale and SiamVGG's BatchNorm2d(1) on the score map (eval mode: a gain
  ``g = weight / sqrt(running_var + eps)`` and a shift) become ``out_scale = scale * g``.

Dropped: the BN's shift, one constant added to every score. It does not move the peak
of a map, and SiamFC's tracker shifts each map to a zero minimum before the window, so
the position is the same. The one place it acts is the choice between scales, which
compares penalised peaks ``penalty * (g m + shift)``: with the shift gone that is
``penalty * g m``, so near-tied scales may resolve differently. A negative gain would
turn the map upside down and is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from .chain import ConvChain
from .checkpoint import save_checkpoint
from .net import SiamNet
from .parts.heads import XCorrScore
from .siamese import IMAGENET_MEAN, IMAGENET_STD, SiamModel

SIAMFC_CROPS = (127, 255, 8)   # exemplar, search, stride: what the chain tracker assumes


@dataclass
class ChainModel:
    net: SiamNet
    shift: float          # the score-map offset dropped (see the module docstring)


def _check(model: SiamModel) -> None:
    cfg = model.cfg
    if not isinstance(model.backbone, ConvChain) or model.neck is not None or not isinstance(model.head, XCorrScore):
        raise InputError(f"{cfg.name}: only a plain-chain backbone, no neck and the xcorr head convert to a "
                         f"SiamFC chain (got {type(model.backbone).__name__}, {type(model.neck).__name__}, "
                         f"{type(model.head).__name__})")
    if (cfg.exemplar_sz, cfg.instance_sz, cfg.stride) != SIAMFC_CROPS:
        raise InputError(f"{cfg.name}: crops {cfg.exemplar_sz}/{cfg.instance_sz} at stride {cfg.stride} are not "
                         f"SiamFC's {SIAMFC_CROPS[0]}/{SIAMFC_CROPS[1]} at {SIAMFC_CROPS[2]}")
    if cfg.input == "imagenet" and model.backbone.layers[0].padding:
        raise InputError(f"{cfg.name}: conv1 pads its input, so the input normalisation does not fold into it")


def _score_affine(head: XCorrScore) -> tuple[float, float]:
    """(gain, shift) of the head after the plain correlation, in eval mode."""
    if head.adjust is None:
        return float(head.out_scale), 0.0
    bn = head.adjust
    g = float(bn.weight[0]) / float(torch.sqrt(bn.running_var[0] + bn.eps))
    return float(head.out_scale) * g, float(bn.bias[0]) - float(bn.running_mean[0]) * g


@torch.no_grad()
def as_chain(model: SiamModel) -> ChainModel:
    """``model`` as a SiamNet of its own chain on raw pixels (see the module docstring)."""
    _check(model)
    gain, shift = _score_affine(model.head)
    if gain <= 0:
        raise InputError(f"{model.cfg.name}: the score map's gain {gain:.3g} is not positive: the peak would "
                         f"become the trough")
    chain = ConvChain(model.backbone.layers)
    chain.load_state_dict(model.backbone.state_dict())
    if model.cfg.input == "imagenet":
        conv = chain.conv1[0]
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64) * 255
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64) * 255
        w = conv.weight.double()
        conv.bias.copy_(conv.bias.double() - (w * (mean / std).view(1, 3, 1, 1)).sum((1, 2, 3)))
        conv.weight.copy_(w / std.view(1, 3, 1, 1))
    return ChainModel(SiamNet(chain, gain).eval(), shift)


def save_as_chain(model: SiamModel, path: str | os.PathLike, **meta: Any) -> ChainModel:
    """Convert and write our chain checkpoint; its meta records the model and the dropped shift."""
    converted = as_chain(model)
    save_checkpoint(path, converted.net, converted_from=model.cfg.name, dropped_score_shift=converted.shift, **meta)
    return converted
