"""Distillation pairs held in memory with the teacher's outputs on them.

The teacher is fixed for a whole compression, so its score maps and embeddings on
a fixed set of pairs are computed once and reused by every epoch of every phase:
the loop then runs only the student, which is what a small student needs to be
bound by arithmetic rather than by the teacher or by JPEG decoding.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..models.net import SiamNet


class TeacherBank(Dataset):
    """(exemplar, search, index) items; :meth:`targets` gives the teacher's outputs."""

    def __init__(self, z: torch.Tensor, x: torch.Tensor, teacher: SiamNet, chunk: int = 16,
                 store: torch.dtype = torch.bfloat16) -> None:
        self.z, self.x = z, x
        responses, fz, fx = [], [], []
        teacher.eval()
        with torch.no_grad():
            for i in range(0, len(z), chunk):
                r, a, b = teacher(z[i:i + chunk].float(), x[i:i + chunk].float(), features=True)
                responses.append(r.float())
                fz.append(a.to(store))
                fx.append(b.to(store))
        self.responses, self.fz, self.fx = torch.cat(responses), torch.cat(fz), torch.cat(fx)

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.z[i], self.x[i], i

    def targets(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The teacher's score maps and embeddings (float) of items ``idx``."""
        return self.responses[idx], self.fz[idx].float(), self.fx[idx].float()
