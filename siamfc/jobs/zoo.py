"""The model zoo on the embedded synthetic data: every listed model trained within the same CPU
budget, then tracked on the val split beside IdentityTracker.

data -> crop -> train -> evaluate -> report

A model's budget is seconds of training on this machine: its training step is timed
first (the precision ``auto`` picks included), and the pairs per epoch follow from that,
so a heavy model sees fewer pairs in the same time. The report says what each got.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import Config, from_dict, load_yaml, param, to_dict
from ..data.crop import crop_dataset
from ..data.synthetic import SynthConfig, make_dataset
from ..evaluation import evaluate
from ..evaluation.benchmarks import load_benchmark
from ..evaluation.speed import tracker_fps
from ..files import read_json, write_json, write_text
from ..models.info import model_info
from ..models.siamese import build_model, model_config
from ..stages import StagedJob
from ..system import cpu_name, isa_summary
from ..tracking.factory import TrackerSpec
from ..training.model_trainer import ModelTrainConfig, train_model
from ..training.precision import choose_precision, time_step

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "siamesex")


@dataclass
class ZooJobConfig(Config):
    out: str = "runs/zoo"
    models: list[str] = param(factory=lambda: ["SiamFC", "SiamVGG", "SiamFCRes22", "SiamRPN"])
    configs: str = CONFIGS                     # where <model>.yaml lives
    budget_s: float = param(300, gt=0)         # training seconds per model on this machine
    epochs: int = param(5, ge=1)
    batch_size: int = param(8, ge=1)
    eval_workers: int = param(2, ge=1)
    fps_frames: int = param(30, ge=1)
    pretrained: dict = param(factory=dict)     # model -> a local backbone file it starts from (train.pretrained)
    train: dict = param(factory=dict)          # model -> keys laid over its config's train section (an ablation)


@dataclass
class ZooConfig(Config):
    job: str = param("zoo", choices=("zoo",))
    zoo: ZooJobConfig = param(factory=ZooJobConfig)
    data: SynthConfig = param(factory=SynthConfig)


def _overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys, nested sections merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> "ZooJob":
    cfg = from_dict(ZooConfig, data, f"{path}:")
    for name in cfg.zoo.models:   # every model's config is checked before any work
        model_config(os.path.join(cfg.zoo.configs, f"{name}.yaml"))
    if out:
        cfg.zoo.out = out
    return ZooJob(cfg)


class ZooJob(StagedJob):
    STAGES = ("data", "crop", "train", "evaluate", "report")
    OUTPUTS = {"data": ("data",), "crop": ("crops",), "train": ("models",), "evaluate": ("eval",),
               "report": ("report.json", "REPORT.md")}

    def __init__(self, cfg: ZooConfig) -> None:
        super().__init__(cfg.zoo.out)
        self.cfg = cfg
        self.data, self.crops = os.path.join(self.out, "data"), os.path.join(self.out, "crops")

    def config_path(self, name: str) -> str:
        return os.path.join(self.cfg.zoo.configs, f"{name}.yaml")

    def stage_data(self) -> dict[str, Any]:
        make_dataset(self.data, self.cfg.data)
        return {"train_seqs": self.cfg.data.train_seqs, "val_seqs": self.cfg.data.val_seqs}

    def stage_crop(self) -> dict[str, Any]:
        index = crop_dataset("got10k", self.data, self.crops, workers=self.cfg.data.workers)
        return {"sequences": len(index["sequences"])}

    def train_config(self, name: str, sequences: int) -> tuple[ModelTrainConfig, dict[str, Any]]:
        """The model's own ``train`` section, its schedule squeezed into the budget on this machine."""
        z = self.cfg.zoo
        path = self.config_path(name)
        section = _overlay(load_yaml(path).get("train") or {}, z.train.get(name) or {})
        cfg = from_dict(ModelTrainConfig, section, f"{path}:train")
        model = build_model(model_config(path))
        precision = choose_precision(cfg.precision, torch.device("cpu"), model).precision
        step = time_step(model, precision, z.batch_size)
        pairs = z.budget_s / step * z.batch_size
        per_seq = max(1, round(pairs / (z.epochs * sequences)))
        # a heavy model affords less than a pair per sequence an epoch: shorter epochs, not a blown budget
        short = max(z.batch_size, round(pairs / z.epochs)) if pairs < z.epochs * sequences else 0
        cfg = replace(cfg, pretrained=z.pretrained.get(name, cfg.pretrained), epochs=z.epochs,
                      batch_size=z.batch_size, num_workers=0, precision=precision,
                      warmup_epochs=min(cfg.warmup_epochs, z.epochs - 1),
                      pairs=replace(cfg.pairs, pairs_per_seq=per_seq, epoch_pairs=short),
                      # a frozen start keeps its share of the schedule: SiamRPN++ unfreezes half way
                      freeze=replace(cfg.freeze, unfreeze_epoch=z.epochs // 2 + 1) if cfg.freeze.unfreeze_epoch
                      else cfg.freeze)
        return cfg, {"step_s": step, "precision": precision, "pairs_per_seq": per_seq,
                     "pairs": (short or per_seq * sequences) * z.epochs}

    def stage_train(self) -> dict[str, Any]:
        sequences = len(read_json(os.path.join(self.crops, "index.json"))["sequences"])
        out = {}
        for name in self.cfg.zoo.models:
            folder = os.path.join(self.out, "models", name)
            plan_file = os.path.join(folder, "budget.json")
            if os.path.isfile(plan_file):   # a resumed run keeps the schedule it started with
                plan = read_json(plan_file)
                cfg = from_dict(ModelTrainConfig, plan["train"], f"{plan_file}:train")
            else:
                cfg, plan = self.train_config(name, sequences)
                plan["train"] = to_dict(cfg)
                write_json(plan_file, plan)
            track = load_yaml(self.config_path(name)).get("track") or {}
            path = train_model(model_config(self.config_path(name)), cfg, self.crops, folder, track, resume=True)
            history = read_json(plan_file) | {"checkpoint": path}
            out[name] = {k: v for k, v in history.items() if k != "train"}
            out[name]["loss"] = _losses(folder)
        return out

    def stage_evaluate(self) -> dict[str, Any]:
        z = self.cfg.zoo
        out = os.path.join(self.out, "eval")
        specs = {name: TrackerSpec("model", os.path.join(self.out, "models", name, "model.pth"), name=name)
                 for name in z.models}
        specs["IdentityTracker"] = TrackerSpec("identity", name="IdentityTracker")
        bench = load_benchmark("got10k-val", self.data)
        results = {}
        for name, spec in specs.items():
            s = evaluate(spec, "got10k-val", self.data, out, z.eval_workers, summary_file=f"summary_{name}.json")
            results[name] = {"ao": s["ao"], "ao_se": s["ao_se"], "sr50": s["sr50"]}
            if name in z.models:
                results[name]["fps"] = tracker_fps(spec, bench.sequences, z.fps_frames)
        return results

    def stage_report(self) -> dict[str, Any]:
        z = self.cfg.zoo
        trained, evaluated = self.result("train"), self.result("evaluate")
        identity = evaluated["IdentityTracker"]["ao"]
        rows = []
        for name in z.models:
            info = model_info(build_model(model_config(self.config_path(name))))
            e, t = evaluated[name], trained[name]
            rows.append({"model": name, "params": info["params"]["total"], "gflops": info["gflops"],
                         "ao": e["ao"], "ao_se": e["ao_se"], "x_identity": e["ao"] / identity, "fps": e["fps"],
                         "pairs": t["pairs"], "precision": t["precision"],
                         "loss_first": t["loss"][0], "loss_last": t["loss"][-1]})
        report = {"cpu": cpu_name(), "isa": isa_summary(), "budget_s": z.budget_s, "epochs": z.epochs,
                  "identity_ao": identity, "models": rows, "stage_seconds": self.stage_seconds()}
        write_json(os.path.join(self.out, "report.json"), report)
        write_text(os.path.join(self.out, "REPORT.md"), render_zoo(report))
        return {"models": len(rows)}


def _losses(folder: str) -> list[float]:
    with open(os.path.join(folder, "train_log.csv")) as f:
        rows = f.read().splitlines()[1:]
    return [float(r.split(",")[2]) for r in rows]


def render_zoo(r: dict[str, Any]) -> str:
    lines = ["# Model zoo on the synthetic val split", "",
             f"{r['cpu']} ({r['isa']}); {r['budget_s']:.0f} s of training per model, {r['epochs']} epochs; "
             f"IdentityTracker AO {r['identity_ao']:.3f}.", "",
             "| model | params | GFLOPs | pairs seen | precision | loss first -> last epoch | AO | s.e. | x identity | fps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        lines.append(f"| {m['model']} | {m['params']:,} | {m['gflops']:.2f} | {m['pairs']:,} | {m['precision']} | "
                     f"{m['loss_first']:.3f} -> {m['loss_last']:.3f} | {m['ao']:.3f} | {m['ao_se']:.3f} | "
                     f"{m['x_identity']:.2f} | {m['fps']:.1f} |")
    return "\n".join(lines) + "\n"
