"""How a compression phase's candidates are scored: tracked on the selection set (with any extra sets, pooled
by sequence, and, where set, the held-out tails of the training sequences), 0.4 AUC + 0.4 precision + 0.2
success rate, as in the paper."""
from __future__ import annotations

import functools
import os
from typing import Any

from ..evaluation import evaluate
from ..evaluation.benchmarks import load_benchmark, sequence_set
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


KEYS = ("auc", "precision", "success_rate")


def score_candidate(sel: SelectConfig, checkpoint: str, name: str, phase_dir: str, epoch: int) -> dict[str, Any]:
    """The SiamFC ``checkpoint``'s selection score (tracked with ``sel.backend`` as ``name``) over the held-out
    sequences (with the extra sets, pooled sequence by sequence) and, where set, the held-out tails of the
    training sequences; the tracks go under ``phase_dir``."""
    spec = TrackerSpec("siamfc", checkpoint, sel.backend, name=name)
    held = [evaluate(spec, sel.benchmark, sel.root, os.path.join(phase_dir, "select"), sel.workers,
                     selection_names(sel), segment=sel.segment, plots=False)]
    for i, text in enumerate(sel.extra):
        bench, root, names = sequence_set(text)
        held.append(evaluate(spec, bench, root, os.path.join(phase_dir, f"select_extra{i}"), sel.workers, names,
                             plots=False))
    counts = [len(r["sequences"]) for r in held]
    parts = [{k: sum(r[f"mean_{k}"] * n for r, n in zip(held, counts)) / sum(counts) for k in KEYS}]
    total = sum(counts)
    if sel.tail and sel.tail_names:
        tails = evaluate(spec, sel.benchmark, sel.root, os.path.join(phase_dir, "select_tails"), sel.workers,
                         list(sel.tail_names), tails=sel.tail, plots=False)
        parts.append({k: tails[f"mean_{k}"] for k in KEYS})
        total += len(tails["sequences"])
    # the held-out videos and the tails weigh the same: the tails outnumber the videos, but
    # they come from videos training saw, and so hide a loss the videos show
    mean = {k: sum(p[k] for p in parts) / len(parts) for k in KEYS}
    out = {"epoch": epoch, **mean, "ao": held[0].get("ao"), "sequences": total,
           "score": selection_score({f"mean_{k}": v for k, v in mean.items()})}
    if len(parts) > 1:   # the two parts apart, to see whether they agree
        out["parts"] = {"held_out": parts[0]["auc"], "tails": parts[1]["auc"]}
    if len(held) > 1:
        out["sets"] = [r["mean_auc"] for r in held]
    return out


def unscored(epoch: int) -> dict[str, Any]:
    """The record of a phase's only candidate when it is not tracked (``SelectConfig.score_single`` off)."""
    return {"epoch": epoch, "score": None, "auc": None, "precision": None, "success_rate": None, "ao": None}
