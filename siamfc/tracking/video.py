"""Frame sources and annotation for the demo: a video file, an image folder or a camera."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from ..data.sequences import IMAGE_EXTENSIONS, parse_boxes, read_frame
from ..errors import InputError


@dataclass
class Source:
    """Where frames come from; ``init_box`` is the ground truth's first box when known."""

    frames: Iterator[np.ndarray]
    fps: float
    init_box: np.ndarray | None
    name: str


def open_source(spec: str) -> Source:
    """``spec``: a camera index, a video file, an image folder, or an OTB sequence folder."""
    if spec.isdigit():
        cap = cv2.VideoCapture(int(spec))
        if not cap.isOpened():
            raise InputError(f"camera {spec}: cannot be opened")
        return Source(_capture(cap, f"camera {spec}"), cap.get(cv2.CAP_PROP_FPS) or 30.0, None, f"camera{spec}")
    if os.path.isdir(spec):
        img_dir = os.path.join(spec, "img") if os.path.isdir(os.path.join(spec, "img")) else spec
        frames = sorted(p for p in glob.glob(os.path.join(img_dir, "*")) if p.lower().endswith(IMAGE_EXTENSIONS))
        if not frames:
            raise InputError(f"{spec}: no frames (.jpg/.png) in folder")
        gt = next((os.path.join(spec, n) for n in ("groundtruth_rect.txt", "groundtruth.txt")
                   if os.path.isfile(os.path.join(spec, n))), None)
        init = parse_boxes(gt, allow_missing=True)[0] if gt else None
        return Source((read_frame(p) for p in frames), 30.0, init, os.path.basename(os.path.normpath(spec)))
    if os.path.isfile(spec):
        cap = cv2.VideoCapture(spec)
        if not cap.isOpened():
            raise InputError(f"{spec}: not a readable video file")
        return Source(_capture(cap, spec), cap.get(cv2.CAP_PROP_FPS) or 30.0, None,
                      os.path.splitext(os.path.basename(spec))[0])
    raise InputError(f"{spec}: no such video, folder or camera index")


def _capture(cap: cv2.VideoCapture, name: str) -> Iterator[np.ndarray]:
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def parse_box(text: str) -> np.ndarray:
    try:
        box = np.array([float(v) for v in text.replace(" ", "").split(",")])
    except ValueError:
        raise InputError(f"--init '{text}': expected x,y,w,h numbers") from None
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise InputError(f"--init '{text}': expected x,y,w,h with positive width and height")
    return box


def annotate(frame: np.ndarray, box: np.ndarray, fps: float, score: float | None,
             truth: np.ndarray | None = None) -> np.ndarray:
    """A BGR copy of ``frame`` with the box (red), optional truth (green), FPS and score."""
    out = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    thick = max(2, round(out.shape[1] / 400))
    for b, color in ((truth, (0, 200, 0)), (box, (0, 0, 255))):
        if b is not None and np.isfinite(b).all():
            x, y, w, h = b
            cv2.rectangle(out, (int(x - 1), int(y - 1)), (int(x - 1 + w), int(y - 1 + h)), color, thick)
    text = f"{fps:.0f} fps" + (f"  score {score:.3f}" if score is not None else "")
    scale = max(0.5, out.shape[1] / 1000)
    cv2.putText(out, text, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2)
    cv2.putText(out, text, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    return out
