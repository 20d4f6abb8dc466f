"""SiamFC's scale search over any config-built score-map model (:mod:`..models.siamese`).

The SiamFC, SiamVGG and SiamDW-22 models differ from the AlexNet SiamFC only in
their backbone and head: the scale pyramid, window, penalty and damping are the
ones of :class:`.siamfc.SiamFCTracker`. Crops go through the model's own input
convention (``model.normalise``), the same one it was trained with, and its head
runs as it is (SiamVGG's BN adjust, a plain or scaled correlation).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch

from ..config import TrackerConfig
from ..models.siamese import Branch, SiamModel
from .siamfc import SiamFCTracker


class ModelRunner:
    """A model's :class:`Branch` as a backbone runner: NHWC uint8 crops in, the head's features out
    (one map, or a neck's list), with one float input buffer per crop shape reused across frames."""

    torch_threads = True

    def __init__(self, model: SiamModel) -> None:
        self.branch = Branch(model.eval())
        self._inputs: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, crops: np.ndarray) -> Any:
        if crops.shape not in self._inputs:
            self._inputs[crops.shape] = torch.empty(crops.shape[0], crops.shape[3], *crops.shape[1:3])
        x = self._inputs[crops.shape]
        with torch.inference_mode():
            x.copy_(torch.from_numpy(crops).permute(0, 3, 1, 2))
            f = self.branch(x)
        return f[0] if len(f) == 1 else list(f)


def fc_config(model: SiamModel, cfg: TrackerConfig) -> TrackerConfig:
    """``cfg`` with the model's crop sizes and stride, and no extra scale (the head has its own)."""
    m = model.cfg
    return replace(cfg, exemplar_sz=m.exemplar_sz, instance_sz=m.instance_sz, total_stride=m.stride,
                   response_sz=(m.instance_sz - m.exemplar_sz) // m.stride + 1, out_scale=1.0)


class ModelSiamFCTracker(SiamFCTracker):
    """The SiamFC tracker (Bertinetto et al., 2016) around a :class:`SiamModel` with a score-map head."""

    def __init__(self, model: SiamModel, cfg: TrackerConfig | None = None, name: str = "SiamFC") -> None:
        self.model = model.eval()
        super().__init__(ModelRunner(self.model), fc_config(self.model, cfg or TrackerConfig()), name=name)

    def correlator(self, z: np.ndarray) -> Callable[[Any], np.ndarray]:
        with torch.inference_mode():
            kernel = self.model.head.prepare(self.runner(z))
        return lambda fx: self._respond(kernel, fx)

    def _respond(self, kernel: Any, fx: Any) -> np.ndarray:
        with torch.inference_mode():
            return self.model.head.respond(kernel, fx)["score"][:, 0].float().numpy()
