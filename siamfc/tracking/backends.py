"""Backbone runners for the tracker.

A runner maps a batch of uint8 RGB crops (N, H, W, 3) to float32 embeddings
(N, C, h, w). The tracker only calls runners, so precision, compilation and the
inference engine are chosen here and nowhere else.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

TORCH_BACKENDS = ("fp32", "bf16")


def default_device() -> torch.device:
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


class TorchRunner:
    """Runs a PyTorch backbone in channels-last layout under ``inference_mode``.

    ``precision="bf16"`` wraps the forward in bf16 autocast (AMP on CUDA).
    """

    def __init__(self, backbone: nn.Module, device: torch.device | None = None,
                 precision: str = "fp32") -> None:
        if precision not in TORCH_BACKENDS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {TORCH_BACKENDS}")
        self.device = device or default_device()
        self.precision = precision
        self.backbone = backbone.eval().to(self.device, memory_format=torch.channels_last)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def __call__(self, crops: np.ndarray) -> torch.Tensor:
        # An NHWC array permuted to NCHW is already channels-last: no copy needed.
        x = torch.from_numpy(crops).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        with torch.inference_mode(), self._autocast():
            return self.backbone(x).float()
