"""FD on a trained config-built model whose backbone is a plain chain (SiamVGG).

The model becomes our chain checkpoint (:mod:`siamfc.models.as_chain`: input
normalisation folded into conv1, the score BN's gain as ``out_scale``), and from there
it is the quickstart's road: the FD steps and fine-tunes of :class:`Compressor`, each
phase selected on a held-out synthetic split, the fold and its check, then teacher
and slim tracked by the SiamFC tracker on the val split of the model's own data.

teacher -> select -> compress -> transform -> evaluate -> report
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..compression.driver import Compressor
from ..compression.recipe import CompressConfig
from ..compression.transform import transform
from ..config import Config, ConfigError, TrackerConfig, from_dict, param, to_dict
from ..data.synthetic import SynthConfig, make_dataset
from ..errors import InputError
from ..evaluation import evaluate
from ..files import write_json, write_text
from ..models.as_chain import save_as_chain
from ..models.checkpoint import load_checkpoint
from ..models.model_io import load_model
from ..models.stats import count_params, gflops
from ..stages import StagedJob
from ..system import cpu_name, isa_summary
from ..tracking.factory import TrackerSpec


@dataclass
class FDModelJobConfig(Config):
    out: str = "runs/fd_model"
    model: str = ""           # our config-model checkpoint (or a SiameseX state dict, with `config`)
    config: str = ""          # the model's YAML, needed for a SiameseX state dict only
    data: str = ""            # GOT-10k-layout root whose val split teacher and slim are tracked on
    crops: str = ""           # cropped training data (index.json) that the fits read
    eval_workers: int = param(2, ge=1)


@dataclass
class FDModelConfig(Config):
    job: str = param("fd_model", choices=("fd_model",))
    fd_model: FDModelJobConfig = param(factory=FDModelJobConfig)
    selection: SynthConfig = param(factory=lambda: SynthConfig(train_seqs=0, val_seqs=12, val_frames=6,
                                                               seed=7919))
    compress: CompressConfig = param(factory=CompressConfig)
    track: TrackerConfig = param(factory=TrackerConfig)


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> "FDModelJob":
    cfg = from_dict(FDModelConfig, data, f"{path}:")
    for key in ("model", "data", "crops"):
        if not getattr(cfg.fd_model, key):
            raise ConfigError(f"{path}:fd_model.{key}", "is empty")
    if cfg.selection.train_seqs:
        raise ConfigError(f"{path}:selection.train_seqs", "the selection split is val sequences only: set it to 0")
    if out:
        cfg.fd_model.out = out
    return FDModelJob(cfg)


class FDModelJob(StagedJob):
    STAGES = ("teacher", "select", "compress", "transform", "evaluate", "report")
    OUTPUTS = {"teacher": ("teacher.pth",), "select": ("select",), "compress": ("fd",),
               "transform": ("slim.pth",), "evaluate": ("eval",), "report": ("report.json", "REPORT.md")}

    def __init__(self, cfg: FDModelConfig) -> None:
        super().__init__(cfg.fd_model.out)
        self.cfg = cfg
        self.paths = {k: os.path.join(self.out, v) for k, v in
                      (("teacher", "teacher.pth"), ("select", "select"), ("fd", "fd"), ("slim", "slim.pth"),
                       ("eval", "eval"))}
        self.cfg.compress.select.root = self.cfg.compress.select.root or self.paths["select"]

    def stage_teacher(self) -> dict[str, Any]:
        j = self.cfg.fd_model
        if not os.path.isfile(j.model):
            raise InputError(f"{j.model}: model checkpoint not found (fd_model.model)")
        model = load_model(j.model, j.config or None).model
        os.makedirs(self.out, exist_ok=True)
        converted = save_as_chain(model, self.paths["teacher"], source=os.path.abspath(j.model))
        return {"model": model.cfg.name, "out_scale": converted.net.head.out_scale,
                "dropped_score_shift": converted.shift, "widths": list(converted.net.backbone.widths)}

    def stage_select(self) -> dict[str, Any]:
        make_dataset(self.paths["select"], self.cfg.selection)
        return {"val_seqs": self.cfg.selection.val_seqs, "val_frames": self.cfg.selection.val_frames}

    def stage_compress(self) -> dict[str, Any]:
        return {"checkpoint": Compressor(self.cfg.compress, self.paths["teacher"], self.cfg.fd_model.crops,
                                         self.paths["fd"]).run()}

    def stage_transform(self) -> dict[str, Any]:
        result = transform(os.path.join(self.paths["fd"], "fd_model.pth"), self.paths["slim"])
        return {"fold_error": result["check"].worst, "rows": result["records"]}

    def trackers(self) -> dict[str, TrackerSpec]:
        track, name = to_dict(self.cfg.track), self.result("teacher")["model"]
        return {"teacher": TrackerSpec("siamfc", self.paths["teacher"], options=track, name=f"{name}-chain"),
                "slim": TrackerSpec("siamfc", self.paths["slim"], options=track, name=f"FD{name}-slim")}

    def stage_evaluate(self) -> dict[str, Any]:
        out = {}
        for key, spec in self.trackers().items():
            s = evaluate(spec, "got10k-val", self.cfg.fd_model.data, self.paths["eval"], self.cfg.fd_model.eval_workers,
                         summary_file=f"summary_{key}.json")
            out[key] = {k: s[k] for k in ("tracker", "ao", "ao_se", "sr50", "mean_auc", "fps", "seconds") if k in s}
        return out

    def stage_report(self) -> dict[str, Any]:
        evaluated, teacher = self.result("evaluate"), self.result("teacher")
        rows = []
        for key, spec in self.trackers().items():
            backbone = load_checkpoint(spec.checkpoint).net.backbone
            e = evaluated[key]
            rows.append({"network": spec.tracker_name, "widths": list(backbone.widths),
                         "params": count_params(backbone), "gflops": gflops(backbone),
                         "ao": e["ao"], "ao_se": e["ao_se"], "track_s": e.get("seconds", {}).get("track")})
        report = {"cpu": cpu_name(), "isa": isa_summary(), "model": teacher["model"],
                  "out_scale": teacher["out_scale"], "dropped_score_shift": teacher["dropped_score_shift"],
                  "rates": list(self.cfg.compress.rates), "fold_error": self.result("transform")["fold_error"],
                  "rows": rows, "stage_seconds": self.stage_seconds()}
        write_json(os.path.join(self.out, "report.json"), report)
        write_text(os.path.join(self.out, "REPORT.md"), render(report))
        return {"rows": len(rows)}


def render(r: dict[str, Any]) -> str:
    t, s = r["rows"]
    lines = [f"# FD on {r['model']} at rates {r['rates']}", "",
             f"{r['cpu']} ({r['isa']}). Teacher: {r['model']} as a chain (score gain {r['out_scale']:.4g}, "
             f"dropped shift {r['dropped_score_shift']:.3g}); fold check: worst relative difference "
             f"{r['fold_error']:.1e}.", "",
             "| network | widths | params | GFLOPs (255 px) | AO | s.e. |", "|---|---|---|---|---|---|"]
    for row in (t, s):
        lines.append(f"| {row['network']} | {'/'.join(map(str, row['widths']))} | {row['params']:,} | "
                     f"{row['gflops']:.2f} | {row['ao']:.3f} | {row['ao_se']:.3f} |")
    lines += ["", f"slim / teacher: params {s['params'] / t['params']:.3f}, GFLOPs {s['gflops'] / t['gflops']:.3f}, "
                  f"AO {s['ao'] / t['ao']:.3f}"]
    return "\n".join(lines) + "\n"
