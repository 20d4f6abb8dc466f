"""The cut of NanoTrack v2's FD, chosen on the selection set by a rule fixed in the config.

candidates -> choose -> export -> report

``candidates`` runs the whole ``nanotrack`` job (fits, distillation, export, scoring on the selection
set inside ``cv2.TrackerNano``) once per keep-ratio and number of dropped head layers, in
``OUT/rate_R`` (``OUT/rate_R_dropD``); each resumes on its own, so a killed run loses at most one
epoch. ``choose`` applies the config's rule to the pooled selection-set scores:

- ``tolerance``: the smallest keep-ratio (then the fewest drops) whose AUC is at least the original
  pair's minus ``tolerance``; none: the most accurate, flagged;
- ``speed``: the most accurate candidate whose speed-up over the original pair is at least
  ``min_speedup``; none: the fastest, flagged.

``export`` copies its pair to ``OUT/backbone.onnx`` and ``OUT/head.onnx``, where ``cv2.TrackerNano`` and
``fdsiamfc nanotrack-sweep --extra`` read it. The test set is never read here.
"""
from __future__ import annotations

import copy
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..config import Config, ConfigError, from_dict, param
from ..errors import InputError
from ..files import atomic_path, save_figure, write_json, write_text
from ..stages import StagedJob
from ..system import cpu_name, isa_summary
from .nanotrack import NanoConfig, NanoJob, check_drop, make_job as make_nano_job


@dataclass
class ChooseConfig(Config):
    """The candidates and the rule that picks one."""

    rates: list[float] = param(factory=lambda: [0.5, 0.55, 0.6, 0.65])
    drops: list[int] = param(factory=lambda: [0], ge=0)   # head layers each tower loses (nanotrack.drop)
    rule: str = param("tolerance", choices=("tolerance", "speed"))
    tolerance: float = param(0.01, ge=0)   # AUC below the original pair's that still counts as keeping it
    min_speedup: float = param(1.35, gt=0)   # the speed rule's floor, on the selection frames

    def candidates(self) -> list[tuple[float, int]]:
        return [(r, d) for r in sorted(self.rates) for d in sorted(set(self.drops))]


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> "NanoSelectJob":
    """The job of a config whose ``choose`` section lists the candidates, every section checked."""
    data = dict(data)
    choose = from_dict(ChooseConfig, data.pop("choose", {}) or {}, f"{path}:choose")
    folders = {rate_folder(r) for r in choose.rates}
    if not choose.rates or any(not 0 < r <= 1 for r in choose.rates) or len(folders) < len(choose.rates):
        raise ConfigError(f"{path}:choose.rates", f"{choose.rates}: keep-ratios in (0, 1] that differ in their "
                                                  f"first two decimals are needed")
    if not choose.drops:
        raise ConfigError(f"{path}:choose.drops", "at least one number of dropped head layers (0: none) is needed")
    for key, what in (("rate", "keep-ratios are choose.rates"), ("drop", "dropped layers are choose.drops")):
        if key in (data.get("nanotrack") or {}):
            raise ConfigError(f"{path}:nanotrack.{key}", f"the candidates' {what}")
    data["job"] = "nanotrack"
    nano = make_nano_job(path, data, out).cfg   # checks every nanotrack and finetune key
    check_drop(f"{path}:choose.drops", nano.nanotrack.model, max(choose.drops))
    return NanoSelectJob(nano, choose)


def rate_folder(rate: float, drop: int = 0) -> str:
    """The candidate's folder inside the job's."""
    return f"rate_{rate:.2f}" + (f"_drop{drop}" if drop else "")


def label(row: dict[str, Any]) -> str:
    return f"{row['rate']:.2f}" + (f", {row['drop']} fewer layers a tower" if row.get("drop") else "")


