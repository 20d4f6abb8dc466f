"""The Siamese network: a shared backbone and the cross-correlation head."""
from __future__ import annotations

import torch
from torch import nn

from .head import XCorrHead


class SiamNet(nn.Module):
    """``backbone`` embeds both branches; ``head`` correlates them to a score map."""

    def __init__(self, backbone: nn.Module, out_scale: float = 0.001) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = XCorrHead(out_scale)

    def forward(self, z: torch.Tensor, x: torch.Tensor, features: bool = False):
        """The score map; with ``features`` also both embeddings (for distillation)."""
        fz, fx = self.backbone(z), self.backbone(x)
        responses = self.head(fz, fx)
        return (responses, fz, fx) if features else responses
