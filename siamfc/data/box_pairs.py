"""Training pairs with the target's box in the search crop, for heads that regress boxes.

The crop job centres every frame's target in an ``instance_sz`` square and records
its size there (the index's ``size``). One affine warp per image applies the stretch
and, for the search image, a random shift, padding with the crop's mean colour; the
box follows the same map, so it is exact. Unlike :class:`.pairs.PairDataset`, the
search crop keeps its full ``instance_sz`` side (what the tracker feeds) and the
target is off centre by up to ``max_shift`` px, so an RPN cannot learn a centre prior.
"""
from __future__ import annotations

import numpy as np
import torch
import cv2

from .pairs import INTERPOLATIONS, PairDataset


def warp(img: np.ndarray, scale: float, shift: np.ndarray, out_size: int,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``img`` scaled about its centre by ``scale``, moved by ``shift`` and cut to ``out_size``;
    also where the input centre lands (0-based pixels)."""
    c_in = (img.shape[0] - 1) / 2
    centre = (out_size - 1) / 2 + shift
    m = np.array([[scale, 0, centre[0] - scale * c_in], [0, scale, centre[1] - scale * c_in]])
    fill = [float(v) for v in img.reshape(-1, 3).mean(0)]
    out = cv2.warpAffine(img, m, (out_size, out_size), flags=INTERPOLATIONS[rng.integers(len(INTERPOLATIONS))],
                         borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return out, centre


class BoxPairDataset(PairDataset):
    """(exemplar uint8 3 x z x z, search uint8 3 x x x x, box float32 [cx, cy, w, h] in the search crop)."""

    def __init__(self, crops_dir: str, cfg=None, seed: int = 0) -> None:
        super().__init__(crops_dir, cfg, seed)
        self.sizes = {s["dir"]: np.asarray(s["size"], dtype=np.float64) for s in self.index["sequences"]}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, self.epoch, index])
        folder, z, x = self.sample(index, rng)
        stretch = lambda: 1.0 + rng.uniform(-cfg.max_stretch, cfg.max_stretch)   # noqa: E731
        z_img, _ = warp(self._read(folder, z), stretch(), np.zeros(2), cfg.exemplar_sz, rng)
        scale = stretch()
        shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=2)
        x_img, centre = warp(self._read(folder, x), scale, shift, cfg.instance_sz, rng)
        box = np.concatenate([centre, self.sizes[folder][x] * scale]).astype(np.float32)
        return (torch.from_numpy(np.ascontiguousarray(z_img)).permute(2, 0, 1).contiguous(),
                torch.from_numpy(np.ascontiguousarray(x_img)).permute(2, 0, 1).contiguous(),
                torch.from_numpy(box))
