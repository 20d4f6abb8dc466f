"""ONNX export for deployment: the backbone's graph, checked against PyTorch.

The export itself and the ONNX Runtime runner live in
:mod:`siamfc.tracking.onnx_runtime`, since the tracker's ``onnxruntime`` backends
use them too; this module adds the checks a deployed file must pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..tracking.onnx_runtime import INPUT, export_backbone, session

__all__ = ["ExportCheck", "check_export", "export_backbone"]


@dataclass
class ExportCheck:
    random: float
    crops: float
    exemplar: float

    @property
    def worst(self) -> float:
        return max(self.random, self.crops, self.exemplar)


def check_export(path: str, backbone: nn.Module, crops: torch.Tensor) -> ExportCheck:
    """Worst relative difference between ONNX Runtime and PyTorch on random search
    batches, on ``crops`` (N, 3, 255, 255) and on a 127 exemplar."""
    import onnx

    onnx.checker.check_model(onnx.load(path))
    sess = session(path)
    backbone = backbone.eval()
    gen = torch.Generator().manual_seed(0)

    def worst(x: torch.Tensor) -> float:
        with torch.no_grad():
            want = backbone(x)
        got = torch.from_numpy(sess.run(None, {INPUT: x.numpy()})[0])
        return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))

    return ExportCheck(worst(torch.rand(3, 3, 255, 255, generator=gen) * 255), worst(crops),
                       worst(crops[:1, :, 64:191, 64:191].contiguous()))
