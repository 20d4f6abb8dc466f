"""Calibration pairs for the NanoTrack fits: exemplar and search crops cut as ``TrackerNano`` cuts them.

The exemplar comes from a frame's true box; the search crop from a frame a little later (the target
has moved and turned meanwhile), centred where the tracker's last estimate would put it: the true
centre, off by a small random shift. Fits made on these see the inputs the tracker feeds the network.
"""
from __future__ import annotations

import numpy as np

from ..data.sequences import Sequence, read_frame, visible_frames
from ..errors import InputError
from ..tracking.nano import context_side, nano_crop


def tracking_pairs(sequences: list[Sequence], count: int, exemplar_sz: int = 127, instance_sz: int = 255,
                   seed: int = 0, max_gap: int = 10, shift: float = 0.1,
                   context: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pairs: exemplars (N x 127 x 127 x 3) and search crops (N x 255 x 255 x 3), uint8 RGB.

    A sequence is drawn uniformly, then a frame with the target visible, then one up to ``max_gap``
    frames later; the search centre is moved by a normal shift of ``shift`` x the exemplar side.
    """
    rng = np.random.default_rng(seed)
    usable = [(s, np.flatnonzero(visible_frames(s))) for s in sequences]
    usable = [(s, v) for s, v in usable if len(v) >= 2]
    if not usable:
        raise InputError("no calibration sequence has two frames with the target visible")
    draws = []
    for _ in range(count):
        seq, visible = usable[rng.integers(len(usable))]
        i = rng.integers(len(visible) - 1)
        j = min(len(visible) - 1, i + 1 + rng.integers(max_gap))
        draws.append((seq, int(visible[i]), int(visible[j]), rng.normal(0, shift, 2)))
    draws.sort(key=lambda d: (d[0].name, d[1]))   # frames of one video are read together
    z = np.empty((count, exemplar_sz, exemplar_sz, 3), np.uint8)
    x = np.empty((count, instance_sz, instance_sz, 3), np.uint8)
    for n, (seq, i, j, offset) in enumerate(draws):
        for out, frame, size in ((z, i, exemplar_sz), (x, j, instance_sz)):
            img = read_frame(seq.frames[frame])
            bx, by, w, h = seq.boxes[frame]
            side = context_side(w, h, context)
            centre = np.array([bx - 1 + w / 2, by - 1 + h / 2])   # 1-based box -> pixel-edge centre
            if out is x:
                centre = centre + offset * side
            out[n] = nano_crop(img, centre, int(side * size / exemplar_sz), size)
    return z, x
