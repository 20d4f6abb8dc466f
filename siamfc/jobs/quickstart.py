"""The main job on the embedded synthetic data, stage by stage.

data -> crop -> teacher -> compress -> transform -> evaluate -> report

Each stage calls the same package functions as its tool in ``tools/``. The
report stage gathers every figure into ``OUT/report.json`` and hands it to
:mod:`siamfc.report`, which only renders it.
"""
from __future__ import annotations

import csv
import datetime
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..compression.driver import Compressor
from ..compression.recipe import CompressConfig
from ..config import Config, ConfigError, TrackerConfig, from_dict, load_yaml, param, to_dict
from ..data.crop import crop_dataset
from ..data.synthetic import SynthConfig, make_dataset
from ..evaluation import evaluate, report_together
from ..evaluation.benchmarks import load_benchmark
from ..evaluation.breakdown import ao_by_motion
from ..evaluation.speed import tracker_fps
from ..files import read_json, write_json
from ..models.backbone import alexnet_layers
from ..models.checkpoint import load_checkpoint
from ..models.fd import FDPlan
from ..models.stats import count_params, gflops, state_dict_mb
from ..report import render_report
from ..stages import StagedJob
from ..system import cpu_name, isa_summary
from ..tracking.backends import EXACT
from ..tracking.factory import TrackerSpec
from ..training.trainer import TrainConfig, train_siamfc

STAGES = ("data", "crop", "teacher", "compress", "transform", "evaluate", "report")


@dataclass
class PipelineConfig(Config):
    out: str = "runs/quickstart"
    select_seqs: int = param(40, ge=1)         # the held-out split that compression selects on
    select_frames: int = param(10, ge=2)
    eval_workers: int = param(2, ge=1)
    # the val split's networks run on this path; fp32 numerics either way, so the gates keep their meaning
    eval_backend: str = param("fp32", choices=EXACT)
    shared: str = "../shared"                  # optional: real footage and release weights
    overlay_sequence: int = param(1, ge=1)     # first val sequence drawn in the overlay GIF (1-based)
    fps_frames: int = param(60, ge=1)          # frames timed for the CPU FPS column
    random_seeds: list[int] = param(factory=lambda: [0, 1, 2], ge=0)   # random-init baselines, one per seed
    real_weights: bool = True                  # also track the release weights on ../shared's real footage
    # a measured run of another recipe (its slim AO and compress seconds, and where they come from),
    # which the report sets this run's against
    previous_recipe: dict = param(factory=dict)


@dataclass
class QuickstartConfig(Config):
    job: str = param("quickstart", choices=("quickstart",))
    pipeline: PipelineConfig = param(factory=PipelineConfig)
    data: SynthConfig = param(factory=SynthConfig)
    train: TrainConfig = param(factory=TrainConfig)
    compress: CompressConfig = param(factory=CompressConfig)
    track: TrackerConfig = param(factory=TrackerConfig)


def load_config(path: str) -> QuickstartConfig:
    """Read and check every section of a pipeline config before any work starts."""
    return from_dict(QuickstartConfig, load_yaml(path), f"{path}:")


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> "Pipeline":
    cfg = from_dict(QuickstartConfig, data, f"{path}:")
    try:   # the teacher this job trains is the full AlexNet: its plan is known before any work
        FDPlan(alexnet_layers(), tuple(cfg.compress.rates), 0, cfg.compress.grouping)
    except ValueError as e:
        raise ConfigError(f"{path}:compress.rates", str(e)) from None
    if out:
        cfg.pipeline.out = out
    return Pipeline(cfg)


