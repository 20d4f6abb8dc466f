"""Render a run's ``report.json`` into ``REPORT.md`` and pictures (plots, a tracking GIF).

The renderer knows no pipeline: everything it shows is in the JSON, so a report
can be re-rendered, or rendered on another machine, from the run folder alone.
"""
from __future__ import annotations

import os
import shutil
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .compression.phase_log import cell
from .data.sequences import read_frame
from .evaluation.benchmarks import load_benchmark
from .files import read_json, write_text
from .tracking.video import draw_box


def render_report(out: str) -> str:
    """Write ``OUT/REPORT.md``, the overlay GIF and copies of the plots; returns the markdown path."""
    r = read_json(os.path.join(out, "report.json"))
    for src, name in zip(r["plot_sources"], r["plots"]):
        shutil.copyfile(os.path.join(out, src), os.path.join(out, name))
    for name, plot in r.get("diagnosis_plots", {}).items():
        shutil.copyfile(os.path.join(out, name, "diagnosis.png"), os.path.join(out, plot))
    overlay = r["overlay"]
    bench = load_benchmark(overlay["benchmark"], overlay["root"], overlay["sequences"])
    result_file = {"got10k": lambda n: os.path.join(overlay["results"], n, f"{n}_001.txt"),
                   "otb": lambda n: os.path.join(overlay["results"], f"{n}.txt")}[overlay["layout"]]
    boxes = {s.name: np.loadtxt(result_file(s.name), delimiter=",") for s in bench.sequences}
    overlay_gif(os.path.join(out, "overlay.gif"), bench.sequences, boxes, max_frames=overlay.get("frames"))
    path = os.path.join(out, "REPORT.md")
    markdown, summary = RENDERERS[r.get("job", "quickstart")]
    write_text(path, markdown(r))
    print(summary(r))
    return path


