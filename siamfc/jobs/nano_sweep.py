"""The NanoTrack v2 sweep: closed-form FD cuts at several keep-ratios, each run inside ``cv2.TrackerNano``.

For every rate the teacher (SiamTrackers' weights) is cut and refit on calibration pairs
(``compression.nano_fit``), exported to ``OUT/rate_X/backbone.onnx`` + ``head.onnx`` and tracked as
the ``nanotrack:OUT/rate_X`` tracker; the original pair (``nanotrack``) and VitTrack (``vittrack``) run
on the same frames with the same threads. AUC and precision come from the got10k toolkit's scoring
(``OUT/eval/NAME``); the frame rates from one side-by-side timing pass
(``evaluation.interleaved``). Writes ``OUT/sweep.json``, ``OUT/sweep.md`` and ``OUT/sweep.png``.

A cut is kept when ``OUT/rate_X/cut.json`` records the same settings, and finished sequences are not
tracked again, so a stopped sweep resumes. The calibration sequences must not be the scored ones.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..compression.nano_calibration import tracking_pairs
from ..compression.nano_fit import distill_nano
from ..compression.nano_widths import PARTS, update_macs
from ..deploy.nano_onnx import export_nano
from ..errors import InputError
from ..evaluation import evaluate
from ..evaluation.benchmarks import load_benchmark, sequence_set
from ..evaluation.interleaved import interleaved_fps, paired_speedup
from ..evaluation.summary import paired_difference
from ..files import read_json, write_json, write_text
from ..models.model_io import load_model
from ..shared import shared_path
from ..system import cpu_name, isa_summary
from ..tracking.factory import TrackerSpec
from ..tracking.ops import torch_threads
from ..tracking.peers import PEERS, onnx_parameters, peer_files
from .nano_sweep_report import render_markdown, render_plot

EXTRA_REAL = shared_path("data", "extra_real", "videos")
CALIBRATION = (f"folder:{EXTRA_REAL}:train", f"got10k-train:{shared_path('data', 'train_real')}")


@dataclass
class Sweep:
    out: str = "runs/nanotrack_sweep"
    rates: tuple[float, ...] = (1.0, 0.75, 0.5, 0.35)
    config: str = "configs/nanotrack/NanoTrackV2.yaml"
    weights: str = shared_path("peers", "nanotrackv2", "nanotrackv2.pth")
    benchmark: str = "folder"
    root: str = EXTRA_REAL
    split: str = "val"                 # a list in ROOT/splits.json, or "all"
    sequences: tuple[str, ...] = ()    # these instead of the split
    calibration: tuple[str, ...] = CALIBRATION   # BENCHMARK:ROOT[:SPLIT]
    pairs: int = 256
    seed: int = 0
    select: str = "greedy"
    parts: tuple[str, ...] = PARTS
    ridge: float = 1e-3
    threads: int = 2
    speed_rounds: int = 2
    peers: tuple[str, ...] = ("nanotrack", "vittrack")
    extra: tuple[str, ...] = ()        # folders of NanoTrack ONNX pairs made elsewhere (the nanotrack job's OUT)

    def fit_settings(self) -> dict[str, Any]:
        """What a cut depends on besides its rate (a cut made with other settings is made again)."""
        keys = ("config", "weights", "calibration", "pairs", "seed", "select", "parts", "ridge")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k in keys}


def scored_names(s: Sweep) -> list[str] | None:
    """The sequences to score (None: all under the root)."""
    if s.sequences:
        return list(s.sequences)
    if s.split == "all":
        return None
    path = os.path.join(s.root, "splits.json")
    try:
        return list(read_json(path)[s.split])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: no sequence list '{s.split}' ({type(e).__name__}); "
                         f"name one, or --split all for every sequence") from None


def _calibration_sets(s: Sweep, scored: set[str] | None) -> list[tuple[str, str, list[str] | None]]:
    """``(benchmark, root, names)`` of each calibration set; one holding a scored sequence (``scored`` None:
    all under the sweep's root) is an error."""
    sets = []
    for text in s.calibration:
        bench, root, names = sequence_set(text)
        same_root = os.path.abspath(root) == os.path.abspath(s.root)
        if same_root and (names is None or scored is None or scored & set(names)):
            raise InputError(f"{text}: calibrating on the sequences the sweep scores")
        sets.append((bench, root, names))
    return sets


def _calibration(s: Sweep, scored: set[str] | None, exemplar_sz: int, instance_sz: int) -> tuple[np.ndarray, np.ndarray]:
    sequences = [q for bench, root, names in _calibration_sets(s, scored)
                 for q in load_benchmark(bench, root, names).sequences]
    print(f"calibration: {s.pairs} pairs from {len(sequences)} sequences")
    return tracking_pairs(sequences, s.pairs, exemplar_sz, instance_sz, seed=s.seed)


def rate_name(rate: float) -> str:
    return f"NanoTrackV2-FD{rate:.2f}"


def _cut(s: Sweep, rate: float, teacher: Any, crops: Any, folder: str) -> dict[str, Any]:
    """Cut, export and describe one rate, unless ``folder`` already holds this cut."""
    record = os.path.join(folder, "cut.json")
    if os.path.isfile(record) and read_json(record).get("settings") == s.fit_settings() \
            and all(os.path.isfile(os.path.join(folder, f)) for f in PEERS["nanotrack"].exported):
        return read_json(record)
    shutil.rmtree(os.path.join(s.out, "eval", rate_name(rate)), ignore_errors=True)   # tracked by another cut
    z, x = crops()
    with torch_threads(s.threads):
        student, fits, _ = distill_nano(teacher, rate, z, x, tuple(s.parts), s.select, s.ridge)
    done = export_nano(student, folder)
    cut = {"rate": rate, "settings": s.fit_settings(), "export_worst": done.worst, "macs": update_macs(student),
           "widths": [asdict(f) for f in fits]}
    write_json(record, cut)
    return cut


def _extra_row(s: Sweep, folder: str) -> tuple[str, dict[str, Any]]:
    """The row of a pair the nanotrack job wrote (its rate and MACs from ``FOLDER/report.json``); its earlier
    tracks are dropped when the pair's files changed since."""
    files = peer_files("nanotrack", folder)
    report = os.path.join(folder, "report.json")
    if not os.path.isfile(report):
        raise InputError(f"{report}: not found; --extra takes the folder a finished nanotrack job wrote")
    r = read_json(report)
    if not isinstance(r.get("rate"), (int, float)) or "macs" not in r.get("export", {}):
        raise InputError(f"{report}: no keep-ratio and export figures; --extra takes the folder a finished "
                         f"nanotrack or nanotrack_select job wrote")
    name = f"{os.path.basename(os.path.normpath(folder))}-FD{r['rate']:.2f}-distilled"
    stamp = {"source": os.path.abspath(folder), "files": [[f, os.path.getsize(f), os.path.getmtime(f)] for f in files]}
    record = os.path.join(s.out, "eval", name, "source.json")
    if not os.path.isfile(record) or read_json(record) != stamp:
        shutil.rmtree(os.path.dirname(record), ignore_errors=True)
        write_json(record, stamp)
    return name, {"kind": "nanotrack-distilled", "rate": r["rate"], "macs": r["export"]["macs"],
                  "files": list(files), "export_worst": r["export"]["export_worst"], "source": stamp["source"]}


def _score(s: Sweep, spec: TrackerSpec, names: list[str] | None) -> dict[str, Any]:
    out = os.path.join(s.out, "eval", spec.tracker_name)
    return evaluate(spec, s.benchmark, s.root, out, workers=1, only=names, threads=s.threads, plots=False)


def run_sweep(s: Sweep) -> dict[str, Any]:
    """Cut, export, track and time every rate and peer; write ``OUT/sweep.{json,md,png}``; returns the JSON."""
    if not s.rates or not all(0 < r <= 1 for r in s.rates):
        raise InputError(f"rates must be in (0, 1], got {list(s.rates)}")
    names = scored_names(s)
    scored = set(names) if names is not None else None
    _calibration_sets(s, scored)   # an overlap with the scored sequences fails before any work
    bench = load_benchmark(s.benchmark, s.root, names)
    if not bench.sequences:
        raise InputError(f"{s.root}: none of the sequences to score could be read")
    teacher = load_model(s.weights, s.config).model.eval()
    cache: dict[str, Any] = {}

    def crops() -> tuple[np.ndarray, np.ndarray]:   # cut only when a rate needs fitting
        if "crops" not in cache:
            cache["crops"] = _calibration(s, scored, teacher.cfg.exemplar_sz, teacher.cfg.instance_sz)
        return cache["crops"]

    specs: dict[str, TrackerSpec] = {}
    rows: dict[str, dict[str, Any]] = {}
    for kind in s.peers:
        spec = TrackerSpec.parse(kind)
        files = peer_files(kind, None)
        specs[spec.tracker_name] = spec
        rows[spec.tracker_name] = {"kind": kind, "rate": None, "files": list(files),
                                   "macs": update_macs(teacher) if kind == "nanotrack" else None}
    for folder in s.extra:
        name, row = _extra_row(s, folder)
        if name in specs:
            raise InputError(f"{folder}: a second --extra named {name}; give the job folders different names")
        specs[name] = TrackerSpec.parse(f"nanotrack:{folder}", name=name)
        rows[name] = row
    for rate in s.rates:
        folder = os.path.join(s.out, f"rate_{rate:.2f}")
        cut = _cut(s, rate, teacher, crops, folder)
        specs[rate_name(rate)] = TrackerSpec.parse(f"nanotrack:{folder}", name=rate_name(rate))
        rows[rate_name(rate)] = {"kind": "nanotrack-fd", "rate": rate, "macs": cut["macs"],
                                 "files": list(peer_files("nanotrack", folder)), "widths": cut["widths"],
                                 "export_worst": cut["export_worst"]}
    per_seq = {}
    for name, spec in specs.items():
        summary = _score(s, spec, names)
        per_seq[name] = {q: v["auc"] for q, v in summary["sequences"].items()}
        rows[name].update(auc=summary["mean_auc"], precision=summary["mean_precision"], eval_fps=summary["fps"],
                          params=onnx_parameters(tuple(rows[name]["files"])),
                          mb=sum(os.path.getsize(f) for f in rows[name]["files"]) / 1e6)
    timing = interleaved_fps(specs, bench.sequences, s.threads, s.speed_rounds)
    base = next((n for n, r in rows.items() if r["kind"] == "nanotrack"), None)
    for name, row in rows.items():
        row["fps"] = timing.fps[name]
        if base is not None:
            row["speedup"], row["speedup_q1"], row["speedup_q3"] = paired_speedup(timing, name, base)
            row["auc_diff"], row["auc_diff_se"] = paired_difference(per_seq[name], per_seq[base])
    sweep = {"cpu": cpu_name(), "isa": isa_summary(), "threads": s.threads, "benchmark": s.benchmark,
             "root": os.path.abspath(s.root), "sequences": sorted(q.name for q in bench.sequences),
             "frames": sum(len(q) for q in bench.sequences), "settings": {**asdict(s), "baseline": base},
             "rows": rows}
    write_json(os.path.join(s.out, "sweep.json"), sweep)
    write_text(os.path.join(s.out, "sweep.md"), render_markdown(sweep))
    render_plot(sweep, os.path.join(s.out, "sweep.png"))
    return sweep
