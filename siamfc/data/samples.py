"""Sample search crops for checks and calibration: real frames when a folder of
OTB sequences is given, else generated synthetic frames (never benchmark frames)."""
from __future__ import annotations

import glob
import os

import numpy as np
import torch

from ..geometry import crop_region, fill_color
from .sequences import read_frame


def sample_crops(image_dir: str | None, count: int = 6, seed: int = 0, size: int = 255) -> tuple[torch.Tensor, str]:
    """``count`` crops (N, 3, size, size, float 0-255) at random places and scales,
    and where they came from."""
    rng = np.random.default_rng(seed)
    frames = []
    for pattern in ("*/img/*.jpg", "*/*.jpg"):   # OTB sequences, or GOT-10k's
        frames = frames or (sorted(glob.glob(os.path.join(image_dir, pattern))) if image_dir else [])
    if frames:
        picks = [frames[i] for i in rng.choice(len(frames), size=min(count, len(frames)), replace=False)]
        images, source = [read_frame(p) for p in picks], image_dir
    else:
        from .synthetic import render_sequence
        images, source = render_sequence(np.random.SeedSequence(seed), count, 320, 240).frames, "synthetic frames"
    crops = []
    for img in images:
        h, w = img.shape[:2]
        center = np.array([rng.uniform(0, h), rng.uniform(0, w)])
        crops.append(crop_region(img, center, rng.uniform(100, 400), size, fill_color(img)))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float(), source


def calibration_crops(count: int = 64, seed: int = 12345) -> np.ndarray:
    """Search-sized crops of generated frames for int8 calibration: data that never
    overlaps a benchmark's frames."""
    return sample_crops(None, count=count, seed=seed)[0].numpy()