def overlay_gif(path: str, sequences: list, boxes: dict[str, np.ndarray], width: int = 320,
                max_frames: int | None = None) -> None:
    """Animated GIF: ground truth (green) and the tracker (red) on each frame."""
    images = []
    for seq in sequences:
        pred = boxes[seq.name]
        for i, frame_path in enumerate(seq.frames[:max_frames]):
            img = read_frame(frame_path)
            draw_box(img, seq.boxes[i], (0, 220, 0), 2)
            draw_box(img, pred[i], (255, 40, 40), 2)
            cv2.putText(img, f"{seq.name} #{i + 1}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            scale = width / img.shape[1]
            images.append(Image.fromarray(cv2.resize(img, None, fx=scale, fy=scale)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=150, loop=0, optimize=True)


def summary_text(r: dict[str, Any]) -> str:
    return (f"teacher AO {r['teacher_ao']:.3f} -> FD slim AO {r['slim_ao']:.3f} "
            f"({100 * r['retention']:.1f}% kept); identity {r['identity_ao']:.3f}, random init {r['random_ao']:.3f} "
            f"(seeds {', '.join(f'{v:.3f}' for v in r['random_ao_seeds'].values())})\n"
            f"params {r['teacher_params']:,} -> {r['slim_params']:,} "
            f"({r['teacher_params'] / r['slim_params']:.1f}x), GFLOPs {r['teacher_gflops']:.3f} -> "
            f"{r['slim_gflops']:.3f} ({r['teacher_gflops'] / r['slim_gflops']:.1f}x), CPU FPS "
            f"{r['teacher_fps']:.0f} -> {r['slim_fps']:.0f}; pipeline {r['elapsed_s'] / 60:.1f} min")


def previous_recipe_lines(a: dict[str, Any]) -> list[str]:
    """What this run's recipe kept against a previous one's measured run."""
    if not a:
        return []
    p = a["previous"]
    text = (f"Against the previous recipe ({p.get('recipe', 'not named')}; {p.get('measured', 'source not given')}): "
            f"slim AO {a['slim_ao']:.3f} against {p['slim_ao']:.3f} ({a['slim_ao_change']:+.3f})"
            if "slim_ao_change" in a else f"Against the previous recipe ({p.get('recipe', 'not named')})")
    if "compress_speedup" in a:
        text += f", compression {a['compress_s']:.0f} s against {p['compress_s']:.0f} s ({a['compress_speedup']:.1f}x faster)"
    return [text + ".", ""]


def motion_lines(m: dict[str, Any] | None, names: dict[str, str]) -> list[str]:
    """AO per band of target motion, and the teacher over each random-init seed in each band."""
    if not m:
        return []
    e, aos = m["edges"], m["ao"]
    bands = [f"{lo:.2f}-{hi:.2f} ({n})" for lo, hi, n in zip(e[:-1], e[1:], m["sequences"])]
    L = ["### AO by target motion", "",
         "Sequences in equal-count bands of mean centre displacement per frame over the target's first size "
         "(sequences per band in brackets). Random weights match templates while the target barely moves; "
         "the gap to the trained teacher opens as it moves further.", "",
         "| tracker | " + " | ".join(bands) + " |", "|---|" + "---|" * len(bands)]
    L += [f"| {names.get(k, k)} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in row) + " |"
          for k, row in aos.items()]
    L += [f"| teacher / {names.get(k, k)} | " + " | ".join(f"{t / v:.2f}x" if t and v else "-"
                                                           for t, v in zip(aos["teacher"], row)) + " |"
          for k, row in aos.items() if k.startswith("random")]
    return L + [""]


def render_markdown(r: dict[str, Any]) -> str:
    names = r["names"]
    tw, sw = "/".join(map(str, r["teacher_widths"])), "/".join(map(str, r["slim_widths"]))
    L = [f"# {r['title']}", "",
         f"Run on {r['date']}, {r['cpu']} ({r['isa']}), {r['threads']} torch threads, PyTorch {r['torch']}. "
         + (f"The teacher trained in {r['training_precision']['precision']}: "
            f"{r['training_precision']['reason']}." if r.get("training_precision") else ""),
         f"Pipeline wall time {r['elapsed_s'] / 60:.1f} min (setup excluded). Every tracker ran SiamFC's "
         + (f"tracking with {', '.join(f'{k} = {v}' for k, v in r['track'].items())}." if r.get("track")
            else "default tracking."), "",
         *previous_recipe_lines(r.get("against_previous_recipe") or {}),
         f"**{summary_text(r).splitlines()[0]}**", "",
         "## Compression", "",
         "| model | widths | params | MB | GFLOPs (255x255) | CPU FPS (fp32, end to end) |",
         "|---|---|---|---|---|---|",
         f"| SiamFC teacher | {tw} | {r['teacher_params']:,} | {r['teacher_mb']:.2f} | "
         f"{r['teacher_gflops']:.3f} | {r['teacher_fps']:.1f} |",
         f"| FD slim ({sw}) | {sw} | {r['slim_params']:,} | {r['slim_mb']:.2f} | {r['slim_gflops']:.3f} | "
         f"{r['slim_fps']:.1f} |",
         f"| ratio | | {r['teacher_params'] / r['slim_params']:.1f}x | {r['teacher_mb'] / r['slim_mb']:.1f}x | "
         f"{r['teacher_gflops'] / r['slim_gflops']:.1f}x | {r['slim_fps'] / r['teacher_fps']:.1f}x |", "",
         "## Accuracy on the synthetic val split", "",
         "AO, SR0.5 and SR0.75 as got10k computes them; the standard error is a bootstrap over sequences.", "",
         "| tracker | backend that ran | AO | s.e. | SR0.5 | SR0.75 | OTB AUC | precision@20 |",
         "|---|---|---|---|---|---|---|---|"]
    for key in r["val"]:
        v = r["val"][key]
        L.append(f"| {names[key]} | {v.get('backend', '-')} | {v['ao']:.3f} | {v['ao_se']:.3f} | {v['sr50']:.3f} | {v['sr75']:.3f} | "
                 f"{v['mean_auc']:.3f} | {v['mean_precision']:.3f} |")
    L += ["", "| gate | value | bar | passed |", "|---|---|---|---|"]
    L += [f"| {g['gate']} | {g['value']:.3f} | {g['bar']} | {'yes' if g['passed'] else '**no**'} |"
          for g in r["gates"]]
    L += ["", " ".join(f"![{p}]({p})" for p in r["plots"]), ""]
    L += motion_lines(r.get("ao_by_motion"), names)
    if r["real"]:
        L += ["## Published FDSiamFC weights on real footage (`../shared/data/real`)", "",
              "| weights | mean AUC | mean precision@20 | public implementation AUC | precision |",
              "|---|---|---|---|---|"]
        for name, v in r["real"].items():
            ref = r["reference"].get(name, {"auc": float("nan"), "precision": float("nan")})
            L.append(f"| {name} | {v['mean_auc']:.3f} | {v['mean_precision']:.3f} | {ref['auc']:.3f} | "
                     f"{ref['precision']:.3f} |")
        L.append("")
    L += ["## Tracking overlay", "", "Ground truth in green, the FD slim tracker in red, on validation sequences.", "",
          "![overlay](overlay.gif)", "",
          "## Compression log (after each phase, on the selection split)", "",
          "Tracking scores where the phase had candidates to choose between (or `select.score_single` is on); "
          "against the teacher on held-out pairs, the embedding error (after the best orthogonal map) and the "
          "score-map correlation.", "",
          "| phase | chosen epoch | AUC | precision | SR | AO | embedding error | score-map corr. | time (s) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for p in r["phases"]:
        d = p.get("diagnosis") or {}
        L.append(f"| {p['name']} | {p['selected_epoch']} | {cell(p['auc'])} | {cell(p['precision'])} | "
                 f"{cell(p['success_rate'])} | {cell(p.get('ao'))} | {cell(d.get('embedding_error'))} | "
                 f"{cell(d.get('response_correlation'))} | {p['seconds']:.0f} |")
    L += ["", "## Stage times (s)", "", "| " + " | ".join(r["stage_seconds"]) + " |",
          "|" + "---|" * len(r["stage_seconds"]),
          "| " + " | ".join(f"{v:.0f}" for v in r["stage_seconds"].values()) + " |", "",
          "Inside the stages (s):", "", "| stage | part | seconds |", "|---|---|---|"]
    L += [f"| {stage} | {part} | {sec:.0f} |" for stage, parts in r["inside_seconds"].items()
          for part, sec in parts.items()]
    L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- the real-footage job

def real_summary_text(r: dict[str, Any]) -> str:
    m = r["models"]
    return (f"halve FDSiamfc_30: AUC {m['halve']['mean_auc']:.3f} (label-free {m['label_free']['mean_auc']:.3f}) "
            f"vs the authors' FDSiamfc_15 {m['ref_FDSiamfc_15']['mean_auc']:.3f}; full SiamFC_VID at 0.3: "
            f"{m['full']['mean_auc']:.3f} vs its teacher {m['full_teacher']['mean_auc']:.3f} and the authors' "
            f"FDSiamfc_30 {m['ref_FDSiamfc_30']['mean_auc']:.3f}; job {r['elapsed_s'] / 60:.1f} min")


def real_gates(r: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(gate, target, measured, met) for the real job's acceptance figures."""
    m = r["models"]
    auc = {k: m[k]["mean_auc"] for k in m}
    return [
        ("halved widths / params", "14/38/56/56/38, 55,102",
         f"{'/'.join(map(str, m['halve']['widths']))}, {m['halve']['params']:,}",
         m["halve"]["widths"] == [14, 38, 56, 56, 38] and m["halve"]["params"] == 55102),
        ("halved (boxes) mean AUC", ">= 0.526", f"{auc['halve']:.3f}", auc["halve"] >= 0.526),
        ("halved label-free mean AUC", ">= 0.516", f"{auc['label_free']:.3f}", auc["label_free"] >= 0.516),
        ("full at 0.3 params", "213,282", f"{m['full']['params']:,}", m["full"]["params"] == 213282),
        ("full at 0.3 mean AUC", ">= 0.537", f"{auc['full']:.3f}", auc["full"] >= 0.537),
        ("job wall time", "<= 90 min", f"{r['elapsed_s'] / 60:.1f} min", r["elapsed_s"] <= 5400),
    ]


def real_markdown(r: dict[str, Any]) -> str:
    m = r["models"]
    rows = [("halve", "ours: FDSiamfc_30 halved (boxes)"), ("label_free", "ours: FDSiamfc_30 halved (no box read)"),
            ("ref_FDSiamfc_15", "authors' FDSiamfc_15 (GOT-10k, GPUs)"), ("ref_FDSiamfc_30", "authors' FDSiamfc_30 "
                                                                               "(teacher of the halvings)"),
            ("full", "ours: SiamFC_VID at 0.3 (boxes)"), ("full_teacher", "SiamFC_VID (teacher of the 0.3)")]
    L = [f"# {r['title']}", "",
         f"Run on {r['date']}, {r['cpu']} ({r['isa']}), {r['threads']} torch threads, PyTorch {r['torch']}. "
         f"Job wall time {r['elapsed_s'] / 60:.1f} min.", "",
         f"**{real_summary_text(r)}**", "",
         "Trained on the real training footage; checkpoints selected on the held-out source videos "
         f"({', '.join(r['split']['select'])}), tracked whole"
         + (f", and on the last {r['tail']:.0%} of every training sequence, which training never sees"
            if r.get("tail") else "")
         + (f"; the runs with boxes also on {', '.join(r['select_extra'])}, pooled sequence by sequence"
            if r.get("select_extra") else "")
         + "; the label-free run against the teacher's own tracks; scored here on the test footage, which no "
           "earlier stage reads.", "",
         "## Accuracy on the test footage, size and speed", "",
         "| network | widths | params | GFLOPs (255x255) | CPU fps (fp32) | mean AUC | precision@20 | SR0.5 |",
         "|---|---|---|---|---|---|---|---|"]
    for key, label in rows:
        v = m[key]
        L.append(f"| {label} | {'/'.join(map(str, v['widths']))} | {v['params']:,} | {v['gflops']:.3f} | "
                 f"{v['fps']:.1f} | {v['mean_auc']:.3f} | {v['mean_precision']:.3f} | {v['mean_success_rate']:.3f} |")
    L += ["", "## The issue's gates", "", "| gate | target | measured | |", "|---|---|---|---|"]
    L += [f"| {g} | {t} | {v} | {'met' if ok else '**missed**'} |" for g, t, v, ok in real_gates(r)]
    L += ["", " ".join(f"![{p}]({p})" for p in r["plots"]), "", "## AUC per test sequence", ""]
    keys = [k for k, _ in rows]
    L += ["| sequence | " + " | ".join(m[k]["name"] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for seq in r["per_sequence"][keys[0]]:
        L.append(f"| {seq} | " + " | ".join(f"{r['per_sequence'][k][seq]:.3f}" for k in keys) + " |")
    L += ["", "## Tracking overlay", "", "Ground truth in green, the halved network (boxes) in red.", "",
          "![overlay](overlay.gif)", "", "## Label-free data", "",
          f"The teacher picked and tracked its own targets: {r['pseudo']['train']['clips']} training clips "
          f"({r['pseudo']['train']['frames']} frames, {r['pseudo']['valid_frames']} valid crops) and "
          f"{r['pseudo']['select']['clips']} selection clips; no ground-truth file was read.", ""]
    for name in ("halve", "label_free", "full"):
        L += [f"## Compression log and diagnosis: {name} (fold error {r['fold_error'][name]:.1e})", "",
              "Held out: the selection set's tracking score, and against the teacher on held-out pairs the "
              "embedding error (after the best orthogonal map) and the score-map correlation.", "",
              "| phase | chosen epoch | held-out AUC | precision | SR | embedding error | score-map corr. | time (s) |",
              "|---|---|---|---|---|---|---|---|"]
        for p in r["phases"][name]:
            d = p.get("diagnosis") or {}
            L.append(f"| {p['name']} | {p['selected_epoch']} | {cell(p['auc'])} | {cell(p['precision'])} | "
                     f"{cell(p['success_rate'])} | {d.get('embedding_error', '-')} | {d.get('response_correlation', '-')} | "
                     f"{p['seconds']:.0f} |")
        if name in r.get("diagnosis_plots", {}):
            L += ["", f"![diagnosis {name}]({r['diagnosis_plots'][name]})"]
        L.append("")
    L += ["## Stage times (s)", "", "| " + " | ".join(r["stage_seconds"]) + " |",
          "|" + "---|" * len(r["stage_seconds"]),
          "| " + " | ".join(f"{v:.0f}" for v in r["stage_seconds"].values()) + " |", ""]
    return "\n".join(L)


RENDERERS = {"quickstart": (render_markdown, summary_text), "real": (real_markdown, real_summary_text)}

