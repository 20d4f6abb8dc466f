"""The ``selection`` job: does a selection set rank networks as the test set does, and how finely?

Before a set is trusted to select checkpoints, stop early or score ablations, it should
(a) put known networks in their known order and (b) resolve the differences that matter.
This job tracks every network of ``trackers`` on every sequence of ``sets`` (any layout:
GOT-10k, OTB or video folders, a named subset of each) and reports, on each set and on all
of them pooled, every network's mean AUC with its bootstrap s.e., and for each pair in
``compare`` the mean difference with its *paired* bootstrap s.e. (whole sequences resampled
for both networks at once), the figure that says whether a 0.02 difference is real.
Nothing here reads the test set unless a config names it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config, from_dict, param
from ..errors import InputError
from ..evaluation import evaluate
from ..evaluation.summary import bootstrap_se, paired_difference
from ..files import write_json, write_text
from ..stages import StagedJob
from ..system import cpu_name, isa_summary
from ..tracking.factory import TrackerSpec, check_tracker


@dataclass
class SequenceSet(Config):
    name: str = "set"
    benchmark: str = "folder"           # as tools/evaluate.py's --benchmark
    root: str = param("", path="dir")
    sequences: list[str] = param(factory=list)   # a subset by name (empty: all) ...
    split_file: str = ""                # ... or the list under ``split`` in this JSON file (relative to root)
    split: str = ""


@dataclass
class SelectionJobConfig(Config):
    out: str = "runs/selection"
    trackers: dict = param(factory=dict)          # name -> checkpoint or tracker string, in ranking order
    sets: list[SequenceSet] = param(factory=list)
    compare: list[list[str]] = param(factory=list)   # pairs [a, b] (empty: each tracker against the next)
    workers: int = param(2, ge=1)
    samples: int = param(2000, ge=100)


@dataclass
class SelectionConfig(Config):
    job: str = param("selection", choices=("selection",))
    selection: SelectionJobConfig = param(factory=SelectionJobConfig)


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> "SelectionJob":
    cfg = from_dict(SelectionConfig, data, f"{path}:")
    s = cfg.selection
    if not s.trackers or not s.sets:
        raise InputError(f"{path}:selection: needs trackers and sets")
    for name, tracker in s.trackers.items():
        check_tracker(TrackerSpec.parse(str(tracker), name=str(name)))
    for pair in s.compare:
        if len(pair) != 2 or not set(pair) <= set(s.trackers):
            raise InputError(f"{path}:selection.compare: {pair} is not a pair of the trackers")
    for q in s.sets:
        names(q)   # a missing split file or split fails now
    set_names = [q.name for q in s.sets]
    if len(set(set_names)) != len(set_names) or "pooled" in set_names:
        raise InputError(f"{path}:selection.sets: names must differ and not be 'pooled' ({', '.join(set_names)})")
    if out:
        s.out = out
    return SelectionJob(cfg)


def names(q: SequenceSet) -> list[str] | None:
    """The set's sequence names (None: every sequence under its root)."""
    if q.split_file:
        path = os.path.join(q.root, q.split_file)
        try:
            with open(path) as f:
                return list(json.load(f)[q.split])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: no sequence list '{q.split}' ({type(e).__name__})") from None
    return list(q.sequences) or None


class SelectionJob(StagedJob):
    STAGES = ("evaluate", "report")
    OUTPUTS = {"evaluate": ("eval",), "report": ("report.json", "REPORT.md")}

    def __init__(self, cfg: SelectionConfig) -> None:
        super().__init__(cfg.selection.out)
        self.cfg = cfg

    def stage_evaluate(self) -> dict[str, Any]:
        s = self.cfg.selection
        aucs: dict[str, dict[str, dict[str, float]]] = {}
        for q in s.sets:
            aucs[q.name] = {}
            for name, tracker in s.trackers.items():
                spec = TrackerSpec.parse(str(tracker), name=str(name))
                summary = evaluate(spec, q.benchmark, q.root, os.path.join(self.out, "eval", q.name), s.workers,
                                   names(q), summary_file=f"summary_{name}.json")
                aucs[q.name][name] = {seq: v["auc"] for seq, v in summary["sequences"].items()}
        return {"aucs": aucs}

    def stage_report(self) -> dict[str, Any]:
        s = self.cfg.selection
        aucs = self.result("evaluate")["aucs"]
        pooled = {t: {f"{q}/{seq}": v for q in aucs for seq, v in aucs[q][t].items()} for t in s.trackers}
        pairs = [list(p) for p in s.compare] or [[a, b] for a, b in zip(list(s.trackers), list(s.trackers)[1:])]
        report = {"cpu": cpu_name(), "isa": isa_summary(), "sets": {}}
        for set_name, per in list(aucs.items()) + [("pooled", pooled)]:
            # every figure on the sequences all trackers scored, so a difference is the difference of the means
            common = set.intersection(*(set(v) for v in per.values()))
            dropped = sorted(set().union(*(set(v) for v in per.values())) - common)
            per = {t: {n: v[n] for n in sorted(common)} for t, v in per.items()}
            if not common:
                raise InputError(f"{self.out}: no sequence of {set_name} was scored for every tracker")
            report["sets"][set_name] = {
                "sequences": len(common), "dropped": dropped,
                "mean_auc": {t: float(np.mean(list(v.values()))) for t, v in per.items()},
                "se": {t: bootstrap_se(np.array(list(v.values())), np.ones(len(v)), s.samples) for t, v in per.items()},
                "differences": [dict(zip(("a", "b", "diff", "paired_se"),
                                         (a, b, *paired_difference(per[a], per[b], s.samples)))) for a, b in pairs]}
        write_json(os.path.join(self.out, "report.json"), report)
        write_text(os.path.join(self.out, "REPORT.md"), render(report))
        return {"sets": len(report["sets"])}


def render(r: dict[str, Any]) -> str:
    lines = ["# Selection set check", "", f"{r['cpu']} ({r['isa']}). Mean AUC over sequences (OTB success AUC), "
             "bootstrap s.e. over sequences; differences with the paired bootstrap s.e.", ""]
    for name, v in r["sets"].items():
        lines += [f"## {name} ({v['sequences']} sequences)", "", "| tracker | mean AUC | s.e. |", "|---|---|---|"]
        lines += [f"| {t} | {auc:.3f} | {v['se'][t]:.3f} |" for t, auc in v["mean_auc"].items()]
        lines += ["", "| a - b | difference | paired s.e. | a above b by 2 s.e. |", "|---|---|---|---|"]
        lines += [f"| {d['a']} - {d['b']} | {d['diff']:+.3f} | {d['paired_se']:.3f} | "
                  f"{'yes' if d['diff'] > 2 * d['paired_se'] else 'no'} |" for d in v["differences"]]
        lines.append("")
    return "\n".join(lines)
