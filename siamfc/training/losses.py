"""SiamFC's response labels and balanced logistic loss; SiameseX's soft-margin loss;
the RPN losses of SiamRPN / SiamRPN++."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.anchors import split_cls, split_loc
from .rpn_targets import NEGATIVE, POSITIVE, AnchorTargets


def logistic_labels(size: int, r_pos: float, r_neg: float, total_stride: int) -> torch.Tensor:
    """1 within L1 distance r_pos (pixels, in the search image) of the centre, 0 beyond
    r_neg, 0.5 between; returned for a ``size`` x ``size`` response map."""
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    dist = offsets.abs()[:, None] + offsets.abs()[None, :]
    pos, neg = r_pos / total_stride, r_neg / total_stride
    labels = torch.where(dist <= pos, 1.0, torch.where(dist < neg, 0.5, 0.0))
    return labels[None, None]


def balanced_loss(responses: torch.Tensor, labels: torch.Tensor, neg_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy where positives and negatives each carry half the weight."""
    labels = labels.expand_as(responses)
    pos, neg = labels == 1, labels == 0
    weight = torch.zeros_like(responses)
    weight[pos] = 1.0 / pos.sum()
    weight[neg] = neg_weight / neg.sum()
    weight /= weight.sum()
    return F.binary_cross_entropy_with_logits(responses.float(), labels, weight, reduction="sum")


def _standardised(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.float().flatten(1)
    return (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp_min(1e-6)


def response_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Squared error between each pair of score maps after both are standardised (zero
    mean, unit variance): the shape of the map, where the peak is and how it falls
    off, is what tracking uses; a common offset or scale is not."""
    return ((_standardised(student) - _standardised(teacher)) ** 2).mean()


def feature_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Squared error between embeddings of the same width, relative to the teacher's energy."""
    teacher = teacher.float()
    return ((student.float() - teacher) ** 2).mean() / teacher.pow(2).mean().clamp_min(1e-8)


def soft_margin_loss(responses: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """SiameseX's loss for score maps: ``log(1 + exp(-y * r))`` with ``y`` +1 on the target
    and -1 elsewhere. ``labels`` are :func:`logistic_labels`' 1 / 0.5 / 0, read as +1 /
    ignored / -1; SiameseX's own map (+1 within two cells, L1, of the centre of 17, -1
    elsewhere) is ``logistic_labels(17, 16, 16, 8)``. SiameseX sums (``reduction="sum"``);
    the mean is that sum over the counted cells, a factor the learning rate absorbs."""
    labels = labels.expand_as(responses)
    counted = labels != 0.5
    return F.soft_margin_loss(responses.float()[counted], labels[counted] * 2 - 1, reduction=reduction)


def rpn_cls_loss(cls: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``cls`` (N x 2A x S x S logits) on the sampled anchors of ``labels``
    (N x A x S x S: 1, 0, -1 ignored); positives and negatives each weigh half, as in
    pysot. A batch without positives (negative pairs) is scored on its negatives alone."""
    logits = split_cls(cls, labels.shape[1]).float()
    loss = logits.new_zeros(())
    for value in (POSITIVE, NEGATIVE):
        chosen = labels == value
        if chosen.any():
            loss = loss + 0.5 * F.cross_entropy(logits[chosen], labels[chosen])
    return loss


def rpn_loc_loss(loc: torch.Tensor, deltas: torch.Tensor, weights: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """Weighted regression loss of ``loc`` (N x 4A x S x S) against ``deltas`` (N x A x S x
    S x 4), summed over the coordinates, weighted per anchor by ``weights`` (N x A x S x
    S: 1 / positives on the positives) and averaged over the batch: pysot's weighted L1
    for ``beta`` 0, smooth-L1 with that transition point otherwise."""
    pred = split_loc(loc, weights.shape[1]).float()
    diff = F.smooth_l1_loss(pred, deltas, reduction="none", beta=beta).sum(-1)
    return (diff * weights).sum() / len(loc)


def rpn_loss(cls: torch.Tensor, loc: torch.Tensor, targets: Sequence[AnchorTargets],
             loc_weight: float = 1.2, beta: float = 0.0) -> torch.Tensor:
    """Classification plus ``loc_weight`` times regression (pysot weighs them 1 : 1.2)
    for a batch of RPN outputs and each pair's :class:`AnchorTargets`."""
    def stack(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(t, name) for t in targets])).to(cls.device)

    return rpn_cls_loss(cls, stack("cls")) + loc_weight * rpn_loc_loss(loc, stack("loc"), stack("loc_weight"), beta)
