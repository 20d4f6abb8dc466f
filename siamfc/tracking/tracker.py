"""The SiamFC tracker as a got10k ``Tracker``."""
from __future__ import annotations

import os
import time
from typing import Any

import cv2
import numpy as np
import torch
from got10k.trackers import Tracker

from ..boxes import from_center, is_valid_box, to_center
from ..config import TrackerConfig
from ..data.sequences import read_frame
from ..errors import InputError
from ..models.checkpoint import load_checkpoint
from ..models.head import xcorr
from ..models.net import SiamNet
from .backends import TorchRunner, default_device
from .ops import crop_region, fill_color


class SiamFCTracker(Tracker):
    """Fully-convolutional Siamese tracker (Bertinetto et al., 2016).

    Per frame: crop the search region at ``scale_num`` scales, embed them in one
    batch, correlate with the exemplar, upsample the score maps (bicubic), damp
    scale changes, add a cosine window and move to the peak.
    """

    def __init__(self, net: SiamNet | None = None, cfg: TrackerConfig | None = None,
                 name: str = "SiamFC", device: torch.device | None = None,
                 backend: str = "fp32", runner: Any = None) -> None:
        super().__init__(name, is_deterministic=True)
        self.cfg = cfg = cfg or TrackerConfig()
        self.device = device or default_device()
        if runner is None:
            if net is None:
                raise ValueError("give a network or a backbone runner")
            runner = TorchRunner(net.backbone, self.device, backend)
        self.runner = runner
        self.backend = backend
        self.upscale_sz = cfg.response_up * cfg.response_sz
        hann = np.outer(np.hanning(self.upscale_sz), np.hanning(self.upscale_sz))
        self.hann_window = hann / hann.sum()
        half = cfg.scale_num // 2
        self.scale_factors = cfg.scale_step ** np.linspace(-half, half, cfg.scale_num)
        self.scale_weights = np.full(cfg.scale_num, cfg.scale_penalty, dtype=np.float32)
        self.scale_weights[half] = 1.0
        self.last_score = 0.0

    @classmethod
    def from_checkpoint(cls, path: str, cfg: TrackerConfig | None = None, name: str | None = None,
                        device: torch.device | None = None, backend: str = "fp32") -> "SiamFCTracker":
        """Build a tracker from a checkpoint file alone; its widths come from the tensors."""
        cfg = cfg or TrackerConfig()
        loaded = load_checkpoint(path, cfg.out_scale)
        name = name or os.path.splitext(os.path.basename(path))[0]
        return cls(loaded.net, cfg, name=name, device=device, backend=backend)

    def init(self, image: Any, box: np.ndarray) -> None:
        img = np.asarray(image)
        if not is_valid_box(box):
            raise InputError(f"initial box {np.asarray(box).tolist()} is not a finite box with positive size")
        cfg = self.cfg
        self.center, self.target_sz = to_center(box)
        context = cfg.context * self.target_sz.sum()
        self.z_sz = float(np.sqrt(np.prod(self.target_sz + context)))
        self.x_sz = self.z_sz * cfg.instance_sz / cfg.exemplar_sz
        self.fill = fill_color(img)
        z = crop_region(img, self.center, self.z_sz, cfg.exemplar_sz, self.fill)
        self.kernel = self.runner(z[None])

    def update(self, image: Any) -> np.ndarray:
        img = np.asarray(image)
        cfg = self.cfg
        crops = np.stack([crop_region(img, self.center, self.x_sz * f, cfg.instance_sz, self.fill)
                          for f in self.scale_factors])
        responses = (xcorr(self.kernel, self.runner(crops)) * cfg.out_scale)[:, 0].cpu().numpy()
        up = np.stack([cv2.resize(r, (self.upscale_sz, self.upscale_sz), interpolation=cv2.INTER_CUBIC)
                       for r in responses])
        peaks = up.reshape(len(up), -1).max(axis=1) * self.scale_weights
        scale_id = int(np.argmax(peaks))
        self.last_score = float(peaks[scale_id])

        response = up[scale_id] * self.scale_weights[scale_id]
        response -= response.min()
        response /= response.sum() + 1e-16
        response = (1 - cfg.window_influence) * response + cfg.window_influence * self.hann_window
        loc = np.unravel_index(response.argmax(), response.shape)

        disp = (np.array(loc) - (self.upscale_sz - 1) / 2) * cfg.total_stride / cfg.response_up
        self.center = self.center + disp * self.x_sz * self.scale_factors[scale_id] / cfg.instance_sz
        scale = (1 - cfg.scale_lr) + cfg.scale_lr * self.scale_factors[scale_id]
        self.target_sz = self.target_sz * scale
        self.z_sz *= scale
        self.x_sz *= scale
        return from_center(self.center, self.target_sz)

    def track(self, img_files: list[str], box: np.ndarray,
              visualize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return run_tracker(self, img_files, box, visualize)


def run_tracker(tracker: Tracker, img_files: list[str], box: np.ndarray,
                visualize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Track any got10k ``Tracker`` through ``img_files``.

    Frames are decoded with :func:`read_frame` (clear errors for bad files); the
    times cover ``init``/``update`` only, as got10k measures them.
    """
    boxes = np.zeros((len(img_files), 4))
    boxes[0] = box
    times = np.zeros(len(img_files))
    for f, path in enumerate(img_files):
        img = read_frame(path)
        start = time.perf_counter()
        if f == 0:
            tracker.init(img, box)
        else:
            boxes[f] = tracker.update(img)
        times[f] = time.perf_counter() - start
        if visualize:
            from got10k.utils.viz import show_frame
            from PIL import Image
            show_frame(Image.fromarray(img), boxes[f])
    return boxes, times
