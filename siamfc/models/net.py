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

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(z), self.backbone(x))
