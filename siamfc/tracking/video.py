"""Frame sources and annotation for the demo: a video file, an image folder or a camera."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import cv2
import numpy as np

from ..data.sequences import frame_source, ground_truth_file, list_frames, parse_boxes, read_frame
from ..errors import InputError


@dataclass
class Source:
    """Where frames come from; ``init_box`` is the ground truth's first box when known."""

    frames: Iterator[np.ndarray]
    fps: float
    init_box: np.ndarray | None
    name: str
    origin: str       # as the user gave it, for messages


def open_source(spec: str) -> Source:
    """``spec``: a camera index, a video file, an image folder, or an OTB sequence folder."""
    if spec.isdigit():
        cap = cv2.VideoCapture(int(spec))
        if not cap.isOpened():
            raise InputError(f"camera {spec}: cannot be opened")
        return Source(_capture(cap, f"camera {spec}"), cap.get(cv2.CAP_PROP_FPS) or 30.0, None, f"camera{spec}",
                      spec)
    if os.path.isdir(spec):
        source = frame_source(spec)   # img/, or video.mp4
        frames = list_frames(source if os.path.exists(source) else spec)
        gt = ground_truth_file(spec)
        init = parse_boxes(gt, allow_missing=True)[0] if os.path.isfile(gt) else None
        return Source((read_frame(p) for p in frames), 30.0, init, os.path.basename(os.path.normpath(spec)), spec)
    if os.path.isfile(spec):
        cap = cv2.VideoCapture(spec)
        if not cap.isOpened():
            raise InputError(f"{spec}: not a readable video file")
        return Source(_capture(cap, spec), cap.get(cv2.CAP_PROP_FPS) or 30.0, None,
                      os.path.splitext(os.path.basename(spec))[0], spec)
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


def draw_box(img: np.ndarray, box: np.ndarray | None, color: tuple[int, int, int], thick: int) -> None:
    """Draw a 1-based x,y,w,h box in place; a missing or NaN box (target absent) draws nothing."""
    if box is not None and np.isfinite(box).all():
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(img, (int(x - 1), int(y - 1)), (int(x - 1 + w), int(y - 1 + h)), color, thick)


def annotate(frame: np.ndarray, box: np.ndarray, fps: float, score: float | None,
             truth: np.ndarray | None = None) -> np.ndarray:
    """A BGR copy of ``frame`` with the box (red), optional truth (green), FPS and score."""
    out = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    thick = max(2, round(out.shape[1] / 400))
    draw_box(out, truth, (0, 200, 0), thick)
    draw_box(out, box, (0, 0, 255), thick)
    text = f"{fps:.0f} fps" + (f"  score {score:.3f}" if score is not None else "")
    scale = max(0.5, out.shape[1] / 1000)
    cv2.putText(out, text, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2)
    cv2.putText(out, text, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    return out


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_initial_box(src: Source, init: str | None) -> None:
    """Fail now, before a tracker is built (an ``auto`` backend races for seconds), if no first box can come."""
    if init:
        parse_box(init)
    elif src.init_box is None and not has_display():
        raise InputError(f"{src.origin}: no initial box: give --init x,y,w,h (no display to select one)")


def initial_box(src: Source, init: str | None, frame: np.ndarray) -> np.ndarray:
    """``--init`` when given, else the source's ground truth, else a mouse selection."""
    if init:
        return parse_box(init)
    if src.init_box is not None:
        return src.init_box
    if has_display():
        x, y, w, h = cv2.selectROI("select the target", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), False)
        cv2.destroyWindow("select the target")
        return parse_box(f"{x + 1},{y + 1},{w},{h}")
    raise InputError(f"{src.origin}: no initial box: give --init x,y,w,h (no display to select one)")


def track_source(tracker: Any, src: Source, init: str | None = None, save: str | None = None,
                 max_frames: int = 0) -> tuple[list[float], str | None]:
    """Track ``src``, showing each annotated frame when a display exists and nothing is
    saved, else writing them to an MP4. Returns the per-frame ``update`` times and the
    video written (if any). The video appears only when complete: a bad frame midway
    leaves nothing behind."""
    live = has_display() and not save
    path = None if live else save or f"{src.name}_tracked.mp4"
    partial = None if path is None else os.path.join(os.path.dirname(os.path.abspath(path)),
                                                     f".{os.path.basename(path)}.partial.mp4")
    writer, times, total = None, [], 0.0
    try:
        for i, frame in enumerate(src.frames):
            if max_frames and i >= max_frames:
                break
            if i == 0:
                box, score = initial_box(src, init, frame), None
                tracker.init(frame, box)
            else:
                start = time.perf_counter()
                box = tracker.update(frame)
                times.append(time.perf_counter() - start)
                total += times[-1]
                score = tracker.last_score
            shown = annotate(frame, box, len(times) / total if total else 0.0, score)
            if live:
                cv2.imshow("fdsiamfc", shown)
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
                continue
            if writer is None:
                os.makedirs(os.path.dirname(partial), exist_ok=True)
                writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*"mp4v"), src.fps,
                                         (shown.shape[1], shown.shape[0]))
                if not writer.isOpened():
                    raise InputError(f"{path}: cannot open a video writer")
            writer.write(shown)
        if writer is not None:
            writer.release()
            os.replace(partial, path)
    finally:
        if partial and os.path.exists(partial):
            os.remove(partial)
    return times, path if writer is not None else None
