"""Training pairs from the cropped index, with SiamFC's augmentations.

Every random choice of a sample comes from a generator seeded by (seed, epoch,
index), so a pair depends neither on the worker that loads it nor on whether the
run was resumed: an interrupted training replays exactly the same data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import Config, ConfigError, param
from ..errors import InputError
from ..files import read_json
from .crop import INDEX

INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


@dataclass
class PairConfig(Config):
    exemplar_sz: int = param(127, ge=15)
    instance_sz: int = param(255, ge=15)
    max_stretch: float = param(0.05, ge=0, le=0.5)
    margin: int = param(8, ge=0)          # shift jitter, px: centre crop to 255-8, random crop to 255-16
    max_dist: int = param(100, ge=1)      # frames between exemplar and search
    pairs_per_seq: int = param(1, ge=1)
    max_shift: int = param(32, ge=0)      # box pairs only: the search crop's random shift, px
    epoch_pairs: int = param(0, ge=0)     # pairs an epoch, when fewer than one per sequence (0: pairs_per_seq's)
    search_sz: int = param(0, ge=0)       # train on this central square of the jittered search crop (0: all of
                                          # it, 255 - 2 x margin): a smaller score map, fewer FLOPs a pair

    def check(self) -> None:
        if self.instance_sz - 2 * self.margin < self.exemplar_sz:
            raise ConfigError("PairConfig.margin", f"{self.margin} leaves search crops smaller than the exemplar")
        if self.search_sz and not self.exemplar_sz <= self.search_sz <= self.instance_sz - 2 * self.margin:
            raise ConfigError("PairConfig.search_sz", f"{self.search_sz} is not between exemplar_sz "
                                                      f"{self.exemplar_sz} and {self.instance_sz - 2 * self.margin}")

    @property
    def search_side(self) -> int:
        """The side of the search images training sees."""
        return self.search_sz or self.instance_sz - 2 * self.margin


def stretch(img: np.ndarray, rng: np.random.Generator, max_stretch: float) -> np.ndarray:
    scale = 1.0 + rng.uniform(-max_stretch, max_stretch)
    h, w = img.shape[:2]
    size = (round(w * scale), round(h * scale))
    return cv2.resize(img, size, interpolation=INTERPOLATIONS[rng.integers(len(INTERPOLATIONS))])


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Central ``size`` square; a too-small image is padded with its mean colour."""
    h, w = img.shape[:2]
    i, j = round((h - size) / 2.0), round((w - size) / 2.0)
    pad = max(0, -i, -j)
    if pad:
        fill = [float(v) for v in img.reshape(-1, img.shape[2]).mean(0)]
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        i, j = i + pad, j + pad
    return img[i:i + size, j:j + size]


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    i, j = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return img[i:i + size, j:j + size]


def augment(img: np.ndarray, rng: np.random.Generator, cfg: PairConfig, exemplar: bool) -> np.ndarray:
    """Stretch, centre crop to 255-8, random crop to 255-16 (8 px jitter); exemplars
    are then centre-cropped to 127, search images to ``search_sz`` where set."""
    img = stretch(img, rng, cfg.max_stretch)
    img = center_crop(img, cfg.instance_sz - cfg.margin)
    img = random_crop(img, cfg.instance_sz - 2 * cfg.margin, rng)
    if exemplar or cfg.search_sz:
        img = center_crop(img, cfg.exemplar_sz if exemplar else cfg.search_sz)
    return np.ascontiguousarray(img)


def load_index(crops_dir: str) -> dict:
    path = os.path.join(crops_dir, INDEX)
    if not os.path.isfile(path):
        raise InputError(f"{path}: crop index not found (run tools/crop_train_dataset.py first)")
    return read_json(path)


class PairDataset(Dataset):
    """(exemplar, search) uint8 tensors of shape (3, 127, 127) and (3, S, S), S = ``cfg.search_side`` (239)."""

    def __init__(self, crops_dir: str, cfg: PairConfig | None = None, seed: int = 0) -> None:
        self.root = crops_dir
        self.cfg = cfg or PairConfig()
        self.seed = seed
        self.epoch = 0
        self.index = index = load_index(crops_dir)
        self.sequences = []
        for s in index["sequences"]:
            valid = np.flatnonzero(np.frombuffer(s["valid"].encode(), np.uint8) == ord("1"))
            if len(valid) >= 2:
                self.sequences.append((s["dir"], valid))
        if not self.sequences:
            raise InputError(f"{crops_dir}/{INDEX}: no sequence has two valid frames to pair")

    def __len__(self) -> int:
        return self.cfg.epoch_pairs or len(self.sequences) * self.cfg.pairs_per_seq

    def sample(self, index: int, rng: np.random.Generator) -> tuple[str, int, int]:
        """The sequence folder and (exemplar, search) frame numbers of pair ``index``. A short
        epoch (``epoch_pairs``) starts where the last one stopped, so epochs visit every sequence."""
        folder, valid = self.sequences[(index + self.epoch * self.cfg.epoch_pairs) % len(self.sequences)]
        z = int(rng.choice(valid))
        near = valid[(np.abs(valid - z) <= self.cfg.max_dist) & (valid != z)]
        x = int(rng.choice(near)) if len(near) else z
        return folder, z, x

    def _read(self, folder: str, frame: int) -> np.ndarray:
        path = os.path.join(self.root, folder, f"{frame + 1:08d}.jpg")
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{path}: crop is missing or unreadable (re-run the crop job)")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        folder, z, x = self.sample(index, rng)
        z_img = augment(self._read(folder, z), rng, self.cfg, exemplar=True)
        x_img = augment(self._read(folder, x), rng, self.cfg, exemplar=False)
        return (torch.from_numpy(z_img).permute(2, 0, 1).contiguous(),
                torch.from_numpy(x_img).permute(2, 0, 1).contiguous())


def spread_pairs(crops_dir: str, count: int, seed: int, pairs_per_seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` fixed (exemplar, search) uint8 pairs, spread evenly over a cropped dataset: the
    held-out sets of the diagnosis and of a teacher's held-out scores."""
    data = PairDataset(crops_dir, PairConfig(pairs_per_seq=pairs_per_seq), seed)
    index = torch.linspace(0, len(data) - 1, min(count, len(data))).long().tolist()
    z, x = zip(*(data[i] for i in index))
    return torch.stack(z), torch.stack(x)
