"""The small trackers people pick today, as OpenCV ships them: NanoTrack (``cv2.TrackerNano``)
and VitTrack (``cv2.TrackerVit``) behind the got10k ``Tracker`` interface.

They run their ONNX files through OpenCV's DNN module exactly as a user's ``cv2`` call
would, so the benchmark compares us with what people deploy, on the same frames and
threads. Their files are not ours to ship: a spec names them (``nanotrack:DIR`` or
``nanotrack:BACKBONE.onnx,HEAD.onnx``; ``vittrack:MODEL.onnx``), and with no argument they
are looked for in ``../shared/peers`` beside the checkout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np
from got10k.trackers import Tracker

from ..errors import InputError
from ..shared import shared_path

PEERS_DIR = shared_path("peers")


@dataclass(frozen=True)
class Peer:
    """One OpenCV tracker: its display name, default files, and how to create it from them."""

    name: str
    default: tuple[str, ...]          # file names under PEERS_DIR
    create: Callable[[tuple[str, ...]], Any]
    exported: tuple[str, ...] = ()    # the names our export writes, also looked for in a folder


def _nano(files: tuple[str, ...]) -> Any:
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = files
    return cv2.TrackerNano_create(params)


def _vit(files: tuple[str, ...]) -> Any:
    params = cv2.TrackerVit_Params()
    params.net = files[0]
    return cv2.TrackerVit_create(params)


PEERS = {
    "nanotrack": Peer("NanoTrackV2", ("nanotrackv2/nanotrack_backbone_sim.onnx", "nanotrackv2/nanotrack_head_sim.onnx"),
                      _nano, ("backbone.onnx", "head.onnx")),
    "vittrack": Peer("VitTrack", ("vittrack/object_tracking_vittrack_2023sep.onnx",), _vit),
}


def files_under(kind: str, root: str) -> str:
    """The spec argument naming ``kind``'s files in a peers folder laid out as ``../shared/peers``."""
    return ",".join(os.path.join(root, f) for f in PEERS[kind].default)


def peer_files(kind: str, arg: str | None) -> tuple[str, ...]:
    """The ONNX files of ``kind`` named by ``arg`` (a folder, or the files comma-separated),
    or its defaults; a one-line :class:`InputError` when one is missing."""
    peer = PEERS[kind]
    if not arg:
        files = tuple(os.path.join(PEERS_DIR, f) for f in peer.default)
    elif os.path.isdir(arg):
        files = tuple(os.path.join(arg, os.path.basename(f)) for f in peer.default)
        ours = tuple(os.path.join(arg, f) for f in peer.exported)
        if ours and all(map(os.path.isfile, ours)) and not all(map(os.path.isfile, files)):
            files = ours
    else:
        files = tuple(arg.split(","))
    if len(files) != len(peer.default):
        raise InputError(f"{kind}:{arg}: expected {len(peer.default)} ONNX file(s) "
                         f"({', '.join(os.path.basename(f) for f in peer.default)}), got {len(files)}")
    for f in files:
        if not os.path.isfile(f):
            raise InputError(f"{f}: {peer.name}'s ONNX file is missing (the peers live in ../shared/peers; "
                             f"name them with {kind}:FOLDER or {kind}:FILE.onnx[,...])")
    return files


def create_peer(kind: str, files: tuple[str, ...]) -> Any:
    """OpenCV's tracker, or a one-line :class:`InputError` when OpenCV cannot read its files."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)   # OpenCV 5's DNN warns on every create
    try:
        return PEERS[kind].create(files)
    except cv2.error as e:
        reason = str(e).strip().splitlines()[-1].split(") ", 1)[-1].split(" in function")[0] or "unreadable"
        raise InputError(f"{','.join(files)}: OpenCV cannot load {PEERS[kind].name}: {reason}") from None


def onnx_parameters(files: tuple[str, ...]) -> int:
    """Weights stored in the ONNX files (every initializer's elements)."""
    import onnx

    return int(sum(np.prod(t.dims, dtype=np.int64) for f in files for t in onnx.load(f).graph.initializer))


class PeerTracker(Tracker):
    """An OpenCV tracker on got10k's RGB frames and 1-based boxes. OpenCV takes BGR, as
    ``cv2.imread`` and ``cv2.VideoCapture`` give it; the conversion is timed with the update."""

    def __init__(self, kind: str, arg: str | None, name: str | None = None) -> None:
        super().__init__(name or PEERS[kind].name, is_deterministic=True)
        self.kind, self.files = kind, peer_files(kind, arg)
        create_peer(kind, self.files)   # fail on a bad file now, not at the first frame
        self.box = np.zeros(4)

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        self.tracker = create_peer(self.kind, self.files)
        self.box = np.asarray(box, float)
        rect = tuple(int(round(v)) for v in (box[0] - 1, box[1] - 1, box[2], box[3]))
        self.tracker.init(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), rect)

    def update(self, image: np.ndarray) -> np.ndarray:
        _, rect = self.tracker.update(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
        # Reported as the tracker holds it: VitTrack flags a low score but goes on from this box.
        if rect[2] > 0 and rect[3] > 0:
            self.box = np.array([rect[0] + 1, rect[1] + 1, rect[2], rect[3]], float)
        return self.box
