"""Anchor targets for one training pair of an RPN head, sampled as pysot does.

Anchors that overlap the target's box by IoU >= ``pos_iou`` are positives, those
at IoU <= ``neg_iou`` negatives, the rest ignored. At most ``max_pos`` positives
and ``total - max_pos`` negatives are kept, chosen at random, so a pair
contributes at most ``total`` anchors and a large target cannot flood the loss
with positives. (pysot compares strictly, ``> 0.6`` and ``< 0.3``; the two differ
only for anchors exactly on a threshold.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.anchors import encode, iou

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass(frozen=True)
class AnchorTargets:
    """One pair's targets, each indexed ``[a, i, j]`` like the anchors.

    ``cls``: int64 1 (target), 0 (background) or -1 (ignored); ``loc``: float32
    ``(A, S, S, 4)`` deltas from every anchor to the box; ``loc_weight``: float32,
    ``1 / positives`` on the sampled positives and 0 elsewhere; ``iou``: each
    anchor's overlap with the box.
    """

    cls: np.ndarray
    loc: np.ndarray
    loc_weight: np.ndarray
    iou: np.ndarray


def _keep(mask: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """``mask`` with all but ``limit`` of its True entries, chosen at random, cleared."""
    chosen = np.flatnonzero(mask)
    if len(chosen) > limit:
        chosen = rng.choice(chosen, limit, replace=False)
    kept = np.zeros(mask.size, bool)
    kept[chosen] = True
    return kept.reshape(mask.shape)


def anchor_targets(anchors: np.ndarray, box: np.ndarray, rng: np.random.Generator | None = None,
                   pos_iou: float = 0.6, neg_iou: float = 0.3, total: int = 64,
                   max_pos: int = 16) -> AnchorTargets:
    """Targets of ``anchors`` (``(A, S, S, 4)``, :func:`..models.anchors.make_anchors`)
    for the target ``box`` (cx, cy, w, h in the same search crop). ``rng`` draws the
    sample (a fresh unseeded one when None)."""
    rng = rng or np.random.default_rng()
    box = np.asarray(box, np.float64)
    overlap = iou(anchors, box)
    pos = _keep(overlap >= pos_iou, max_pos, rng)
    neg = _keep(overlap <= neg_iou, total - max_pos, rng)
    cls = np.full(overlap.shape, IGNORED, np.int64)
    cls[pos] = POSITIVE
    cls[neg] = NEGATIVE
    weight = np.zeros(overlap.shape, np.float32)
    weight[pos] = 1.0 / max(int(pos.sum()), 1)
    loc = encode(box.astype(np.float32), anchors).astype(np.float32)
    return AnchorTargets(cls, loc, weight, overlap.astype(np.float32))
