"""Track one object in a video, an image folder or a camera, live or into an MP4.

The initial box comes from --init x,y,w,h, else from an OTB folder's first
ground-truth line, else from a mouse selection when a display exists. Without a
display (or with --save) it writes an annotated video: box, FPS and score.

Examples:
  python tools/demo.py --checkpoint ../shared/weights/FDSiamfc_30.pth --source ../shared/data/real/Woman --save woman.mp4
  python tools/demo.py --checkpoint runs/quickstart/fd/slim.pth --source 0          # webcam, select the target
  python tools/demo.py --checkpoint slim.onnx --backend onnxruntime --source clip.mp4 --init 120,80,40,60 --save out.mp4
"""
from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from siamfc.cli import run
from siamfc.errors import InputError
from siamfc.tracking.backends import BACKENDS
from siamfc.tracking.tracker import SiamFCTracker
from siamfc.tracking.video import annotate, open_source, parse_box


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint (.pth) or exported backbone (.onnx)")
    p.add_argument("--source", required=True, help="video file, image folder, OTB sequence folder or camera index")
    p.add_argument("--init", help="initial box x,y,w,h (1-based pixels)")
    p.add_argument("--save", help="write the annotated video here (.mp4)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="how the backbone runs; auto: the fastest accurate one on this machine")
    p.add_argument("--max-frames", type=int, default=0)
    args = p.parse_args()

    src = open_source(args.source)
    tracker = SiamFCTracker.from_checkpoint(args.checkpoint, backend=args.backend)
    live = has_display() and not args.save
    writer, times = None, []
    for i, frame in enumerate(src.frames):
        if args.max_frames and i >= args.max_frames:
            break
        if i == 0:
            if args.init:
                box = parse_box(args.init)
            elif src.init_box is not None:
                box = src.init_box
            elif has_display():
                x, y, w, h = cv2.selectROI("select the target", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), False)
                cv2.destroyWindow("select the target")
                box = parse_box(f"{x + 1},{y + 1},{w},{h}")
            else:
                raise InputError(f"{args.source}: no initial box: give --init x,y,w,h (no display to select one)")
            tracker.init(frame, box)
            score = None
        else:
            start = time.perf_counter()
            box = tracker.update(frame)
            times.append(time.perf_counter() - start)
            score = tracker.last_score
        fps = len(times) / sum(times) if times else 0.0
        shown = annotate(frame, box, fps, score)
        if live:
            cv2.imshow("fdsiamfc", shown)
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                break
        else:
            if writer is None:
                path = args.save or f"{src.name}_tracked.mp4"
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), src.fps,
                                         (shown.shape[1], shown.shape[0]))
                if not writer.isOpened():
                    raise InputError(f"{path}: cannot open a video writer")
            writer.write(shown)
    if writer is not None:
        writer.release()
        print(f"wrote {args.save or src.name + '_tracked.mp4'}")
    if times:
        print(f"mean FPS {len(times) / sum(times):.1f} over {len(times)} frames "
              f"(median {1 / np.median(times):.1f})")


if __name__ == "__main__":
    run(main)
