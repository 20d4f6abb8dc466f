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


import numpy as np

from ..cli import ArgParser, count_arg
from ..tracking.backends import BACKENDS
from ..tracking.factory import TrackerSpec, build_tracker, check_tracker
from ..tracking.video import check_initial_box, open_source, track_source


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint (.pth) or exported backbone (.onnx); also any tracker tools/evaluate.py takes")
    p.add_argument("--source", required=True, help="video file, image folder, OTB sequence folder or camera index")
    p.add_argument("--init", help="initial box x,y,w,h (1-based pixels)")
    p.add_argument("--save", help="write the annotated video here (.mp4)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="how the backbone runs; auto: the fastest accurate one on this machine")
    p.add_argument("--max-frames", type=count_arg, default=0)
    args = p.parse_args()

    spec = TrackerSpec.parse(args.checkpoint, backend=args.backend)
    check_tracker(spec)
    src = open_source(args.source)
    check_initial_box(src, args.init)
    tracker = build_tracker(spec)
    times, written = track_source(tracker, src, args.init, args.save, args.max_frames)
    if written:
        print(f"wrote {written}")
    if times:
        print(f"{spec.tracker_name}: mean FPS {len(times) / sum(times):.1f} over {len(times)} frames "
              f"(median {1 / np.median(times):.1f})")

