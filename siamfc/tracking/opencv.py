"""OpenCV's trackers behind the got10k ``Tracker`` interface, as speed/accuracy baselines.

MIL ships with opencv-python; CSRT and KCF need opencv-contrib-python (optional).
"""
from __future__ import annotations

import cv2
import numpy as np
from got10k.trackers import Tracker

from ..errors import InputError

NAMES = ("MIL", "CSRT", "KCF")


def available() -> list[str]:
    return [n for n in NAMES if _factory(n) is not None]


def _factory(name: str):
    for module in (cv2, getattr(cv2, "legacy", None)):
        make = getattr(module, f"Tracker{name}_create", None) if module is not None else None
        if make is not None:
            return make
    return None


def check_available(name: str) -> None:
    if name not in NAMES:
        raise InputError(f"opencv:{name}: unknown OpenCV tracker; choose one of {', '.join(NAMES)}")
    if _factory(name) is None:
        raise InputError(f"opencv:{name}: not in this OpenCV build (CSRT/KCF need opencv-contrib-python)")


class OpenCVTracker(Tracker):
    def __init__(self, name: str) -> None:
        super().__init__(f"OpenCV-{name}", is_deterministic=True)
        check_available(name)
        self.make = _factory(name)
        self.box = None

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        self.tracker = self.make()
        self.box = np.asarray(box, float)
        rect = tuple(int(round(v)) for v in (box[0] - 1, box[1] - 1, box[2], box[3]))
        self.tracker.init(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), rect)

    def update(self, image: np.ndarray) -> np.ndarray:
        ok, rect = self.tracker.update(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
        if ok:   # on a miss, OpenCV's trackers report nothing: keep the last box
            self.box = np.array([rect[0] + 1, rect[1] + 1, rect[2], rect[3]], float)
        return self.box