class NanoSelectJob(StagedJob):
    STAGES = ("candidates", "choose", "export", "report")
    OUTPUTS = {"choose": (), "export": ("backbone.onnx", "head.onnx"),
               "report": ("report.json", "REPORT.md", "selection.png")}

    def __init__(self, nano: NanoConfig, choose: ChooseConfig) -> None:
        super().__init__(nano.nanotrack.out)
        self.nano, self.choose = nano, choose

    def run(self, log: Callable[[str], None] = print, until: str | None = None) -> None:
        """As every job, after checking that OUT holds no other job's stages (a single-rate ``nanotrack`` run
        there would have this job skip its own ``export`` and ``report``)."""
        folder = os.path.join(self.out, "stages")
        foreign = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json") and f[:-5] not in self.STAGES) \
            if os.path.isdir(folder) else []
        if foreign:
            raise InputError(f"{self.out}: holds another job's stages ({', '.join(foreign)}); give this job "
                             f"another folder (--out) or remove that one")
        super().run(log, until)

    def redo_from(self, stage: str) -> None:
        """As every job; redoing ``candidates`` also forgets every candidate's folder."""
        super().redo_from(stage)
        if self.STAGES.index(stage) == 0:
            for rate, drop in self.choose.candidates():
                shutil.rmtree(os.path.join(self.out, rate_folder(rate, drop)), ignore_errors=True)

    def candidate(self, rate: float, drop: int = 0) -> NanoJob:
        cfg = copy.deepcopy(self.nano)
        cfg.nanotrack.rate, cfg.nanotrack.drop = rate, drop
        cfg.nanotrack.out = os.path.join(self.out, rate_folder(rate, drop))
        return NanoJob(cfg)

    def stage_candidates(self) -> dict[str, Any]:
        rows = []
        for rate, drop in self.choose.candidates():
            job = self.candidate(rate, drop)
            print(f"-- keep-ratio {rate:.2f}, {drop} head layers dropped a tower -> {job.out}")
            job.run()
            ev, ex, ft = job.result("evaluate"), job.result("export"), job.result("finetune")
            ours = ev["trackers"]["NanoTrackV2-FD"]
            rows.append({"rate": rate, "drop": drop, "folder": job.out,
                         **{k: ours[k] for k in ("auc", "auc_diff", "auc_diff_se", "precision", "speedup",
                                                 "speedup_q1", "speedup_q3")},
                         **{k: ex[k] for k in ("params", "macs", "mb")},
                         "heldout_loss": ft["best_heldout"], "best_epoch": ft["best_epoch"]})
        original = ev["trackers"]["NanoTrackV2"]
        return {"rows": rows, "original": {"auc": original["auc"], "precision": original["precision"]},
                "selection": ev["selection"], "sequences": ev["sequences"], "frames": ev["frames"]}

    def stage_choose(self) -> dict[str, Any]:
        rows, c = self.result("candidates")["rows"], self.choose
        if c.rule == "speed":
            fast = [r for r in rows if r["speedup"] >= c.min_speedup]
            pick = max(fast, key=lambda r: r["auc"]) if fast else max(rows, key=lambda r: r["speedup"])
            met = {"fast_enough": bool(fast), "min_speedup": c.min_speedup}
        else:
            within = [r for r in rows if r["auc_diff"] >= -c.tolerance]
            pick = min(within, key=lambda r: (r["rate"], r.get("drop", 0))) if within else \
                max(rows, key=lambda r: r["auc"])
            met = {"within_tolerance": bool(within), "tolerance": c.tolerance}
        return {"rule": c.rule, "rate": pick["rate"], "drop": pick.get("drop", 0), **met}

    def stage_export(self) -> dict[str, Any]:
        chosen = self.result("choose")
        folder = os.path.join(self.out, rate_folder(chosen["rate"], chosen.get("drop", 0)))
        for name in ("backbone.onnx", "head.onnx"):
            with atomic_path(os.path.join(self.out, name)) as tmp:
                shutil.copyfile(os.path.join(folder, name), tmp)
        return {"from": folder}

    def stage_report(self) -> dict[str, Any]:
        cand, chosen = self.result("candidates"), self.result("choose")
        picked = self.candidate(chosen["rate"], chosen.get("drop", 0))
        settings = {"choose": asdict(self.choose), "nanotrack": asdict(self.nano.nanotrack),
                    "finetune": asdict(self.nano.finetune)}
        report = {"cpu": cpu_name(), "isa": isa_summary(), "threads": self.nano.nanotrack.threads, **cand,
                  "chosen": chosen, "rate": chosen["rate"], "export": picked.result("export"),   # as --extra reads
                  "settings": settings, "stage_seconds": self.stage_seconds()}
        report["elapsed_s"] = round(sum(report["stage_seconds"].values()), 1)
        write_json(os.path.join(self.out, "report.json"), report)
        write_text(os.path.join(self.out, "REPORT.md"), render_markdown(report))
        render_plot(report, os.path.join(self.out, "selection.png"))
        return {"rate": chosen["rate"], "drop": chosen.get("drop", 0), "elapsed_s": report["elapsed_s"]}


