"""SiamFC's response labels and balanced logistic loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