class Pipeline(StagedJob):
    STAGES = STAGES
    OUTPUTS = {"data": ("data/synthetic", "data/select"), "crop": ("data/crops",),
               "teacher": ("teacher",), "compress": ("fd", "data/select_crops"), "transform": ("fd/slim.pth",), "evaluate": ("eval",),
               "report": ("report.json", "REPORT.md")}

    def __init__(self, cfg: QuickstartConfig) -> None:
        super().__init__(cfg.pipeline.out)
        self.cfg = cfg
        out = cfg.pipeline.out
        self.paths = {
            "data": os.path.join(out, "data", "synthetic"),
            "select": os.path.join(out, "data", "select"),
            "crops": os.path.join(out, "data", "crops"),
            "select_crops": os.path.join(out, "data", "select_crops"),
            "teacher": os.path.join(out, "teacher"),
            "compress": os.path.join(out, "fd"),
            "slim": os.path.join(out, "fd", "slim.pth"),
            "eval": os.path.join(out, "eval"),
        }
        self.cfg.compress.select.root = self.cfg.compress.select.root or self.paths["select"]
        # held-out pairs for the per-step diagnosis: the selection split, cropped
        self.cfg.compress.diagnose.crops = self.cfg.compress.diagnose.crops or self.paths["select_crops"]

    def run(self, log=print, until: str | None = None) -> dict[str, Any]:  # type: ignore[override]
        """Every stage (or up to ``until``); returns the report's figures, empty before the report exists."""
        super().run(log, until)
        report = os.path.join(self.out, "report.json")
        return read_json(report) if os.path.isfile(report) else {}

    # ------------------------------------------------------------- stages
    def stage_data(self) -> dict[str, Any]:
        make_dataset(self.paths["data"], self.cfg.data)
        p = self.cfg.pipeline
        select = SynthConfig(**{**to_dict(self.cfg.data), "train_seqs": 0, "val_seqs": p.select_seqs,
                                "val_frames": p.select_frames, "seed": self.cfg.data.seed + 7919})
        make_dataset(self.paths["select"], select)
        return {"train_seqs": self.cfg.data.train_seqs, "val_seqs": self.cfg.data.val_seqs,
                "select_seqs": p.select_seqs}

    def stage_crop(self) -> dict[str, Any]:
        index = crop_dataset("got10k", self.paths["data"], self.paths["crops"], workers=self.cfg.data.workers)
        return {"sequences": len(index["sequences"]),
                "valid_frames": sum(s["valid"].count("1") for s in index["sequences"])}

    def stage_teacher(self) -> dict[str, Any]:
        path = train_siamfc(self.cfg.train, self.paths["crops"], self.paths["teacher"], resume=True)
        return {"checkpoint": path}

    def stage_compress(self) -> dict[str, Any]:
        teacher = os.path.join(self.paths["teacher"], "model.pth")
        # the diagnosis's held-out pairs (a second): here, so a run folder from before them resumes too
        crop_dataset("got10k", self.paths["select"], self.paths["select_crops"], workers=self.cfg.data.workers,
                     subset="val")
        return {"checkpoint": Compressor(self.cfg.compress, teacher, self.paths["crops"],
                                         self.paths["compress"]).run()}

    def stage_transform(self) -> dict[str, Any]:
        from ..compression.transform import transform
        fd = os.path.join(self.paths["compress"], "fd_model.pth")
        result = transform(fd, self.paths["slim"], self.real_root())
        return {"fold_error": result["check"].worst, "rows": result["records"]}

    def trackers(self) -> dict[str, TrackerSpec]:
        track = to_dict(self.cfg.track)
        teacher = os.path.join(self.paths["teacher"], "model.pth")
        backend = self.cfg.pipeline.eval_backend
        specs = {"teacher": TrackerSpec("siamfc", teacher, backend, track, "SiamFC-teacher"),
                 "slim": TrackerSpec("siamfc", self.paths["slim"], backend, track, "FDSiamFC-slim"),
                 "identity": TrackerSpec("identity", options=track, name="IdentityTracker")}
        for seed in self.cfg.pipeline.random_seeds:
            specs[random_key(seed)] = TrackerSpec("random", None, backend, track, f"SiamFC-random-seed{seed}",
                                                  seed)
        return specs

    def stage_evaluate(self) -> dict[str, Any]:
        out, workers = self.paths["eval"], self.cfg.pipeline.eval_workers
        specs = self.trackers()
        # each tracker scored without its own curves: report_together draws them all on one plot
        results = {key: evaluate(spec, "got10k-val", self.paths["data"], os.path.join(out, "val"), workers,
                                 summary_file=f"summary_{key}.json", plots=False) for key, spec in specs.items()}
        plots = report_together("got10k-val", self.paths["data"], os.path.join(out, "val"),
                                [s.tracker_name for s in specs.values()])
        motion = ao_by_motion(load_benchmark("got10k-val", self.paths["data"]).sequences, results)
        real = {}
        if self.cfg.pipeline.real_weights and self.real_root() and self.release_weights():
            for name, path in self.release_weights().items():
                real[name] = evaluate(TrackerSpec("siamfc", path, name=name), "folder", self.real_root(),
                                      os.path.join(out, "real"), workers, summary_file=f"summary_{name}.json",
                                      plots=False)
        return {"val": {k: _brief(v) for k, v in results.items()}, "plots": plots, "ao_by_motion": motion,
                "real": {k: _brief(v) for k, v in real.items()}}

    def stage_report(self) -> dict[str, Any]:
        report = self.gather()
        write_json(os.path.join(self.out, "report.json"), report)
        render_report(self.out)
        return {"elapsed_s": report["elapsed_s"]}

    # ------------------------------------------------------------- the report's figures
    def gather(self) -> dict[str, Any]:
        """Every figure of the run, as the JSON that :func:`render_report` draws."""
        start = time.perf_counter()
        evaluation = self.result("evaluate")
        val = evaluation["val"]
        specs = self.trackers()
        loaded = {k: load_checkpoint(specs[k].checkpoint) for k in ("teacher", "slim")}
        nets = {k: c.net.backbone for k, c in loaded.items()}
        trained = loaded["teacher"].meta
        sizes = {k: {"params": count_params(m), "mb": state_dict_mb(m), "gflops": gflops(m)} for k, m in nets.items()}
        bench = load_benchmark("got10k-val", self.paths["data"])
        fps = {k: tracker_fps(specs[k], bench.sequences, self.cfg.pipeline.fps_frames) for k in ("teacher", "slim")}
        first = self.cfg.pipeline.overlay_sequence - 1
        shown = [s.name for s in bench.sequences[first:first + 6]]
        phases = read_json(os.path.join(self.paths["compress"], "state.json"))["phases"]
        random = {str(seed): val[random_key(seed)]["ao"] for seed in self.cfg.pipeline.random_seeds}
        seconds = self.stage_seconds()
        seconds["report"] = round(time.perf_counter() - start, 1)
        return {
            "job": "quickstart", "title": "fdsiamfc quickstart report",
            "date": datetime.date.today().isoformat(), "cpu": cpu_name(), "isa": isa_summary(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "training_precision": {"precision": trained.get("precision", "unknown"),
                                   "reason": trained.get("precision_reason", "not recorded")},
            "precision": trained.get("precision", "unknown"),
            "layout": {"layout": "channels-last" if self.cfg.train.channels_last else "NCHW",
                       "reason": "train.channels_last: oneDNN runs NHWC convolutions without reordering"
                       if self.cfg.train.channels_last else "train.channels_last is off in the config"},
            "recipe": _recipe(self.cfg.compress),
            "against_previous_recipe": _against(self.cfg.pipeline.previous_recipe, val["slim"]["ao"],
                                                seconds.get("compress")),
            "names": {k: s.tracker_name for k, s in specs.items()},
            "track": _changed(to_dict(self.cfg.track), to_dict(TrackerConfig())),   # what differs from SiamFC's
            "teacher_ao": val["teacher"]["ao"], "slim_ao": val["slim"]["ao"],
            "identity_ao": val["identity"]["ao"], "random_ao": float(np.mean(list(random.values()))),
            "random_ao_seeds": random,
            "ao_se": {k: v["ao_se"] for k, v in val.items()},
            "retention": val["slim"]["ao"] / val["teacher"]["ao"],
            "gates": quickstart_gates(val, random),
            "ao_by_motion": evaluation.get("ao_by_motion"),   # absent from runs evaluated before it existed
            "teacher_params": sizes["teacher"]["params"], "slim_params": sizes["slim"]["params"],
            "teacher_gflops": sizes["teacher"]["gflops"], "slim_gflops": sizes["slim"]["gflops"],
            "teacher_mb": sizes["teacher"]["mb"], "slim_mb": sizes["slim"]["mb"],
            "teacher_fps": fps["teacher"], "slim_fps": fps["slim"],
            "teacher_widths": list(nets["teacher"].widths), "slim_widths": list(nets["slim"].widths),
            "val": val, "real": evaluation["real"], "reference": self.reference_scores(evaluation["real"]),
            "phases": [{**{k: p[k] for k in ("name", "selected_epoch", "auc", "precision", "success_rate", "ao",
                                             "seconds")}, "diagnosis": p.get("diagnosis")} for p in phases],
            "stage_seconds": seconds,
            "inside_seconds": self.inside_seconds(phases, evaluation),
            "elapsed_s": round(sum(seconds.values()), 1),
            "plots": [os.path.basename(p) for p in evaluation["plots"]],
            "plot_sources": [os.path.relpath(p, self.out) for p in evaluation["plots"]],
            "overlay": {"benchmark": "got10k-val", "root": os.path.abspath(self.paths["data"]), "layout": "got10k",
                        "results": os.path.abspath(os.path.join(self.paths["eval"], "val", "results", "GOT-10k",
                                                                specs["slim"].tracker_name)),
                        "sequences": shown},
        }

    def inside_seconds(self, phases: list[dict[str, Any]], evaluation: dict[str, Any]) -> dict[str, Any]:
        """Where the teacher, compression and evaluation stages spend their time."""
        with open(os.path.join(self.paths["teacher"], "train_log.csv")) as f:
            epochs = list(csv.DictReader(f))
        train = sum(float(e["seconds"]) for e in epochs)
        load = sum(float(e["load_seconds"]) for e in epochs if e.get("load_seconds") not in (None, "nan"))
        teacher = {"train": round(train - load, 1), "data loading": round(load, 1)}
        compress = {"train": 0.0, "data loading": 0.0, "selection": 0.0}
        for p in phases:
            compress["train"] += p.get("train_seconds", 0.0) - p.get("load_seconds", 0.0)
            compress["data loading"] += p.get("load_seconds", 0.0)
            compress["selection"] += p.get("select_seconds", 0.0)
        compress["fits and transitions"] = sum(p["seconds"] for p in phases) - sum(compress.values())
        evaluate = {k: v["seconds"]["track"] for k, v in evaluation["val"].items() if "seconds" in v}
        evaluate.update({f"real {k}": v["seconds"]["track"] for k, v in evaluation["real"].items() if "seconds" in v})
        return {"teacher": teacher, "compress": {k: round(v, 1) for k, v in compress.items()},
                "evaluate (tracking)": evaluate}

    # ------------------------------------------------------------- shared material
    def real_root(self) -> str | None:
        path = os.path.join(self.cfg.pipeline.shared, "data", "real")
        return path if os.path.isdir(path) else None

    def release_weights(self) -> dict[str, str]:
        folder = os.path.join(self.cfg.pipeline.shared, "weights")
        names = ("FDSiamfc_30", "FDSiamfc_15")
        return {n: os.path.join(folder, f"{n}.pth") for n in names
                if os.path.isfile(os.path.join(folder, f"{n}.pth"))}

    def reference_scores(self, names: dict[str, Any]) -> dict[str, dict[str, float]]:
        """The public implementation's mean AUC and precision for each release weight shown."""
        import numpy as np

        out = {}
        for name in names:
            path = os.path.join(self.cfg.pipeline.shared, "data", "reference_boxes", name, "scores.json")
            if os.path.isfile(path):
                scores = read_json(path)
                out[name] = {"auc": float(np.mean([v["auc"] for v in scores.values()])),
                             "precision": float(np.mean([v["prec"] for v in scores.values()]))}
        return out


def random_key(seed: int) -> str:
    return f"random-seed{seed}"


def quickstart_gates(val: dict[str, Any], random: dict[str, float]) -> list[dict[str, Any]]:
    """The figures the quickstart must show to mean something, each with its bar."""
    teacher = val["teacher"]["ao"]
    gates = [{"gate": "teacher AO >= 2x identity", "value": teacher / val["identity"]["ao"], "bar": 2.0},
             {"gate": "slim AO >= 90% of teacher", "value": val["slim"]["ao"] / teacher, "bar": 0.9}]
    gates += [{"gate": f"teacher AO >= 1.5x random init seed {seed}", "value": teacher / ao, "bar": 1.5}
              for seed, ao in random.items()]
    gates += [{"gate": f"AO s.e. of {key} <= 0.015", "value": v["ao_se"], "bar": 0.015, "at_most": True}
              for key, v in val.items()]
    for g in gates:
        g["passed"] = bool(g["value"] <= g["bar"] if g.get("at_most") else g["value"] >= g["bar"])
    return gates


def _recipe(c: Any) -> dict[str, Any]:
    """The compression recipe in a line of keys: what a report must say to be compared with another."""
    return {"transition": c.transition, "targets": c.targets, "squeeze": c.squeeze, "grouping": c.grouping,
            "loss": to_dict(c.loss), "data": c.data, "candidates": c.candidates,
            "init_candidate": c.init_candidate, "step_epochs": c.step.epochs, "finetune_epochs": c.finetune.epochs}


def _against(previous: dict[str, Any], slim_ao: float, compress_s: float | None) -> dict[str, Any]:
    """This run's slim AO and compression time beside a previous recipe's measured ones (empty if none given)."""
    if not previous:
        return {}
    out = {"previous": previous, "slim_ao": slim_ao, "compress_s": compress_s}
    if "slim_ao" in previous:
        out["slim_ao_change"] = round(slim_ao - previous["slim_ao"], 4)
    if "compress_s" in previous and compress_s:
        out["compress_speedup"] = round(previous["compress_s"] / compress_s, 2)
    return out


def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v != defaults[k]}


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("tracker", "backend", "backend_why", "mean_auc", "mean_precision", "mean_success_rate", "fps", "ao",
            "ao_se", "sr50", "sr75", "seconds")
    return {k: summary[k] for k in keys if k in summary}
