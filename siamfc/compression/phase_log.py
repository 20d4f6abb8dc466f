"""``compress_log.md``: a compression's phases as a table for people, with the diagnosis plot."""
from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from ..files import write_text
from .diagnosis import plot_diagnosis
from .recipe import CompressConfig


def cell(value: float | None) -> str:
    """A table cell: three decimals, or '-' for a figure not measured (an unscored candidate)."""
    return "-" if value is None else f"{value:.3f}"


def _throughput(phase: dict[str, Any]) -> str:
    rate, share = phase.get("pairs_per_s") or [], phase.get("arithmetic")
    if not rate:
        return "-"
    text = f"{sum(rate) / len(rate):.1f}"
    return f"{text} ({100 * share['fraction']:.0f}% {share['precision']})" if share else text


def write_log(state: dict[str, Any], cfg: CompressConfig, out_dir: str) -> None:
    """Rewrite ``OUT/compress_log.md`` (and ``diagnosis.png``) from ``state.json``'s contents."""
    lines = ["# FD compression log", "",
             f"teacher: `{state['teacher']}`  ",
             f"rates: {cfg.rates}, grouping: {cfg.grouping}, transition: {cfg.transition}, "
             f"targets: {cfg.targets}, calibration pairs: {cfg.sample_images}, "
             f"loss: {asdict(cfg.loss)}  ",
             f"selection: {cfg.select.benchmark} at `{cfg.select.root}`"
             f"{f' in {cfg.select.segment}-frame segments' if cfg.select.segment else ', whole sequences'}, "
             "score = 0.4 AUC + 0.4 precision + 0.2 SR  ",
             f"diagnosis: {cfg.diagnose.pairs} held-out pairs from `{cfg.diagnose.crops}`; embedding "
             "error after the best orthogonal map onto the teacher's, relative to its energy" if cfg.diagnose.crops
             else "diagnosis: off (no held-out crops given)", "",
             "| phase | init | fit residual | candidates (epoch: score) | chosen | held-out AUC | precision | SR "
             "| embedding error | score-map corr. | pairs/s (share of GEMM peak) | time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in state["phases"]:
        cands = ", ".join(f"{c['epoch']}: {cell(c['score'])}" for c in p["candidates"])
        d = p.get("diagnosis") or {}
        fit = p.get("refined_residual") if p.get("refined_residual") is not None else p.get("fit_residual")
        lines.append(f"| {p['name']} | {p['init']} | {'-' if fit is None else f'{fit:.3f}'} | {cands} | "
                     f"{p['selected_epoch']} | {cell(p['auc'])} | {cell(p['precision'])} | {cell(p['success_rate'])} | "
                     f"{d.get('embedding_error', '-')} | {d.get('response_correlation', '-')} | "
                     f"{_throughput(p)} | {p['seconds']:.0f} |")
    plot = plot_diagnosis(state["phases"], os.path.join(out_dir, "diagnosis.png"),
                          f"{os.path.basename(state['teacher'])} at {cfg.rates}: held-out, per phase")
    if plot:
        lines += ["", "![diagnosis](diagnosis.png)"]
    write_text(os.path.join(out_dir, "compress_log.md"), "\n".join(lines) + "\n")
