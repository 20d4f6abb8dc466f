"""Score-map heads: one response channel from correlating exemplar and search embeddings."""
from __future__ import annotations

import torch
from torch import nn

from ..head import xcorr
from .registry import HEADS


@HEADS.register("xcorr")
class XCorrScore(nn.Module):
    """SiamFC's cross-correlation (Bertinetto et al., ECCV-W 2016), the exemplar embedding as kernel.

    ``out_scale`` keeps the logits in a trainable range (SiamFC 0.001, SiamDW's
    Corr_Up 0.1). ``adjust`` adds SiamVGG's BatchNorm2d(1) on the response, which
    learns that scale and an offset instead.
    """

    def __init__(self, out_scale: float = 1.0, adjust: bool = False) -> None:
        super().__init__()
        self.out_scale = out_scale
        self.adjust = nn.BatchNorm2d(1) if adjust else None

    def prepare(self, fz: torch.Tensor) -> torch.Tensor:
        return fz

    def respond(self, kernel: torch.Tensor, fx: torch.Tensor) -> dict[str, torch.Tensor]:
        score = xcorr(kernel, fx) * self.out_scale
        return {"score": self.adjust(score) if self.adjust is not None else score}