def _is_chosen(row: dict[str, Any], c: dict[str, Any]) -> bool:
    return row["rate"] == c["rate"] and row.get("drop", 0) == c.get("drop", 0)


def _verdict(c: dict[str, Any]) -> str:
    if c.get("rule") == "speed":
        return (f"the most accurate of those at least {c['min_speedup']:.2f}x the original pair's speed"
                if c["fast_enough"] else f"**none reaches {c['min_speedup']:.2f}x the original pair's speed**: "
                                         f"the fastest is kept")
    return (f"the smallest within {c['tolerance']:.3f} AUC of the original pair" if c["within_tolerance"] else
            f"**none is within {c['tolerance']:.3f} AUC of the original pair**: the most accurate is kept")


def render_markdown(r: dict[str, Any]) -> str:
    c, o = r["chosen"], r["original"]
    lines = [f"# NanoTrack v2 with FD: keep-ratio {label(c)} chosen on the selection set", "",
             f"{r['cpu']} ({r['isa']}), {r['threads']} threads. Selection sets, pooled: "
             f"{', '.join(f'`{x}`' for x in r['selection'])} ({r['sequences']} sequences, {r['frames']} frames); "
             f"the test set is not read. Chosen: keep-ratio {label(c)}, {_verdict(c)}. Speed-ups: each candidate "
             f"timed side by side with the original pair inside `cv2.TrackerNano` (median of per-sequence ratios, "
             f"quartiles in brackets).", "",
             "| keep-ratio | params | MMACs | MB | speed-up | mean AUC | AUC diff (paired s.e.) | precision | "
             "held-out loss (epoch) |", "|---|---|---|---|---|---|---|---|---|",
             f"| original | - | - | - | 1.00 | {o['auc']:.3f} | - | {o['precision']:.3f} | - |"]
    for w in r["rows"]:
        mark = "**" if _is_chosen(w, c) else ""
        lines.append(f"| {mark}{label(w)}{mark} | {w['params']:,} | {w['macs'] / 1e6:.1f} | {w['mb']:.2f} | "
                     f"{w['speedup']:.2f} ({w['speedup_q1']:.2f}-{w['speedup_q3']:.2f}) | {w['auc']:.3f} | "
                     f"{w['auc_diff']:+.3f} ({w['auc_diff_se']:.3f}) | {w['precision']:.3f} | "
                     f"{w['heldout_loss']:.4f} ({w['best_epoch']}) |")
    lines += ["", "Each candidate's own report: `rate_R[_dropD]/REPORT.md`.", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in r["stage_seconds"].items()]
    return "\n".join(lines) + "\n"


def render_plot(r: dict[str, Any], path: str) -> None:
    """Selection-set AUC against speed-up, each candidate with its paired s.e., the rule's bound as a band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, o, c = r["rows"], r["original"], r["chosen"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if c.get("rule") == "speed":
        ax.axvspan(c["min_speedup"], 10, color="tab:green", alpha=0.08, label="fast enough")
    else:
        ax.axhspan(o["auc"] - c["tolerance"], o["auc"] + 1, color="tab:green", alpha=0.08, label="within the tolerance")
    ax.plot(1.0, o["auc"], "*", color="tab:blue", markersize=12, linestyle="none", label="NanoTrack v2, original pair")
    for drop in sorted({w.get("drop", 0) for w in rows}):
        some = [w for w in rows if w.get("drop", 0) == drop]
        ax.errorbar([w["speedup"] for w in some], [w["auc"] for w in some], yerr=[w["auc_diff_se"] for w in some],
                    fmt="o-" if not drop else "s--", capsize=3,
                    label="FD + distillation" + (f", {drop} fewer layers a tower" if drop else "") + " (paired s.e.)")
    for w in rows:
        ax.annotate(f"r={w['rate']:.2f}" + (f" -{w['drop']}" if w.get("drop") else "")
                    + (" (chosen)" if _is_chosen(w, c) else ""),
                    (w["speedup"], w["auc"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    aucs = [o["auc"]] + [w["auc"] for w in rows]
    ax.set_ylim(min(aucs) - 0.05, max(aucs) + 0.05)
    ax.set_xlabel("speed-up over the original pair (cv2.TrackerNano)")
    ax.set_ylabel("mean AUC, selection set")
    ax.set_xlim(right=max(max(w["speedup"] for w in rows), c.get("min_speedup", 1.0)) + 0.1)
    ax.set_title(f"Choosing the cut: {r['sequences']} selection sequences", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path, dpi=110)
