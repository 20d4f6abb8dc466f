"""REPORT.md and report.json for a pipeline run: what was achieved, in tables and pictures."""
from __future__ import annotations

import datetime
import os
import shutil
import statistics
import time
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from PIL import Image

from .data.sequences import read_frame
from .evaluation.benchmarks import load_benchmark
from .io import read_json, write_json, write_text
from .models.checkpoint import load_checkpoint
from .models.stats import count_params, gflops, state_dict_mb
from .system import cpu_name
from .tracking.tracker import SiamFCTracker
from .tracking.video import draw_box

if TYPE_CHECKING:
    from .pipeline import Pipeline


def tracker_fps(checkpoint: str, sequences: list, max_frames: int, backend: str = "fp32") -> float:
    """End-to-end ``update`` rate (frames/s, median) over the first ``max_frames``
    frames of ``sequences``, after one warm-up sequence."""
    tracker = SiamFCTracker.from_checkpoint(checkpoint, backend=backend)
    times: list[float] = []
    for n, seq in enumerate([sequences[0]] + list(sequences)):
        frames = [read_frame(p) for p in seq.frames]
        tracker.init(frames[0], seq.boxes[0])
        for f in frames[1:]:
            start = time.perf_counter()
            tracker.update(f)
            if n > 0:
                times.append(time.perf_counter() - start)
        if len(times) >= max_frames:
            break
    return 1.0 / statistics.median(times)


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


def reference_scores(shared: str, name: str) -> dict[str, float] | None:
    path = os.path.join(shared, "data", "reference_boxes", name, "scores.json")
    if not os.path.isfile(path):
        return None
    scores = read_json(path)
    return {"auc": float(np.mean([v["auc"] for v in scores.values()])),
            "precision": float(np.mean([v["prec"] for v in scores.values()]))}


def write_report(pipe: "Pipeline") -> dict[str, Any]:
    start = time.perf_counter()
    cfg, paths, out = pipe.cfg, pipe.paths, pipe.cfg.pipeline.out
    evaluation = read_json(pipe.marker("evaluate"))
    val = evaluation["val"]
    specs = pipe.trackers()
    teacher_ckpt, slim_ckpt = specs["teacher"].checkpoint, specs["slim"].checkpoint
    teacher, slim = load_checkpoint(teacher_ckpt).net.backbone, load_checkpoint(slim_ckpt).net.backbone

    bench = load_benchmark("got10k-val", paths["data"])
    first = cfg.pipeline.overlay_sequence - 1
    shown = bench.sequences[first:first + 6]
    result_dir = os.path.join(paths["eval"], "val", "results", "GOT-10k", specs["slim"].tracker_name)
    boxes = {s.name: np.loadtxt(os.path.join(result_dir, s.name, f"{s.name}_001.txt"), delimiter=",")
             for s in shown}
    overlay_gif(os.path.join(out, "overlay.gif"), shown, boxes)

    fps = {k: tracker_fps(c, bench.sequences, cfg.pipeline.fps_frames)
           for k, c in (("teacher", teacher_ckpt), ("slim", slim_ckpt))}

    plots = []
    for p in evaluation["plots"]:
        dst = os.path.join(out, os.path.basename(p))
        shutil.copyfile(p, dst)
        plots.append(os.path.basename(dst))

    rows = {"teacher": teacher, "slim": slim}
    sizes = {k: {"params": count_params(m), "mb": state_dict_mb(m), "gflops": gflops(m)} for k, m in rows.items()}
    phases = read_json(os.path.join(paths["compress"], "state.json"))["phases"]
    seconds = pipe.stage_seconds()
    seconds["report"] = round(time.perf_counter() - start, 1)
    report = {
        "date": datetime.date.today().isoformat(), "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "teacher_ao": val["teacher"]["ao"], "slim_ao": val["slim"]["ao"],
        "identity_ao": val["identity"]["ao"], "random_ao": val["random"]["ao"],
        "ao_se": {k: v["ao_se"] for k, v in val.items()},
        "retention": val["slim"]["ao"] / val["teacher"]["ao"],
        "teacher_params": sizes["teacher"]["params"], "slim_params": sizes["slim"]["params"],
        "teacher_gflops": sizes["teacher"]["gflops"], "slim_gflops": sizes["slim"]["gflops"],
        "teacher_mb": sizes["teacher"]["mb"], "slim_mb": sizes["slim"]["mb"],
        "teacher_fps": fps["teacher"], "slim_fps": fps["slim"],
        "slim_widths": list(slim.widths), "val": val, "real": evaluation["real"],
        "phases": [{k: p[k] for k in ("name", "selected_epoch", "auc", "precision", "success_rate", "ao", "seconds")}
                   for p in phases],
        "stage_seconds": seconds,
        "elapsed_s": round(sum(seconds.values()), 1),
        "plots": plots, "overlay": "overlay.gif",
    }
    write_text(os.path.join(out, "REPORT.md"), render_markdown(report, pipe))
    write_json(os.path.join(out, "report.json"), report)
    print(summary_text(report))
    return {"elapsed_s": report["elapsed_s"]}


def summary_text(r: dict[str, Any]) -> str:
    return (f"teacher AO {r['teacher_ao']:.3f} -> FD slim AO {r['slim_ao']:.3f} "
            f"({100 * r['retention']:.1f}% kept); identity {r['identity_ao']:.3f}, random init {r['random_ao']:.3f}\n"
            f"params {r['teacher_params']:,} -> {r['slim_params']:,} "
            f"({r['teacher_params'] / r['slim_params']:.1f}x), GFLOPs {r['teacher_gflops']:.3f} -> "
            f"{r['slim_gflops']:.3f} ({r['teacher_gflops'] / r['slim_gflops']:.1f}x), CPU FPS "
            f"{r['teacher_fps']:.0f} -> {r['slim_fps']:.0f}; pipeline {r['elapsed_s'] / 60:.1f} min")


def render_markdown(r: dict[str, Any], pipe: "Pipeline") -> str:
    names = {k: s.tracker_name for k, s in pipe.trackers().items()}
    L = ["# fdsiamfc quickstart report", "",
         f"Run on {r['date']}, {r['cpu']}, {r['threads']} torch threads, PyTorch {r['torch']}.",
         f"Pipeline wall time {r['elapsed_s'] / 60:.1f} min (setup excluded).", "",
         f"**{summary_text(r).splitlines()[0]}**", "",
         "## Compression", "",
         "| model | widths | params | MB | GFLOPs (255x255) | CPU FPS (fp32, end to end) |",
         "|---|---|---|---|---|---|",
         f"| SiamFC teacher | 96/256/384/384/256 | {r['teacher_params']:,} | {r['teacher_mb']:.2f} | "
         f"{r['teacher_gflops']:.3f} | {r['teacher_fps']:.1f} |",
         f"| FD slim ({'/'.join(map(str, r['slim_widths']))}) | {'/'.join(map(str, r['slim_widths']))} | "
         f"{r['slim_params']:,} | {r['slim_mb']:.2f} | {r['slim_gflops']:.3f} | {r['slim_fps']:.1f} |",
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
            ref = reference_scores(pipe.cfg.pipeline.shared, name) or {"auc": float("nan"), "precision": float("nan")}
            L.append(f"| {name} | {v['mean_auc']:.3f} | {v['mean_precision']:.3f} | {ref['auc']:.3f} | "
                     f"{ref['precision']:.3f} |")
        L.append("")
    L += ["## Tracking overlay", "", "Ground truth in green, the FD slim tracker in red, on validation sequences.", "",
          f"![overlay]({r['overlay']})", "",
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
