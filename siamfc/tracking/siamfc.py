"""The SiamFC tracker as a got10k ``Tracker``."""
from __future__ import annotations

import time
from typing import Any, Callable

import cv2
import numpy as np
from got10k.trackers import Tracker

from ..geometry import CROPS, context_size, fill_color, from_center, is_valid_box, to_center
from ..config import TrackerConfig
from ..data.sequences import read_frame
from ..errors import InputError
from .ops import Correlator, Upsampler, torch_threads
from .profile import FrameProfile


class SiamFCBase(Tracker):
    """What every SiamFC tracker shares, whatever runs its per-frame work: the scale
    pyramid and its penalties, the cosine window, the target's state and how one
    frame's peak moves it."""

    def __init__(self, name: str, cfg: TrackerConfig | None = None) -> None:
        super().__init__(name, is_deterministic=True)
        self.cfg = cfg = cfg or TrackerConfig()
        self.upscale_sz = cfg.response_up * cfg.response_sz
        hann = np.outer(np.hanning(self.upscale_sz), np.hanning(self.upscale_sz))
        self.hann_window = hann / hann.sum()
        half = cfg.scale_num // 2
        self.scale_factors = cfg.scale_step ** np.linspace(-half, half, cfg.scale_num)
        self.scale_weights = np.full(cfg.scale_num, cfg.scale_penalty, dtype=np.float32)
        self.scale_weights[half] = 1.0
        self.profile = FrameProfile()

    def start(self, img: np.ndarray, box: np.ndarray) -> None:
        """The target's state from the first box: centre, size and the two crop sides."""
        if not is_valid_box(box):
            raise InputError(f"initial box {np.asarray(box).tolist()} is not a finite box with positive size")
        self.center, self.target_sz = to_center(box)
        self.z_sz = context_size(self.target_sz, self.cfg.context)
        self.x_sz = self.z_sz * self.cfg.instance_sz / self.cfg.exemplar_sz

    def follow(self, other: "SiamFCBase") -> None:
        """Take ``other``'s target state (to compare one frame's decision of two trackers)."""
        self.center, self.target_sz = other.center.copy(), other.target_sz.copy()
        self.z_sz, self.x_sz = other.z_sz, other.x_sz

    def move(self, loc: tuple[int, int], scale_id: int) -> np.ndarray:
        """Move to the peak ``loc`` of the upsampled map of scale ``scale_id``; damp the scale."""
        cfg = self.cfg
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


class SiamFCTracker(SiamFCBase):
    """Fully-convolutional Siamese tracker (Bertinetto et al., 2016).

    Per frame: cut the search square at ``scale_num`` scales (``cfg.crop``: one
    warp each, or the public code's resize), embed them in one batch, correlate
    with the cached exemplar (one GEMM and one strided sum), upsample the score
    maps bicubically (two GEMMs for all scales), damp scale changes, add a cosine
    window and move to the peak. ``profile`` times each of these parts.
    """

    def __init__(self, runner: Callable[[np.ndarray], np.ndarray], cfg: TrackerConfig | None = None,
                 name: str = "SiamFC", backend: str = "fp32") -> None:
        super().__init__(name, cfg)
        cfg = self.cfg
        self.runner = runner   # the backbone on some backend (tracking/backends.py builds it)
        self.backend = backend
        self.last_score = 0.0
        # Per-frame work reuses these buffers: nothing is allocated in update().
        self._crops = np.empty((cfg.scale_num, cfg.instance_sz, cfg.instance_sz, 3), np.uint8)
        self._sizes = np.empty(cfg.scale_num)
        self._maps = np.empty((cfg.scale_num, cfg.response_sz, cfg.response_sz), np.float32)
        self._upsample = Upsampler(cfg.scale_num, cfg.response_sz, cfg.response_up)
        self._mix = np.empty((self.upscale_sz, self.upscale_sz), np.float32)
        self._window = (cfg.window_influence * self.hann_window).astype(np.float32)
        self._cut = CROPS[cfg.crop]
        # A backbone outside PyTorch (ONNX Runtime) lets its threads sleep between runs.
        # The small GEMMs here, run on PyTorch's pool, would leave its threads spinning
        # on the other core through the next backbone run (measured: 1 ms a frame for
        # FD-0.3 int8); on the calling thread alone they cost the same.
        self._gemm_threads = None if getattr(runner, "torch_threads", True) else 1

    def init(self, image: Any, box: np.ndarray) -> None:
        img = np.asarray(image)
        self.start(img, box)
        self.fill = fill_color(img)
        z = np.empty((1, self.cfg.exemplar_sz, self.cfg.exemplar_sz, 3), np.uint8)
        self._cut(img, self.center, [self.z_sz], self.cfg.exemplar_sz, self.fill, z)
        self.correlate = self.correlator(z)

    def correlator(self, z: np.ndarray) -> Callable[[Any], np.ndarray]:
        """What maps the search features to one score map per scale, from the exemplar crop."""
        return Correlator(self.runner(z))

    def response(self, image: Any) -> np.ndarray:
        """The raw score map (before upsampling and the window) of the current target
        position in ``image`` at the current scale."""
        img = np.asarray(image)
        crop = np.empty((1, self.cfg.instance_sz, self.cfg.instance_sz, 3), np.uint8)
        self._cut(img, self.center, [self.x_sz], self.cfg.instance_sz, self.fill, crop)
        return self.correlate(self.runner(crop))[0]

    def update(self, image: Any) -> np.ndarray:
        img = np.asarray(image)
        cfg, mark = self.cfg, self.profile.mark
        self.profile.start()
        np.multiply(self.scale_factors, self.x_sz, out=self._sizes)
        self._cut(img, self.center, self._sizes, cfg.instance_sz, self.fill, self._crops)
        mark("crop")
        features = self.runner(self._crops)
        mark("backbone")
        with torch_threads(self._gemm_threads):
            np.multiply(self.correlate(features), np.float32(cfg.out_scale), out=self._maps)
            mark("correlation")
            up = self._upsample(self._maps)
            mark("upsample")
        peaks = up.reshape(len(up), -1).max(axis=1) * self.scale_weights
        scale_id = int(np.argmax(peaks))
        self.last_score = float(peaks[scale_id])

        # SiamFC's peak: the argmax of (1 - wi) * r_n + wi * window, where r_n is the
        # scaled map shifted to a zero minimum and divided by its sum. That shift and
        # division are an affine map with one gain k for every pixel, and the shift
        # moves every pixel alike, so the argmax of k * map + window is the same one,
        # found in three passes instead of eight.
        response = up[scale_id]
        weight = float(self.scale_weights[scale_id])
        total = weight * (float(response.sum()) - response.size * float(response.min()))
        gain = (1 - cfg.window_influence) * weight / (total + 1e-16)
        cv2.scaleAdd(response, gain, self._window, dst=self._mix)
        loc = np.unravel_index(int(self._mix.argmax()), self._mix.shape)
        mark("peak")
        box = self.move(loc, scale_id)
        mark("state")
        return box


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
