"""The speed benchmark's baseline: SiamFC's per-frame path as the public code runs it.

siamfc-pytorch and the public FDSiamFC code track the same way: pad the whole
frame with its mean colour wherever a crop leaves it, cut and resize each scale,
turn the stack into a float NCHW tensor, run the eager fp32 backbone, correlate
with ``conv2d`` (one group per search image) and upsample every score map
bicubically. The arithmetic is SiamFC's, so the boxes equal
:class:`~siamfc.tracking.siamfc.SiamFCTracker`'s; only the cost differs, which
is what the benchmark measures side by side on the same machine in one run.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from ..config import TrackerConfig
from ..geometry import fill_color
from ..models.net import SiamNet
from .siamfc import SiamFCBase


def padded_crop(img: np.ndarray, center: np.ndarray, size: float, out_size: int, fill: tuple) -> np.ndarray:
    """The square of side ``round(size)`` around ``center`` (row, col), taken from a copy
    of the frame padded on every side by the largest overhang, then resized."""
    side = max(int(round(size)), 1)
    y0, x0 = (int(v) for v in np.round(center - (side - 1) / 2))
    y1, x1 = y0 + side, x0 + side
    h, w = img.shape[:2]
    pad = max(0, -y0, -x0, y1 - h, x1 - w)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
    patch = img[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


class PlainSiamFCTracker(SiamFCBase):
    """SiamFC the straightforward way: fp32, NCHW, eager, new arrays every frame."""

    def __init__(self, net: SiamNet, cfg: TrackerConfig | None = None, name: str = "SiamFC-plain") -> None:
        super().__init__(name, cfg)
        self.net = net.float().eval()

    def embed(self, crops: list[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return self.net.backbone(x)

    def init(self, image: Any, box: np.ndarray) -> None:
        img = np.asarray(image)
        self.start(img, box)
        self.fill = tuple(int(v) for v in fill_color(img))
        self.kernel = self.embed([padded_crop(img, self.center, self.z_sz, self.cfg.exemplar_sz, self.fill)])

    def update(self, image: Any) -> np.ndarray:
        img = np.asarray(image)
        cfg, mark = self.cfg, self.profile.mark
        self.profile.start()
        crops = [padded_crop(img, self.center, self.x_sz * f, cfg.instance_sz, self.fill) for f in self.scale_factors]
        mark("crop")
        x = self.embed(crops)
        mark("backbone")
        n, c, h, w = x.shape
        with torch.no_grad():
            out = F.conv2d(x.reshape(1, n * c, h, w), self.kernel.repeat(n, 1, 1, 1), groups=n)
        responses = (out.reshape(n, out.shape[-2], out.shape[-1]) * cfg.out_scale).numpy()
        mark("correlation")
        up = np.stack([cv2.resize(r, (self.upscale_sz, self.upscale_sz), interpolation=cv2.INTER_CUBIC)
                       for r in responses]) * self.scale_weights[:, None, None]
        mark("upsample")
        scale_id = int(np.argmax(up.reshape(n, -1).max(axis=1)))
        response = up[scale_id]
        response = response - response.min()
        response = response / (response.sum() + 1e-16)
        response = (1 - cfg.window_influence) * response + cfg.window_influence * self.hann_window
        loc = np.unravel_index(response.argmax(), response.shape)
        mark("peak")
        box = self.move(loc, scale_id)
        mark("state")
        return box
