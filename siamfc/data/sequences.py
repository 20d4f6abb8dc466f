"""Tracking sequences on disk: frames, ground truth and their validation.

This is the one place that turns bad input into clear errors: a frame that is
missing or unreadable, a ground-truth line with the wrong number of values or NaN,
a zero-size initial box, or frames and boxes of different lengths. Each error is
an :class:`InputError` whose message names the file.
"""
from __future__ import annotations

import glob
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .video import is_video, sequence_video, video_frames

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_SPLIT = re.compile(r"[,\s]+")


def source_video(name: str) -> str:
    """``tld_carchase_part3`` -> ``tld_carchase``: the parts of one video belong together."""
    return re.sub(r"_part\d+$", "", name)


@dataclass
class Sequence:
    """One video: ordered frame paths and one ``x, y, w, h`` box per frame."""

    name: str
    frames: list[str]
    boxes: np.ndarray
    gt_file: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def visible_frames(seq: Sequence) -> np.ndarray:
    """Per frame: the target has a finite box of positive size."""
    return np.isfinite(seq.boxes).all(1) & (np.nan_to_num(seq.boxes[:, 2:]) > 0).all(1)


def segments(seq: Sequence, length: int) -> list[Sequence]:
    """``seq`` cut into consecutive pieces of about ``length`` frames, each tracked on its
    own from its first frame with a visible target (a short remainder joins the last piece).

    Many short starts measure a tracker with far less variance than one long run, where
    a single drift decides the score: it is what a small selection split needs.
    """
    visible = visible_frames(seq)
    starts = list(range(0, len(seq), length))
    if len(starts) > 1 and len(seq) - starts[-1] < length // 2:
        starts.pop()
    pieces = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(seq)
        first = start + int(np.argmax(visible[start:end])) if visible[start:end].any() else end
        if end - first < 2:
            continue
        meta = {key: (np.asarray(v)[first:end] if np.ndim(v) and len(v) == len(seq) else v)
                for key, v in seq.meta.items()}
        pieces.append(Sequence(f"{seq.name}_{k + 1:02d}", seq.frames[first:end], seq.boxes[first:end],
                               seq.gt_file, meta))
    return pieces


def tail_cut(length: int, fraction: float) -> int:
    """The first frame of a sequence's last ``fraction``: held out from training, tracked for selection."""
    return min(length - 2, max(1, int(round(length * (1.0 - fraction)))))


def tail(seq: Sequence, fraction: float) -> Sequence | None:
    """The last ``fraction`` of ``seq`` as a sequence of its own, tracked from its first
    frame with a visible target; None when too little of it is visible."""
    visible = visible_frames(seq)
    cut = tail_cut(len(seq), fraction)
    if not visible[cut:].any():
        return None
    first = cut + int(np.argmax(visible[cut:]))
    if len(seq) - first < 2:
        return None
    meta = {key: (np.asarray(v)[first:] if np.ndim(v) and len(v) == len(seq) else v) for key, v in seq.meta.items()}
    return Sequence(f"{seq.name}_tail", seq.frames[first:], seq.boxes[first:], seq.gt_file, meta)


