"""Shared fixtures. Tests that need ../shared skip, saying why, when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL = SHARED / "data" / "real"
REFERENCE = SHARED / "data" / "reference_boxes"
WEIGHTS = SHARED / "weights"

os.environ.setdefault("MPLBACKEND", "Agg")


def need_shared(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"{p} is not present (../shared material is optional)")


@pytest.fixture
def release_30() -> Path:
    need_shared(WEIGHTS / "FDSiamfc_30.pth")
    return WEIGHTS / "FDSiamfc_30.pth"


def synthetic_crops(root: Path, seed: int) -> Path:
    """Three short synthetic sequences, cropped for training: ``root/crops``."""
    from siamfc.data.crop import crop_dataset
    from siamfc.data.synthetic import SynthConfig, make_dataset

    make_dataset(str(root / "data"), SynthConfig(train_seqs=3, val_seqs=0, frames=12, seed=seed, workers=1))
    crop_dataset("got10k", str(root / "data"), str(root / "crops"))
    return root / "crops"


def textured(rng: np.random.Generator, h: int, w: int, scale: int = 8) -> np.ndarray:
    """Smooth random colour texture (upsampled noise)."""
    small = rng.integers(0, 256, size=(max(h // scale, 2), max(w // scale, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def write_otb_sequence(root: Path, name: str, frames: list[np.ndarray], boxes: np.ndarray,
                       sep: str = ",") -> Path:
    seq = root / name
    (seq / "img").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(seq / "img" / f"{i + 1:04d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (seq / "groundtruth_rect.txt").write_text(
        "".join(sep.join(f"{v:.2f}" for v in b) + "\n" for b in boxes))
    return seq


def write_video_sequence(root: Path, name: str, frames: list[np.ndarray], boxes: np.ndarray | None) -> Path:
    """``root/name/video.mp4`` (MPEG-4 Part 2, which every OpenCV build writes) and ``groundtruth.txt`` unless
    ``boxes`` is None."""
    seq = root / name
    seq.mkdir(parents=True)
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(seq / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    if boxes is not None:
        (seq / "groundtruth.txt").write_text("".join(",".join(f"{v:.2f}" for v in b) + "\n" for b in boxes))
    return seq


def moving_patch_clip(seed: int = 0, n: int = 30, size: tuple[int, int] = (240, 320),
                      target: tuple[int, int] = (40, 48), step: tuple[float, float] = (3.0, 2.0)
                      ) -> tuple[list[np.ndarray], np.ndarray]:
    """A distinct textured patch moving over a smoother textured background."""
    rng = np.random.default_rng(seed)
    h, w = size
    background = (textured(rng, h, w, 32) * 0.6).astype(np.uint8)
    patch = textured(rng, target[0], target[1], 4)
    frames, boxes = [], []
    x, y = 40.0, 50.0
    for _ in range(n):
        frame = background.copy()
        xi, yi = int(round(x)), int(round(y))
        y0, x0 = max(yi, 0), max(xi, 0)
        y1, x1 = min(yi + target[0], h), min(xi + target[1], w)
        if y1 > y0 and x1 > x0:
            frame[y0:y1, x0:x1] = patch[y0 - yi:y1 - yi, x0 - xi:x1 - xi]
        frames.append(frame)
        boxes.append([xi + 1, yi + 1, target[1], target[0]])
        x, y = x + step[0], y + step[1]
    return frames, np.array(boxes, dtype=float)
