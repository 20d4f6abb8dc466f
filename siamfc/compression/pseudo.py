"""Label-free training data: targets the teacher picks and tracks itself.

For footage without boxes, each clip of ``clip_len`` frames gets a pseudo target:
among ``candidates`` random boxes on its first frame the teacher keeps the most
distinctive one (the sharpest peak of its own score map against the frame
around it), then tracks it; a clip ends early where the teacher's peak score
falls below ``min_score`` times its first score (the teacher lost it). The
clips are written in OTB layout (``NAME/img/`` links to the frames,
``NAME/groundtruth_rect.txt`` the teacher's boxes), so the crop job trains on
them and the selection benchmark scores students against the teacher's tracks.
Nothing here reads a ground-truth file.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from ..config import Config, param
from ..data.sequences import frame_source, list_frames, read_frame
from ..errors import InputError
from ..files import write_json, write_text
from ..tracking.factory import TrackerSpec, build_tracker


@dataclass
class PseudoConfig(Config):
    clip_len: int = param(60, ge=4)          # frames per pseudo-labelled clip
    candidates: int = param(24, ge=1)        # random boxes tried on a clip's first frame
    min_size: float = param(0.08, gt=0, le=1)   # box side relative to the frame's shorter side
    max_size: float = param(0.3, gt=0, le=1)
    min_score: float = param(0.5, ge=0, le=1)    # relative teacher score below which a clip ends
    min_frames: int = param(8, ge=2)         # shorter tracks are dropped
    seed: int = param(0, ge=0)


def frame_folders(root: str, names: list[str] | None = None) -> dict[str, str]:
    """The frames (a folder, or a video file) of every sequence of a GOT-10k-, OTB- or video-layout root
    (no labels read: a video folder needs no groundtruth.txt)."""
    if not os.path.isdir(root):
        raise InputError(f"{root}: footage folder not found")
    listing = os.path.join(root, "train", "list.txt")
    if os.path.isfile(listing):
        with open(listing) as f:
            seqs = {n: os.path.join(root, "train", n) for n in (line.strip() for line in f) if n}
    else:
        # NAME/img, NAME/video.mp4, or frames straight in NAME
        seqs = {n: frame_source(os.path.join(root, n)) for n in sorted(os.listdir(root))
                if os.path.isdir(os.path.join(root, n))}
        seqs = {n: f if os.path.exists(f) else os.path.join(root, n) for n, f in seqs.items()}
    if names is not None:
        missing = sorted(set(names) - set(seqs))
        if missing:
            raise InputError(f"{root}: no sequence named {', '.join(missing)}")
        seqs = {n: seqs[n] for n in names}
    return seqs


def distinctiveness(tracker: Any, img: np.ndarray, box: np.ndarray) -> float:
    """How sharply the teacher singles the box out in its own frame: the peak of its
    score map over the spread of what lies beyond the peak's neighbourhood."""
    tracker.init(img, box)
    response = tracker.response(img)
    peak = np.unravel_index(int(response.argmax()), response.shape)
    far = np.ones_like(response, bool)
    far[max(peak[0] - 2, 0):peak[0] + 3, max(peak[1] - 2, 0):peak[1] + 3] = False
    rest = response[far]
    return float((response[peak] - rest.mean()) / (rest.std() + 1e-6))


def random_boxes(rng: np.random.Generator, shape: tuple[int, ...], count: int, cfg: PseudoConfig) -> np.ndarray:
    h, w = shape[:2]
    side = min(h, w)
    sizes = rng.uniform(cfg.min_size, cfg.max_size, (count, 1)) * side
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), (count, 1)))
    bw, bh = sizes * np.sqrt(aspect), sizes / np.sqrt(aspect)
    x = rng.uniform(0, np.maximum(w - bw, 1))
    y = rng.uniform(0, np.maximum(h - bh, 1))
    return np.hstack([x + 1, y + 1, bw, bh])


def label_clip(tracker: Any, frames: list[str], rng: np.random.Generator, cfg: PseudoConfig) -> np.ndarray:
    """The teacher's boxes for one clip (fewer rows than frames where it lost the target)."""
    first = read_frame(frames[0])
    boxes = random_boxes(rng, first.shape, cfg.candidates, cfg)
    best = max(boxes, key=lambda b: distinctiveness(tracker, first, b))
    tracker.init(first, best)
    out, start_score = [best], None
    for path in frames[1:]:
        box = tracker.update(read_frame(path))
        score = tracker.last_score
        start_score = start_score or max(score, 1e-12)
        if score < cfg.min_score * start_score:
            break
        out.append(box)
    return np.array(out)


def write_clip(out_dir: str, frames: list[str], boxes: np.ndarray) -> None:
    """An OTB-layout folder whose ``img`` links to ``frames`` (written atomically)."""
    tmp = out_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "img"))
    for i, path in enumerate(frames[:len(boxes)]):
        os.symlink(os.path.abspath(path), os.path.join(tmp, "img", f"{i + 1:04d}{os.path.splitext(path)[1]}"))
    write_text(os.path.join(tmp, "groundtruth_rect.txt"),
               "".join(",".join(f"{v:.2f}" for v in b) + "\n" for b in boxes))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def pseudo_label(teacher: TrackerSpec, root: str, out: str, cfg: PseudoConfig,
                 names: list[str] | None = None) -> dict[str, Any]:
    """Write the teacher's pseudo-labelled clips of ``root``'s footage under ``out``
    (resumable: finished clips are kept) and return a summary."""
    seqs = frame_folders(root, names)
    tracker = build_tracker(teacher)
    os.makedirs(out, exist_ok=True)
    kept, dropped = [], 0
    frames_of = {name: list_frames(folder) for name, folder in seqs.items()}
    jobs = [(name, i, start) for name, frames in frames_of.items()
            for i, start in enumerate(range(0, len(frames), cfg.clip_len))]
    for job, (name, i, start) in enumerate(tqdm(jobs, desc="pseudo labels", unit="clip")):
        clip = f"{name}_c{i + 1:02d}"
        if os.path.isdir(os.path.join(out, clip)):
            kept.append(clip)
            continue
        frames = frames_of[name][start:start + cfg.clip_len]
        if len(frames) < cfg.min_frames:
            continue
        rng = np.random.default_rng([cfg.seed, job])
        boxes = label_clip(tracker, frames, rng, cfg)
        if len(boxes) < cfg.min_frames:
            dropped += 1
            continue
        write_clip(os.path.join(out, clip), frames, boxes)
        kept.append(clip)
    summary = {"clips": len(kept), "dropped": dropped, "frames": sum(
        len(os.listdir(os.path.join(out, c, "img"))) for c in kept), "teacher": teacher.checkpoint}
    write_json(os.path.join(out, "pseudo.json"), summary)
    return summary
