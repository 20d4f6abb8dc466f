"""Distillation pairs cut anywhere in the training frames, no box needed.

Feature distillation needs images, not labels: a random region of a frame is taken
as the "target" (random place, size and aspect), its exemplar crop comes from that
frame and its search crop, centred on the same place, from a frame up to
``max_gap`` later, so the pair carries real motion and appearance change. The
teacher's response to the pair is the supervision. A few thousand frames give as
many distinct pairs as wanted, where target-centred pairs of a few sequences repeat.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..config import Config, param
from ..errors import InputError
from ..geometry import crop_region, fill_color
from .crop import list_sources
from .pairs import load_index
from .sequences import read_frame


@dataclass
class FramePairConfig(Config):
    pairs: int = param(3000, ge=1)          # pairs in the bank (cut once, reused every epoch)
    exemplar_sz: int = param(127, ge=15)
    instance_sz: int = param(239, ge=15)
    context: float = param(0.5, ge=0)
    min_size: float = param(0.06, gt=0, le=1)   # region side, relative to the frame's shorter side
    max_size: float = param(0.45, gt=0, le=1)
    max_gap: int = param(8, ge=0)           # frames between exemplar and search
    max_shift: float = param(0.25, ge=0)    # search centre jitter, relative to the region's context size
    seed: int = param(0, ge=0)


def training_frames(crops_dir: str) -> list[list[str]]:
    """The frames of every sequence of a crop index that training may use: those before
    the held-out tail (``held_out_from``), as the cropped pairs are."""
    index = load_index(crops_dir)
    dataset = list_sources(index["layout"], index["root"], cache_dir=os.path.join(crops_dir, ".cache"))
    names = {n: i for i, n in enumerate(dataset.seq_names)}
    out = []
    for entry in index["sequences"]:
        if entry["name"] not in names or not entry["frames"]:
            continue
        files = list(dataset[names[entry["name"]]][0])
        files = files[:entry.get("held_out_from", len(files))]
        if files:
            out.append(files)
    if not out:
        raise InputError(f"{crops_dir}: no training frames behind this crop index")
    return out


def region_pair(sequences: list[list[str]], cfg: FramePairConfig,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (exemplar, search) pair of a random region, as HxWx3 uint8 crops."""
    seq = sequences[rng.integers(len(sequences))]
    i = int(rng.integers(len(seq)))
    j = min(len(seq) - 1, i + int(rng.integers(0, cfg.max_gap + 1)))
    first = read_frame(seq[i])
    second = first if j == i else read_frame(seq[j])
    h, w = first.shape[:2]
    side = min(h, w) * np.exp(rng.uniform(np.log(cfg.min_size), np.log(cfg.max_size)))
    aspect = np.exp(rng.uniform(-0.7, 0.7))
    tw, th = side * np.sqrt(aspect), side / np.sqrt(aspect)
    center = np.array([rng.uniform(th / 2, max(h - th / 2, th / 2 + 1)), rng.uniform(tw / 2, max(w - tw / 2, tw / 2 + 1))])
    pad = cfg.context * (tw + th)
    z_size = np.sqrt((tw + pad) * (th + pad))
    x_size = z_size * cfg.instance_sz / cfg.exemplar_sz
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, 2) * z_size
    z = crop_region(first, center, z_size, cfg.exemplar_sz, fill_color(first))
    x = crop_region(second, center + shift, x_size, cfg.instance_sz, fill_color(second))
    if rng.random() < 0.5:   # a mirrored pair is as valid a pair
        z, x = z[:, ::-1], x[:, ::-1]
    return np.ascontiguousarray(z), np.ascontiguousarray(x)


def cut_pairs(sequences: list[list[str]], cfg: FramePairConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.pairs`` pairs as uint8 tensors (N, 3, 127, 127) and (N, 3, 239, 239)."""
    rng = np.random.default_rng(cfg.seed)
    z = torch.empty(cfg.pairs, 3, cfg.exemplar_sz, cfg.exemplar_sz, dtype=torch.uint8)
    x = torch.empty(cfg.pairs, 3, cfg.instance_sz, cfg.instance_sz, dtype=torch.uint8)
    for k in tqdm(range(cfg.pairs), desc="cutting distillation pairs", unit="pair", leave=False):
        a, b = region_pair(sequences, cfg, rng)
        z[k] = torch.from_numpy(a).permute(2, 0, 1)
        x[k] = torch.from_numpy(b).permute(2, 0, 1)
    return z, x