def read_frame(path: str) -> np.ndarray:
    """Read a frame as an RGB uint8 array."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        reason = "missing" if not os.path.exists(path) else "unreadable or corrupt"
        raise InputError(f"{path}: frame is {reason}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def parse_boxes(path: str, allow_missing: bool = False) -> np.ndarray:
    """Read an ``x, y, w, h`` ground-truth file (comma or whitespace separated).

    Every line must hold four numbers and the first box must be finite with a
    positive size. Later lines may be NaN or empty-sized only with
    ``allow_missing`` (benchmarks such as UAV123 mark an absent target that way).
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: ground-truth file not found")
    with open(path) as f:
        lines = [ln.strip() for ln in f.read().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise InputError(f"{path}: ground-truth file is empty")
    boxes = np.empty((len(lines), 4))
    for n, line in enumerate(lines):
        values = [v for v in _SPLIT.split(line) if v]
        if len(values) != 4:
            raise InputError(f"{path}:{n + 1}: expected 4 values (x,y,w,h), got {len(values)}: '{line}'")
        try:
            boxes[n] = [float(v) for v in values]
        except ValueError:
            raise InputError(f"{path}:{n + 1}: non-numeric value in '{line}'") from None
        if (n == 0 or not allow_missing) and any(math.isnan(v) for v in boxes[n]):
            raise InputError(f"{path}:{n + 1}: NaN in box '{line}'")
        if n > 0 and not allow_missing and not np.all(np.isfinite(boxes[n])):
            raise InputError(f"{path}:{n + 1}: non-finite value in box '{line}'")
        if n > 0 and not allow_missing and (boxes[n, 2] <= 0 or boxes[n, 3] <= 0):
            raise InputError(f"{path}:{n + 1}: box has zero or negative size: '{line}'")
    x, y, w, h = boxes[0]
    if not np.all(np.isfinite(boxes[0])):
        raise InputError(f"{path}:1: initial box is not finite: '{lines[0]}'")
    if w <= 0 or h <= 0:
        raise InputError(f"{path}:1: initial box has zero or negative size (w={w:g}, h={h:g})")
    return boxes


def list_frames(img_dir: str) -> list[str]:
    """The frames of a folder of numbered images, or of a video file (decoded once, :mod:`.video`)."""
    if is_video(img_dir):
        return video_frames(img_dir)
    if not os.path.isdir(img_dir):
        raise InputError(f"{img_dir}: frame folder not found")
    frames = [p for p in glob.glob(os.path.join(img_dir, "*")) if p.lower().endswith(IMAGE_EXTENSIONS)]
    if not frames:
        raise InputError(f"{img_dir}: no frames (.jpg/.png) in folder")
    stems = [os.path.splitext(os.path.basename(p))[0] for p in frames]
    if not all(s.isdigit() for s in stems):
        return sorted(frames)
    # Numbered frames sort by number (1.jpg, 2.jpg, ..., 10.jpg) and must be consecutive.
    order = sorted(range(len(frames)), key=lambda i: int(stems[i]))
    frames = [frames[i] for i in order]
    numbers = [int(stems[i]) for i in order]
    for prev, n in zip(numbers, numbers[1:]):
        if n != prev + 1:
            stem = stems[order[0]]
            width = len(stem) if stem.startswith("0") else 0
            missing = os.path.join(img_dir, f"{prev + 1:0{width}d}{os.path.splitext(frames[0])[1]}")
            raise InputError(f"{missing}: frame is missing (the frames jump from {prev} to {n})")
    return frames


def check_lengths(seq: Sequence, source: str | None = None) -> Sequence:
    """``seq`` if it has a box per frame; ``source`` names where the frames came from (their folder by default)."""
    if len(seq.frames) != len(seq.boxes):
        raise InputError(f"{seq.gt_file}: {len(seq.boxes)} boxes but "
                         f"{len(seq.frames)} frames in {source or os.path.dirname(seq.frames[0])}")
    return seq


def frame_source(seq_dir: str) -> str:
    """Where a sequence folder keeps its frames: ``img/``, else ``video.mp4`` (or another
    container, :data:`.video.VIDEO_NAMES`); ``img/`` when neither exists, so an error names it."""
    img = os.path.join(seq_dir, "img")
    return img if os.path.isdir(img) else sequence_video(seq_dir) or img


def ground_truth_file(seq_dir: str) -> str:
    """The sequence's box file: ``groundtruth_rect.txt`` (OTB), else ``groundtruth.txt``;
    the OTB name when neither exists, so the error names what was expected."""
    otb = os.path.join(seq_dir, "groundtruth_rect.txt")
    other = os.path.join(seq_dir, "groundtruth.txt")
    return other if not os.path.isfile(otb) and os.path.isfile(other) else otb


def otb_folder_sequence(seq_dir: str, allow_missing: bool = False) -> Sequence:
    """An OTB-layout sequence: ``img/*.jpg`` (or ``video.mp4``) plus ``groundtruth_rect.txt``
    (or ``groundtruth.txt``).

    ``allow_missing`` lets boxes after the first be NaN or empty (an absent target).
    """
    name = os.path.basename(os.path.normpath(seq_dir))
    gt = ground_truth_file(seq_dir)
    boxes = parse_boxes(gt, allow_missing=allow_missing)
    source = frame_source(seq_dir)
    return check_lengths(Sequence(name, list_frames(source), boxes, gt), source)


class OTBFolder:
    """Training footage in OTB layout (``NAME/img/*.jpg`` + ``NAME/groundtruth_rect.txt``),
    read like got10k's dataset classes: ``seq_names``, ``len()`` and ``[i] -> (frames, boxes)``.

    Every sequence is validated when read (missing or misnumbered frames, a NaN or
    empty first box, more or fewer boxes than frames); later boxes may be NaN, which
    marks an absent target, as in GOT-10k.
    """

    def __init__(self, root: str) -> None:
        self.seq_dirs = list_otb_folder(root)
        self.seq_names = [os.path.basename(d) for d in self.seq_dirs]
        self.anno_files = [ground_truth_file(d) for d in self.seq_dirs]

    def __len__(self) -> int:
        return len(self.seq_dirs)

    def __getitem__(self, index: int) -> tuple[list[str], np.ndarray]:
        seq = otb_folder_sequence(self.seq_dirs[index], allow_missing=True)
        return seq.frames, seq.boxes


def list_otb_folder(root: str) -> list[str]:
    """Sequence folders under ``root`` that hold an ``img`` folder or a ``video.mp4`` (sorted)."""
    if not os.path.isdir(root):
        raise InputError(f"{root}: benchmark root folder not found")
    dirs = sorted(d for d in glob.glob(os.path.join(root, "*"))
                  if os.path.isdir(os.path.join(d, "img")) or sequence_video(d))
    if not dirs:
        raise InputError(f"{root}: no sequences (NAME/img or NAME/video.mp4, with NAME/groundtruth_rect.txt "
                         f"or NAME/groundtruth.txt)")
    return dirs
