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

from .data.sequences import read_frame
from .evaluation.benchmarks import load_benchmark
from .files import read_json, write_text
from .tracking.video import draw_box


def render_report(out: str) -> str:
    """Write ``OUT/REPORT.md``, the overlay GIF and copies of the plots; returns the markdown path."""
    r = read_json(os.path.join(out, "report.json"))
    for src, name in zip(r["plot_sources"], r["plots"]):
        shutil.copyfile(os.path.join(out, src), os.path.join(out, name))
    overlay = r["overlay"]
    bench = load_benchmark(overlay["benchmark"], overlay["root"], overlay["sequences"])
    boxes = {s.name: np.loadtxt(os.path.join(overlay["results"], s.name, f"{s.name}_001.txt"), delimiter=",")
             for s in bench.sequences}
    overlay_gif(os.path.join(out, "overlay.gif"), bench.sequences, boxes)
    path = os.path.join(out, "REPORT.md")
    write_text(path, render_markdown(r))
    print(summary_text(r))
    return path


def overlay_gif(path: str, sequences: list, boxes: dict[str, np.ndarray], width: int = 320) -> None:
    """Animated GIF: ground truth (green) and the tracker (red) on each frame."""
    images = []
    for seq in sequences:
        pred = boxes[seq.name]
        for i, frame_path in enumerate(seq.frames):
            img = read_frame(frame_path)
            draw_box(img, seq.boxes[i], (0, 220, 0), 2)
            draw_box(img, pred[i], (255, 40, 40), 2)
            cv2.putText(img, f"{seq.name} #{i + 1}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            scale = width / img.shape[1]
            images.append(Image.fromarray(cv2.resize(img, None, fx=scale, fy=scale)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=150, loop=0, optimize=True)


def summary_text(r: dict[str, Any]) -> str:
    return (f"teacher AO {r['teacher_ao']:.3f} -> FD slim AO {r['slim_ao']:.3f} "
            f"({100 * r['retention']:.1f}% kept); identity {r['identity_ao']:.3f}, random init {r['random_ao']:.3f}\n"
            f"params {r['teacher_params']:,} -> {r['slim_params']:,} "
            f"({r['teacher_params'] / r['slim_params']:.1f}x), GFLOPs {r['teacher_gflops']:.3f} -> "
            f"{r['slim_gflops']:.3f} ({r['teacher_gflops'] / r['slim_gflops']:.1f}x), CPU FPS "
            f"{r['teacher_fps']:.0f} -> {r['slim_fps']:.0f}; pipeline {r['elapsed_s'] / 60:.1f} min")


def render_markdown(r: dict[str, Any]) -> str:
    names = r["names"]
    tw, sw = "/".join(map(str, r["teacher_widths"])), "/".join(map(str, r["slim_widths"]))
    L = [f"# {r['title']}", "",
         f"Run on {r['date']}, {r['cpu']} ({r['isa']}), {r['threads']} torch threads, PyTorch {r['torch']}.",
         f"Pipeline wall time {r['elapsed_s'] / 60:.1f} min (setup excluded).", "",
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
         "## Accuracy on the synthetic val split (fp32 evaluation)", "",
         "AO, SR0.5 and SR0.75 as got10k computes them; the standard error is a bootstrap over sequences.", "",
         "| tracker | AO | s.e. | SR0.5 | SR0.75 | OTB AUC | precision@20 |", "|---|---|---|---|---|---|---|"]
    for key in ("teacher", "slim", "random", "identity"):
        v = r["val"][key]
        L.append(f"| {names[key]} | {v['ao']:.3f} | {v['ao_se']:.3f} | {v['sr50']:.3f} | {v['sr75']:.3f} | "
                 f"{v['mean_auc']:.3f} | {v['mean_precision']:.3f} |")
    L += ["", " ".join(f"![{p}]({p})" for p in r["plots"]), ""]
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
          "## Compression log (the checkpoint chosen after each phase, scored on the selection split)", "",
          "| phase | chosen epoch | AUC | precision | SR | AO | time (s) |", "|---|---|---|---|---|---|---|"]
    for p in r["phases"]:
        ao = f"{p['ao']:.3f}" if p.get("ao") is not None else "-"
        L.append(f"| {p['name']} | {p['selected_epoch']} | {p['auc']:.3f} | {p['precision']:.3f} | "
                 f"{p['success_rate']:.3f} | {ao} | {p['seconds']:.0f} |")
    L += ["", "## Stage times (s)", "", "| " + " | ".join(r["stage_seconds"]) + " |",
          "|" + "---|" * len(r["stage_seconds"]),
          "| " + " | ".join(f"{v:.0f}" for v in r["stage_seconds"].values()) + " |", ""]
    return "\n".join(L)
