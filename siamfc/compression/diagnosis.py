"""Where a compression loses accuracy: the student measured against its teacher after
every phase, on fixed held-out crop pairs (never the test footage).

Per phase, beside the held-out tracking score that selection computes:

* ``embedding_error``: how far the student's embedding is from the teacher's,
  relative to the teacher's energy, after the best orthogonal map of the student's
  channels into the teacher's (a semi-orthogonal Procrustes fit). An orthogonal
  map keeps inner products, so the error bounds what the cross-correlation loses,
  and it is comparable before and after the last squeeze narrows the embedding;
* ``response_correlation``: the mean Pearson correlation between the student's and
  the teacher's score maps on the same pairs.

Both come from one forward pass of each network over a few dozen pairs: cheap
enough for every phase.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..config import Config, param
from ..files import save_figure
from ..models.net import SiamNet
from .fit_moments import as_rows


@dataclass
class DiagnoseConfig(Config):
    crops: str = param("", path="dir")   # cropped held-out sequences (index.json); "" = tracking score only
    pairs: int = param(48, ge=1)
    seed: int = param(7, ge=0)


def held_out_pairs(cfg: DiagnoseConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A fixed set of (exemplar, search) crops from the held-out crops, or None."""
    if not cfg.crops:
        return None
    from ..data.pairs import spread_pairs
    z, x = spread_pairs(cfg.crops, cfg.pairs, cfg.seed, pairs_per_seq=max(1, cfg.pairs))
    return z.float(), x.float()


def aligned_error(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> float:
    """min over Q with orthonormal columns of ||T - Q S||^2 / ||T||^2 (rows pooled over the
    given tensors): ||T||^2 + ||S||^2 - 2 * (nuclear norm of T^T S)."""
    s = torch.cat([as_rows(a) for a in student])
    t = torch.cat([as_rows(b) for b in teacher])
    energy_t, energy_s = float((t * t).sum()), float((s * s).sum())
    nuclear = float(torch.linalg.svdvals(t.T @ s).sum())
    return max(energy_t + energy_s - 2 * nuclear, 0.0) / max(energy_t, 1e-12)


def response_correlation(student: torch.Tensor, teacher: torch.Tensor) -> float:
    s, t = student.double().flatten(1), teacher.double().flatten(1)
    s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    corr = (s * t).sum(1) / (s.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-12)
    return float(corr.mean())


Outputs = tuple[list[torch.Tensor], torch.Tensor]   # (exemplar and search embeddings, score maps)


@torch.no_grad()
def outputs(net: SiamNet, pairs: tuple[torch.Tensor, torch.Tensor], chunk: int = 8) -> Outputs:
    """``net``'s embeddings and score maps on the pairs, in eval mode."""
    net.eval()
    z, x = pairs
    feats, maps = [], []
    for i in range(0, len(z), chunk):
        r, fz, fx = net(z[i:i + chunk], x[i:i + chunk], features=True)
        feats += [fz, fx]
        maps.append(r)
    return feats, torch.cat(maps)


def diagnose(student: SiamNet, reference: Outputs, pairs: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Embedding error and score-map correlation of ``student`` against the teacher's ``reference``
    outputs on the same pairs (computed once a run: the teacher does not change)."""
    fs, rs = outputs(student, pairs)
    return {"embedding_error": round(aligned_error(fs, reference[0]), 4),
            "response_correlation": round(response_correlation(rs, reference[1]), 4)}


def plot_diagnosis(phases: list[dict[str, Any]], path: str, title: str) -> str | None:
    """The three measures against the phase, as a PNG; None when no phase has them."""
    rows = [p for p in phases if p.get("diagnosis")]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p["name"].replace("finetune", "ft").replace("step", "s") for p in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows)), 3.6))
    xs = range(len(rows))
    ax.plot(xs, [p["diagnosis"]["embedding_error"] for p in rows], "o-", label="embedding error (aligned)")
    ax.plot(xs, [p["diagnosis"]["response_correlation"] for p in rows], "s-", label="score-map correlation")
    if all(p["auc"] is not None for p in rows):   # phases with one candidate may go untracked
        ax.plot(xs, [p["auc"] for p in rows], "^-", label="held-out tracking AUC")
    ax.set_xticks(list(xs), names, rotation=60, fontsize=8)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path, dpi=110)
    return path
