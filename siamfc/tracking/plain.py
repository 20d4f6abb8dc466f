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
from got10k.trackers import Tracker

from ..config import TrackerConfig
from ..errors import InputError
from ..geometry import context_size, from_center, is_valid_box, to_center
from ..models.net import SiamNet


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


class PlainSiamFCTracker(Tracker):
    """SiamFC the straightforward way: fp32, NCHW, eager, new arrays every frame."""

    def __init__(self, net: SiamNet, cfg: TrackerConfig | None = None, name: str = "SiamFC-plain") -> None:
        super().__init__(name, is_deterministic=True)
        self.cfg = cfg = cfg or TrackerConfig()
        self.net = net.float().eval()
        self.upscale_sz = cfg.response_up * cfg.response_sz
        hann = np.outer(np.hanning(self.upscale_sz), np.hanning(self.upscale_sz))
        self.hann_window = hann / hann.sum()
        half = cfg.scale_num // 2
        self.scale_factors = cfg.scale_step ** np.linspace(-half, half, cfg.scale_num)
        self.penalties = np.where(np.arange(cfg.scale_num) == half, 1.0, cfg.scale_penalty)

    def embed(self, crops: list[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return self.net.backbone(x)

    def init(self, image: Any, box: np.ndarray) -> None:
        img = np.asarray(image)
        if not is_valid_box(box):
            raise InputError(f"initial box {np.asarray(box).tolist()} is not a finite box with positive size")
        cfg = self.cfg
        self.center, self.target_sz = to_center(box)
        self.z_sz = context_size(self.target_sz, cfg.context)
        self.x_sz = self.z_sz * cfg.instance_sz / cfg.exemplar_sz
        self.fill = tuple(float(v) for v in np.clip(np.round(np.mean(img, axis=(0, 1))), 0, 255))
        self.kernel = self.embed([padded_crop(img, self.center, self.z_sz, cfg.exemplar_sz, self.fill)])

    def update(self, image: Any) -> np.ndarray:
        img = np.asarray(image)
        cfg = self.cfg
        x = self.embed([padded_crop(img, self.center, self.x_sz * f, cfg.instance_sz, self.fill)
                        for f in self.scale_factors])
        n, c, h, w = x.shape
        with torch.no_grad():
            out = F.conv2d(x.reshape(1, n * c, h, w), self.kernel.repeat(n, 1, 1, 1), groups=n)
        responses = (out.reshape(n, out.shape[-2], out.shape[-1]) * cfg.out_scale).numpy()
        up = np.stack([cv2.resize(r, (self.upscale_sz, self.upscale_sz), interpolation=cv2.INTER_CUBIC)
                       for r in responses]) * self.penalties[:, None, None].astype(np.float32)
        scale_id = int(np.argmax(up.reshape(n, -1).max(axis=1)))
        response = up[scale_id]
        response = response - response.min()
        response = response / (response.sum() + 1e-16)
        response = (1 - cfg.window_influence) * response + cfg.window_influence * self.hann_window
        loc = np.unravel_index(response.argmax(), response.shape)
        disp = (np.array(loc) - (self.upscale_sz - 1) / 2) * cfg.total_stride / cfg.response_up
        self.center = self.center + disp * self.x_sz * self.scale_factors[scale_id] / cfg.instance_sz
        scale = (1 - cfg.scale_lr) + cfg.scale_lr * self.scale_factors[scale_id]
        self.target_sz = self.target_sz * scale
        self.z_sz *= scale
        self.x_sz *= scale
        return from_center(self.center, self.target_sz)
