"""How a compression phase's candidates are scored: tracked on the selection set (and, where set, the
held-out tails of the training sequences), 0.4 AUC + 0.4 precision + 0.2 success rate, as in the paper."""
from __future__ import annotations

import functools
import os
from typing import Any

from ..evaluation import evaluate
from ..evaluation.benchmarks import load_benchmark
from ..tracking.factory import TrackerSpec
from .recipe import SelectConfig


def selection_score(summary: dict[str, Any]) -> float:
    return 0.4 * summary["mean_auc"] + 0.4 * summary["mean_precision"] + 0.2 * summary["mean_success_rate"]


@functools.lru_cache(maxsize=8)
def _first(benchmark: str, root: str, count: int) -> tuple[str, ...]:
    return tuple(s.name for s in load_benchmark(benchmark, root).sequences[:count])


def selection_names(sel: SelectConfig) -> list[str] | None:
    """The selection sequences: the names given, else the first ``sequences``, else all (None)."""
    if sel.names:
        return list(sel.names)
    if not sel.sequences:
        return None
    return list(_first(sel.benchmark, sel.root, sel.sequences))


def score_candidate(sel: SelectConfig, spec: TrackerSpec, phase_dir: str, epoch: int) -> dict[str, Any]:
    """``spec``'s selection score over the held-out sequences and, where set, the held-out tails of the
    training sequences; the tracks go under ``phase_dir``."""
    runs = [evaluate(spec, sel.benchmark, sel.root, os.path.join(phase_dir, "select"), sel.workers,
                     selection_names(sel), segment=sel.segment, plots=False)]
    if sel.tail and sel.tail_names:
        runs.append(evaluate(spec, sel.benchmark, sel.root, os.path.join(phase_dir, "select_tails"), sel.workers,
                             list(sel.tail_names), tails=sel.tail, plots=False))
    # the held-out videos and the tails weigh the same: the tails outnumber the videos, but
    # they come from videos training saw, and so hide a loss the videos show
    mean = {k: sum(r[f"mean_{k}"] for r in runs) / len(runs) for k in ("auc", "precision", "success_rate")}
    out = {"epoch": epoch, "auc": mean["auc"], "precision": mean["precision"],
           "success_rate": mean["success_rate"], "ao": runs[0].get("ao"),
           "sequences": sum(len(r["sequences"]) for r in runs)}
    out["score"] = selection_score({f"mean_{k}": v for k, v in mean.items()})
    if len(runs) > 1:   # the two parts apart, to see whether they agree
        out["parts"] = {"held_out": runs[0]["mean_auc"], "tails": runs[1]["mean_auc"]}
    return out


def unscored(epoch: int) -> dict[str, Any]:
    """The record of a phase's only candidate when it is not tracked (``SelectConfig.score_single`` off)."""
    return {"epoch": epoch, "score": None, "auc": None, "precision": None, "success_rate": None, "ao": None}
