"""A TraX server so the official VOT toolkit can run our tracker.

The toolkit starts the tracker process and sends an initial rectangle plus image
paths; the server answers every frame with a rectangle and a confidence. VOT
rectangles are 0-based, ours are 1-based (OTB/got10k), hence the shift by one.
"""
from __future__ import annotations

import os

import numpy as np

from ..data.sequences import read_frame
from ..errors import InputError
from ..tracking.factory import TRACKERS, TrackerSpec, build_tracker, check_tracker

CHECKPOINT_ENV = "FDSIAMFC_CHECKPOINT"
BACKEND_ENV = "FDSIAMFC_BACKEND"


def serve(checkpoint: str | None = None, backend: str | None = None) -> None:
    """Answer TraX requests until the client quits (rectangle regions, image paths)."""
    from trax import Image, Region, Server, TraxStatus
    from trax.region import Rectangle

    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV)
    if not checkpoint:
        raise InputError(f"no tracker given: set {CHECKPOINT_ENV} to a checkpoint, an .onnx file or 'identity'")
    # fp32 by default: "auto" may spend longer timing backends than the toolkit waits to connect
    spec = TrackerSpec.parse(checkpoint, backend=backend or os.environ.get(BACKEND_ENV, "fp32"))
    check_tracker(spec)
    tracker = build_tracker(spec)
    with Server([Region.RECTANGLE], [Image.PATH], tracker_name="FDSiamFC") as server:
        while True:
            request = server.wait()
            if request.type in (TraxStatus.QUIT, TraxStatus.ERROR):
                break
            img = read_frame(request.image["color"].path())
            if request.type == TraxStatus.INITIALIZE:
                x, y, w, h = request.objects[0][0].bounds()
                box = np.array([x + 1, y + 1, w, h], dtype=float)
                tracker.init(img, box)
                score = 1.0
            else:
                box = tracker.update(img)
                score = float(getattr(tracker, "last_score", 1.0))
            rect = Rectangle.create(float(box[0] - 1), float(box[1] - 1), float(box[2]), float(box[3]))
            server.status([(rect, {"confidence": score})])


STACK = """# No dataset key, so the toolkit uses ./sequences and never downloads.
title: fdsiamfc local stack
experiments:
  baseline:
    type: multistart
    analyses:
      - type: multistart_average_ar
        name: ar
      - type: multistart_eao_score
        name: eaoscore
        low: {low}
        high: {high}
"""

TRACKER = """[{name}]
label = {label}
protocol = traxpython
command = vot_tracker
paths = {tools}
python = {python}
env_FDSIAMFC_CHECKPOINT = {checkpoint}
env_FDSIAMFC_BACKEND = {backend}
"""


def write_workspace(root: str, sequences: list[tuple[str, list[np.ndarray], np.ndarray]],
                    trackers: dict[str, str], python: str, tools: str, backend: str = "fp32",
                    anchor_every: int = 15) -> None:
    """A VOT toolkit workspace with local sequences (VOT layout) and our trackers.

    ``sequences`` are (name, RGB frames, 1-based x,y,w,h boxes); ``trackers`` map a
    tracker id to a checkpoint (or ``identity``). Multistart anchors every
    ``anchor_every`` frames.
    """
    import cv2

    seq_root = os.path.join(root, "sequences")
    for name, frames, boxes in sequences:
        folder = os.path.join(seq_root, name)
        os.makedirs(os.path.join(folder, "color"), exist_ok=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(os.path.join(folder, "color", f"{i + 1:08d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        np.savetxt(os.path.join(folder, "groundtruth.txt"), np.asarray(boxes) - [1, 1, 0, 0], fmt="%.2f",
                   delimiter=",")
        with open(os.path.join(folder, "sequence"), "w") as f:
            f.write("channels.color=color/%08d.jpg\nfps=30\n")
        anchors = np.zeros(len(frames), int)
        anchors[::anchor_every] = 1
        np.savetxt(os.path.join(folder, "anchor.value"), anchors, fmt="%d")
    with open(os.path.join(seq_root, "list.txt"), "w") as f:
        f.write("\n".join(name for name, _, _ in sequences) + "\n")
    length = min(len(frames) for _, frames, _ in sequences)
    with open(os.path.join(root, "stack.yaml"), "w") as f:
        f.write(STACK.format(low=max(1, length // 6), high=length))
    with open(os.path.join(root, "trackers.ini"), "w") as f:
        f.write("\n".join(TRACKER.format(name=n, label=n, tools=os.path.abspath(tools), python=python,
                                         checkpoint=absolute_spec(c),
                                         backend=backend) for n, c in trackers.items()))
    with open(os.path.join(root, "config.yaml"), "w") as f:
        f.write(f"stack: {os.path.abspath(os.path.join(root, 'stack.yaml'))}\nregistry:\n- ./trackers.ini\n")


def absolute_spec(text: str) -> str:
    """A tracker string with its files made absolute (the toolkit starts trackers in its own folder):
    ``slim.pth``, ``model:configs/x.yaml,w.pth``; names such as ``identity`` or ``opencv:MIL`` stay."""
    kind, sep, arg = text.partition(":")
    if sep and kind in TRACKERS:
        return f"{kind}:" + ",".join(os.path.abspath(p) if os.path.exists(p) else p for p in arg.split(","))
    return os.path.abspath(text) if os.path.exists(text) else text


def read_analysis(path: str) -> dict[str, dict[str, float]]:
    """Accuracy, robustness and EAO per tracker from ``vot analysis --format json``."""
    import json

    with open(path) as f:
        data = json.load(f)
    names = list(data["trackers"])
    ar, eao = data["results"]["baseline"]["results"]
    return {n: {"accuracy": float(ar[i][0]), "robustness": float(ar[i][1]), "eao": float(eao[i][0])}
            for i, n in enumerate(names)}
