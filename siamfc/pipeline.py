"""The whole pipeline on the embedded synthetic data, stage by stage.

data -> crop -> teacher -> compress -> transform -> evaluate -> report

Each stage calls the same package functions as its tool in ``tools/`` and, when
it finishes, writes a marker ``OUT/stages/<stage>.json`` (with its wall time).
A re-run skips marked stages; the long ones (data, crop, teacher, compress,
evaluate) also resume inside a stage, so an interruption loses little work.
``redo_from`` removes the markers (and outputs) of a stage and all later ones.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .compression.driver import CompressConfig, Compressor
from .config import TrackerConfig, from_dict, load_yaml, to_dict
from .data.crop import crop_dataset
from .data.synthetic import SynthConfig, make_dataset
from .errors import InputError
from .evaluation import TrackerSpec, evaluate, report_together
from .io import read_json, write_json
from .training.trainer import TrainConfig, train_siamfc

STAGES = ("data", "crop", "teacher", "compress", "transform", "evaluate", "report")


@dataclass
class PipelineConfig:
    out: str = "runs/quickstart"
    select_seqs: int = 40            # the held-out split that compression selects on
    select_frames: int = 10
    eval_workers: int = 2
    shared: str = "../shared"        # optional: real footage and release weights
    overlay_sequence: int = 1        # val sequence drawn in the overlay GIF (1-based)
    fps_frames: int = 60             # frames timed for the CPU FPS column


@dataclass
class QuickstartConfig:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    data: SynthConfig = field(default_factory=SynthConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    track: TrackerConfig = field(default_factory=TrackerConfig)


def load_config(path: str) -> QuickstartConfig:
    return from_dict(QuickstartConfig, load_yaml(path), path)


class Pipeline:
    def __init__(self, cfg: QuickstartConfig) -> None:
        self.cfg = cfg
        out = cfg.pipeline.out
        self.paths = {
            "data": os.path.join(out, "data", "synthetic"),
            "select": os.path.join(out, "data", "select"),
            "crops": os.path.join(out, "data", "crops"),
            "teacher": os.path.join(out, "teacher"),
            "compress": os.path.join(out, "fd"),
            "slim": os.path.join(out, "fd", "slim.pth"),
            "eval": os.path.join(out, "eval"),
            "stages": os.path.join(out, "stages"),
        }
        self.cfg.compress.select.root = self.cfg.compress.select.root or self.paths["select"]

    # ------------------------------------------------------------- bookkeeping
    def marker(self, stage: str) -> str:
        return os.path.join(self.paths["stages"], f"{stage}.json")

    def done(self, stage: str) -> bool:
        return os.path.isfile(self.marker(stage))

    def redo_from(self, stage: str) -> None:
        if stage not in STAGES:
            raise InputError(f"unknown stage '{stage}'; stages are {', '.join(STAGES)}")
        outputs = {"data": ["data", "select"], "crop": ["crops"], "teacher": ["teacher"],
                   "compress": ["compress"], "transform": [], "evaluate": ["eval"], "report": []}
        for s in STAGES[STAGES.index(stage):]:
            if os.path.exists(self.marker(s)):
                os.remove(self.marker(s))
            for key in outputs[s]:
                shutil.rmtree(self.paths[key], ignore_errors=True)
        if STAGES.index(stage) <= STAGES.index("transform") and os.path.exists(self.paths["slim"]):
            os.remove(self.paths["slim"])

    def run(self, log: Callable[[str], None] = print) -> dict[str, Any]:
        for stage in STAGES:
            if self.done(stage):
                log(f"== {stage}: already complete, skipped")
                continue
            log(f"== {stage}")
            start = time.perf_counter()
            info = getattr(self, f"stage_{stage}")() or {}
            info["seconds"] = round(time.perf_counter() - start, 1)
            write_json(self.marker(stage), info)
            log(f"== {stage}: done in {info['seconds']:.0f} s")
        return read_json(os.path.join(self.cfg.pipeline.out, "report.json"))

    def stage_seconds(self) -> dict[str, float]:
        return {s: read_json(self.marker(s))["seconds"] for s in STAGES if self.done(s)}

    # ------------------------------------------------------------- stages
    def stage_data(self) -> dict[str, Any]:
        make_dataset(self.paths["data"], self.cfg.data)
        p = self.cfg.pipeline
        select = dataclasses.replace(self.cfg.data, train_seqs=0, val_seqs=p.select_seqs,
                                     val_frames=p.select_frames, seed=self.cfg.data.seed + 7919)
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
        return {"checkpoint": Compressor(self.cfg.compress, teacher, self.paths["crops"],
                                         self.paths["compress"]).run()}

    def stage_transform(self) -> dict[str, Any]:
        from .compression.transform import transform
        fd = os.path.join(self.paths["compress"], "fd_model.pth")
        result = transform(fd, self.paths["slim"], self.real_root())
        return {"fold_error": result["check"].worst, "rows": result["records"]}

    def trackers(self) -> dict[str, TrackerSpec]:
        track = to_dict(self.cfg.track)
        return {"teacher": TrackerSpec(os.path.join(self.paths["teacher"], "model.pth"), "SiamFC-teacher",
                                       "fp32", track),
                "slim": TrackerSpec(self.paths["slim"], "FDSiamFC-slim", "fp32", track),
                "random": TrackerSpec("random", "SiamFC-random-init", "fp32", track),
                "identity": TrackerSpec("identity", "IdentityTracker", "fp32", track)}

    def stage_evaluate(self) -> dict[str, Any]:
        out, workers = self.paths["eval"], self.cfg.pipeline.eval_workers
        results = {}
        for key, spec in self.trackers().items():
            results[key] = evaluate(spec, "got10k-val", self.paths["data"], os.path.join(out, "val"), workers,
                                    summary_file=f"summary_{key}.json")
        names = [self.trackers()[k].tracker_name for k in ("slim", "teacher", "random", "identity")]
        plots = report_together("got10k-val", self.paths["data"], os.path.join(out, "val"), names)
        real = {}
        if self.real_root() and self.release_weights():
            for name, path in self.release_weights().items():
                real[name] = evaluate(TrackerSpec(path, name), "folder", self.real_root(),
                                      os.path.join(out, "real"), workers, summary_file=f"summary_{name}.json")
        return {"val": {k: _brief(v) for k, v in results.items()}, "plots": plots,
                "real": {k: _brief(v) for k, v in real.items()}}

    def stage_report(self) -> dict[str, Any]:
        from .report import write_report
        return write_report(self)

    # ------------------------------------------------------------- shared material
    def real_root(self) -> str | None:
        path = os.path.join(self.cfg.pipeline.shared, "data", "real")
        return path if os.path.isdir(path) else None

    def release_weights(self) -> dict[str, str]:
        folder = os.path.join(self.cfg.pipeline.shared, "weights")
        names = ("FDSiamfc_30", "FDSiamfc_15")
        return {n: os.path.join(folder, f"{n}.pth") for n in names
                if os.path.isfile(os.path.join(folder, f"{n}.pth"))}


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("tracker", "mean_auc", "mean_precision", "mean_success_rate", "fps", "ao", "ao_se", "sr50", "sr75")
    return {k: summary[k] for k in keys if k in summary}
