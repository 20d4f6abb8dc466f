"""Score tracking results with got10k's own report code and summarise them.

got10k's experiments compute the metrics and draw the plots from result files.
Their constructors are bypassed (they build datasets that may try to download),
and each experiment is given a dataset of the sequences that were tracked.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.sequences import Sequence


class SequenceDataset:
    """The got10k dataset interface over already-validated sequences."""

    def __init__(self, sequences: list[Sequence], return_meta: bool = False) -> None:
        self.sequences = sequences
        self.seq_names = [s.name for s in sequences]
        self.return_meta = return_meta

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int | str) -> tuple:
        if isinstance(index, str):
            index = self.seq_names.index(index)
        s = self.sequences[index]
        return (s.frames, s.boxes, s.meta) if self.return_meta else (s.frames, s.boxes)


def make_experiment(kind: str, sequences: list[Sequence], title: str, out: str, plots: bool = True) -> Any:
    """A got10k experiment over ``sequences``; ``plots=False`` scores without drawing its curves (the PNGs
    cost three times the tracking of a short selection run)."""
    from got10k.experiments import ExperimentGOT10k, ExperimentOTB, ExperimentUAV123

    cls = {"otb": ExperimentOTB, "uav": ExperimentUAV123, "got10k": ExperimentGOT10k}[kind]
    exp = cls.__new__(cls)
    if not plots:
        exp.plot_curves = lambda *args, **kwargs: None
    exp.dataset = SequenceDataset(sequences)
    exp.result_dir = os.path.join(out, "results", title)
    exp.report_dir = os.path.join(out, "reports", title)
    if kind == "got10k":
        exp.subset, exp.nbins_iou, exp.repetitions = "val", 101, 1
    else:
        exp.nbins_iou, exp.nbins_ce = 21, 51
    return exp


def bootstrap_se(values: np.ndarray, weights: np.ndarray, samples: int = 2000, seed: int = 0) -> float:
    """Standard error of a weighted mean under resampling of whole sequences."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    if len(values) < 2:
        return float("nan")
    idx = np.random.default_rng(seed).integers(0, len(values), size=(samples, len(values)))
    means = (values[idx] * weights[idx]).sum(1) / np.maximum(weights[idx].sum(1), 1e-12)
    return float(means.std(ddof=1))


def paired_difference(a: dict[str, float], b: dict[str, float], samples: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """Mean of ``a - b`` over the sequences both score, and its standard error when whole sequences
    are resampled together for both (a paired bootstrap): the noise of a comparison, which is far
    below either mean's own s.e. when the two trackers find the same sequences hard."""
    names = sorted(set(a) & set(b))
    d = np.array([a[n] - b[n] for n in names], float)
    return float(d.mean()), bootstrap_se(d, np.ones(len(d)), samples, seed)


def otb_summary(performance: dict[str, Any], sequences: list[Sequence]) -> dict[str, Any]:
    overall = performance["overall"]
    lengths = {s.name: len(s) for s in sequences}
    return {
        "mean_auc": float(overall["success_score"]),
        "mean_precision": float(overall["precision_score"]),
        "mean_success_rate": float(overall["success_rate"]),
        "fps": float(overall["speed_fps"]),
        "sequences": {
            name: {"auc": float(v["success_score"]), "precision": float(v["precision_score"]),
                   "success_rate": float(v["success_rate"]), "fps": float(v["speed_fps"]),
                   "frames": lengths[name]}
            for name, v in performance["seq_wise"].items()},
    }


def got10k_summary(performance: dict[str, Any], sequences: list[Sequence]) -> dict[str, Any]:
    overall = performance["overall"]
    curve = overall["succ_curve"]
    aos = [performance["seq_wise"][s.name]["ao"] for s in sequences]
    visible = [max(int(np.sum(np.asarray(s.meta["cover"])[1:] > 0)), 0) for s in sequences]
    return {"ao": float(overall["ao"]), "sr50": float(overall["sr"]), "sr75": float(curve[75]),
            "ao_se": bootstrap_se(np.nan_to_num(aos), visible),
            # got10k's own per-sequence AO and the frames it counted: what breakdowns pool
            "sequence_ao": {s.name: float(a) for s, a in zip(sequences, aos)},
            "sequence_frames": {s.name: v for s, v in zip(sequences, visible)}}


def format_table(summary: dict[str, Any]) -> str:
    rows = [f"{'sequence':<24}{'frames':>7}{'AUC':>8}{'Prec@20':>9}{'SR0.5':>8}{'FPS':>10}"]
    for name, v in summary["sequences"].items():
        rows.append(f"{name:<24}{v['frames']:>7}{v['auc']:>8.3f}{v['precision']:>9.3f}"
                    f"{v['success_rate']:>8.3f}{v['fps']:>10.1f}")
    rows.append(f"{'mean':<24}{sum(v['frames'] for v in summary['sequences'].values()):>7}"
                f"{summary['mean_auc']:>8.3f}{summary['mean_precision']:>9.3f}"
                f"{summary['mean_success_rate']:>8.3f}{summary['fps']:>10.1f}")
    if "ao" in summary:
        rows.append(f"AO {summary['ao']:.3f} (bootstrap s.e. {summary['ao_se']:.3f})  "
                    f"SR0.5 {summary['sr50']:.3f}  SR0.75 {summary['sr75']:.3f}")
    for name, err in summary.get("failed", {}).items():
        rows.append(f"FAILED {name}: {err}")
    return "\n".join(rows)
