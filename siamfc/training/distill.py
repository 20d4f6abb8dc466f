"""Training with a frozen teacher's supervision: its score maps and embeddings.

The loss is ``track * balanced logistic loss + response * score-map distillation
+ features * embedding distillation``. With ``track: 0`` the labels play no part,
so a network can be trained from the teacher alone. The embedding term compares
embeddings of the same width; once the student's is narrower (FD's last squeeze),
the teacher's is first mapped onto it by a fixed projection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config, param
from ..models.net import SiamNet
from ..models.stats import gflops
from .losses import balanced_loss, feature_distillation, response_distillation
from .bank import TeacherBank
from .trainer import Trainer


@dataclass
class LossWeights(Config):
    track: float = param(1.0, ge=0)       # the balanced logistic loss on the labels
    response: float = param(0.0, ge=0)    # score maps pulled toward the teacher's
    features: float = param(0.0, ge=0)    # embeddings pulled toward the teacher's (same width only)

    def check(self) -> None:
        from ..config import ConfigError
        if self.track == self.response == self.features == 0:
            raise ConfigError("LossWeights.track", "every loss weight is 0: nothing would train")

    @property
    def needs_teacher(self) -> bool:
        return self.response > 0 or self.features > 0


class DistillTrainer(Trainer):
    """A :class:`Trainer` whose loss adds the teacher's supervision (see the module docstring)."""

    def __init__(self, *args: Any, teacher: SiamNet | None = None, weights: LossWeights | None = None,
                 projection: torch.Tensor | None = None, bank: TeacherBank | None = None, **kwargs: Any) -> None:
        """``projection`` (student width x teacher width) maps the teacher's embedding onto
        the student's width for the embedding term, where the two differ. With a ``bank``
        the pairs and the teacher's outputs on them come from it (no labels: ``track``
        must be 0)."""
        super().__init__(*args, **kwargs)
        self.bank = bank
        if bank is not None:
            if (weights or LossWeights()).track:
                raise ValueError("a teacher bank has no labels: set the track loss weight to 0")
            self.dataset = bank
        self.weights = weights or LossWeights()
        self.projection = None if projection is None else projection.to(self.device)
        self.teacher = None
        if self.weights.needs_teacher:
            if teacher is None:
                raise ValueError("distillation weights need a teacher network")
            self.teacher = teacher.to(self.device, memory_format=self.memory_format).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    def loss(self, z: torch.Tensor, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        w = self.weights
        responses, fz, fx = self.model(z, x, features=True)
        loss = responses.new_zeros(())
        if w.track:
            loss = loss + w.track * balanced_loss(responses, self.labels(responses))
        if self.teacher is not None:
            with torch.no_grad():
                if self.bank is not None:
                    t_resp, tz, tx = (t.to(self.device) for t in self.bank.targets(extra[0]))
                else:
                    t_resp, tz, tx = self.teacher(z, x, features=True)
            if w.response:
                loss = loss + w.response * response_distillation(responses, t_resp)
            if w.features and fx.shape[1] != tx.shape[1] and self.projection is not None:
                tz, tx = (torch.einsum("sc,nchw->nshw", self.projection, t.float()) for t in (tz, tx))
            if w.features and fx.shape == tx.shape:
                loss = loss + w.features * 0.5 * (feature_distillation(fz, tz) + feature_distillation(fx, tx))
        return loss


def distill_gflop_per_pair(student: torch.nn.Module, teacher: torch.nn.Module | None,
                           sizes: tuple[int, int]) -> float:
    """GFLOP of one distillation pair (exemplar and search image at ``sizes``): the
    student's forward and backward pass (counted as 3x the forward) and the teacher's
    forward, as :func:`~siamfc.models.stats.gflops` counts them."""
    student_f = sum(gflops(student, s) for s in sizes)
    teacher_f = sum(gflops(teacher, s) for s in sizes) if teacher is not None else 0.0
    return 3 * student_f + teacher_f
