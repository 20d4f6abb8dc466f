"""Compress real trackers on real footage, head to head with the authors' FDSiamFC.

Three compressions, on the real training footage (GOT-10k layout), each selecting
its checkpoints on whole source videos held out from training:

* ``halve``: the release FDSiamfc_30 at rate 0.5 -> FDSiamfc_15's widths, with the boxes
  (``real.tail`` > 0 also selects on the last fraction of every training sequence,
  kept out of training);
* ``label_free``: the same without reading a single box: the teacher picks and
  tracks its own targets (:mod:`siamfc.compression.pseudo`), and selection scores
  students against the teacher's tracks;
* ``full``: the full-width SiamFC_VID at rate 0.3 -> FDSiamfc_30's widths, with the boxes.

Then every network is scored on the real test footage (OTB layout), which no
stage before ``evaluate`` reads.

split -> crop -> pseudo -> halve -> label_free -> full -> evaluate -> report
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..compression.driver import Compressor
from ..compression.recipe import CompressConfig
from ..compression.end_to_end import FinetuneConfig, finetune
from ..compression.nano_calibration import tracking_pairs
from ..compression.pseudo import PseudoConfig, pseudo_label
from ..compression.transform import transform
from ..config import Config, ConfigError, TrackerConfig, from_dict, param, to_dict
from ..data.crop import crop_dataset, footage_layout, list_sources
from ..data.sequences import source_video
from ..errors import InputError
from ..evaluation import evaluate, report_together
from ..evaluation.benchmarks import load_benchmark, sequence_set
from ..evaluation.speed import tracker_fps
from ..files import read_json, write_json
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.stats import count_params, gflops
from ..report import render_report
from ..stages import StagedJob
from .distill_plot import render_curve
from ..system import cpu_name, isa_summary
from ..tracking.factory import TrackerSpec

EXPERIMENTS = ("halve", "label_free", "full")


@dataclass
class RealJobConfig(Config):
    out: str = "runs/real"
    shared: str = "../shared"
    train_root: str = ""          # training footage, GOT-10k layout or sequence folders of frames or videos
                                  # (default: SHARED/data/train_real)
    test_root: str = ""           # OTB-layout test footage (default: SHARED/data/real); only reported on
    holdout: list[str] = param(factory=lambda: ["otb_Freeman1", "dtb70_BMX3", "vot14_car", "otb_Toy"])
    tail: float = param(0.0, ge=0, le=0.5)   # last fraction of every training sequence: kept out, selected on
    halve_teacher: str = ""       # default: SHARED/weights/FDSiamfc_30.pth
    full_teacher: str = ""        # default: SHARED/weights/SiamFC_VID.pth
    references: list[str] = param(factory=lambda: ["FDSiamfc_30", "FDSiamfc_15"])   # in SHARED/weights
    workers: int = param(2, ge=1)
    fps_frames: int = param(200, ge=1)
    overlay_sequence: str = "Crossing"
    pseudo: PseudoConfig = param(factory=PseudoConfig)
    # the final distillation (polish: section) also trains on these BENCHMARK:ROOT:SPLIT sets and stops early on
    # held-out pairs from polish_selection and the held-out videos; the label-free run uses its own clips alone
    polish_footage: list[str] = param(factory=lambda: ["folder:{shared}/data/extra_real/videos:train"])
    polish_selection: list[str] = param(factory=lambda: ["folder:{shared}/data/extra_real/videos:val"])
    heldout_pairs: int = param(512, ge=16)
    # the experiments with boxes also select their phases on these BENCHMARK:ROOT:SPLIT sets, pooled with the
    # held-out videos (the label-free run keeps to its own clips: these have boxes)
    select_extra: list[str] = param(factory=lambda: ["folder:{shared}/data/extra_real/videos:val"])
    polish_experiments: list[str] = param(factory=lambda: list(EXPERIMENTS), choices=EXPERIMENTS)   # which
                                  # compressions the final distillation trains; the others stay as compressed


@dataclass
class RealConfig(Config):
    job: str = param("real", choices=("real",))
    real: RealJobConfig = param(factory=RealJobConfig)
    halve: CompressConfig = param(factory=CompressConfig)
    label_free: CompressConfig = param(factory=CompressConfig)
    full: CompressConfig = param(factory=CompressConfig)
    polish: FinetuneConfig = param(factory=lambda: FinetuneConfig(epochs=0))   # 0: the compressed networks as they are
    track: TrackerConfig = param(factory=TrackerConfig)


class RealJob(StagedJob):
    STAGES = ("split", "crop", "pseudo") + EXPERIMENTS + ("polish", "evaluate", "report")
    OUTPUTS = {"split": ("split.json",), "crop": ("crops",), "pseudo": ("pseudo",),
               "halve": ("halve",), "label_free": ("label_free",), "full": ("full",),
               "polish": tuple(os.path.join(n, p) for n in EXPERIMENTS for p in ("polish", "polished.pth")),
               "evaluate": ("eval",),
               "report": ("report.json", "REPORT.md")}

    def __init__(self, cfg: RealConfig) -> None:
        super().__init__(cfg.real.out)
        self.cfg = cfg
        r = cfg.real
        weights = os.path.join(r.shared, "weights")
        self.train_root = r.train_root or os.path.join(r.shared, "data", "train_real")
        self.layout = footage_layout(self.train_root)   # GOT-10k, or folders of frames or videos
        self.test_root = r.test_root or os.path.join(r.shared, "data", "real")
        self.teachers = {"halve": r.halve_teacher or os.path.join(weights, "FDSiamfc_30.pth"),
                         "full": r.full_teacher or os.path.join(weights, "SiamFC_VID.pth")}
        self.teachers["label_free"] = self.teachers["halve"]
        self.references = {n: os.path.join(weights, f"{n}.pth") for n in r.references}
        self.check_inputs()

    def check_inputs(self) -> None:
        """Everything the job reads must exist before any work starts."""
        for what, path in (("training footage", self.train_root), ("test footage", self.test_root)):
            if not os.path.isdir(path):
                raise InputError(f"{path}: {what} folder not found (set real.train_root / real.test_root, "
                                 f"or real.shared to the folder holding data/ and weights/)")
        for path in list(self.teachers.values()) + list(self.references.values()):
            load_checkpoint(path)

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    def shared_set(self, text: str) -> str:
        """A ``BENCHMARK:ROOT[:SPLIT]`` set of the config with ``{shared}`` made the shared folder."""
        return text.replace("{shared}", self.cfg.real.shared)

    # ------------------------------------------------------------- stages
    def stage_split(self) -> dict[str, Any]:
        """Whole source videos go to selection; the rest trains."""
        names = list(list_sources(self.layout, self.train_root).seq_names)
        videos = sorted({source_video(n) for n in names})
        unknown = sorted(set(self.cfg.real.holdout) - set(videos))
        if unknown:
            raise ConfigError("real.holdout", f"{', '.join(unknown)}: no such source video in {self.train_root} "
                                              f"(videos: {', '.join(videos)})")
        hold = [n for n in names if source_video(n) in self.cfg.real.holdout]
        train = [n for n in names if n not in hold]
        split = {"train": train, "select": hold, "videos": {"train": sorted({source_video(n) for n in train}),
                                                            "select": sorted(self.cfg.real.holdout)}}
        write_json(self.path("split.json"), split)
        return {"train": len(train), "select": len(hold)}

    def split(self) -> dict[str, Any]:
        return read_json(self.path("split.json"))

    def stage_crop(self) -> dict[str, Any]:
        index = crop_dataset(self.layout, self.train_root, self.path("crops", "labeled"), workers=self.cfg.real.workers,
                             only=self.split()["train"], hold_tail=self.cfg.real.tail)
        crop_dataset(self.layout, self.train_root, self.path("crops", "select"), workers=self.cfg.real.workers,
                     only=self.split()["select"])   # the diagnosis's held-out pairs
        return {"sequences": len(index["sequences"]),
                "valid_frames": sum(s["valid"].count("1") for s in index["sequences"])}

    def stage_pseudo(self) -> dict[str, Any]:
        """The label-free experiment's data: the teacher's own targets and tracks, cropped."""
        teacher = TrackerSpec("siamfc", self.teachers["label_free"], options=to_dict(self.cfg.track))
        split, pcfg = self.split(), self.cfg.real.pseudo
        train = pseudo_label(teacher, self.train_root, self.path("pseudo", "train"), pcfg, split["train"])
        select = pseudo_label(teacher, self.train_root, self.path("pseudo", "select"), pcfg, split["select"])
        index = crop_dataset("otb", self.path("pseudo", "train"), self.path("crops", "pseudo"),
                             workers=self.cfg.real.workers)
        crop_dataset("otb", self.path("pseudo", "select"), self.path("crops", "pseudo_select"),
                     workers=self.cfg.real.workers)
        return {"train": train, "select": select, "valid_frames": sum(s["valid"].count("1")
                                                                       for s in index["sequences"])}

    def compressor(self, name: str, out: str) -> Compressor:
        """Experiment ``name``'s compression into ``out``, its data and selection set up."""
        cfg: CompressConfig = getattr(self.cfg, name)
        if name == "label_free":   # selected against the teacher's own tracks: no box is read
            cfg.select.benchmark, cfg.select.root, cfg.select.names = "folder", self.path("pseudo", "select"), []
            crops, cfg.diagnose.crops = self.path("crops", "pseudo"), self.path("crops", "pseudo_select")
        else:
            cfg.select.benchmark = "got10k-train" if self.layout == "got10k" else "folder"
            cfg.select.root = self.train_root
            cfg.select.names = self.split()["select"]
            cfg.select.tail_names, cfg.select.tail = self.split()["train"], self.cfg.real.tail
            cfg.select.extra = [self.shared_set(t) for t in self.cfg.real.select_extra]
            crops, cfg.diagnose.crops = self.path("crops", "labeled"), self.path("crops", "select")
        cfg.select.workers = self.cfg.real.workers
        return Compressor(cfg, self.teachers[name], crops, out)

    def compress(self, name: str, out: str | None = None) -> dict[str, Any]:
        out = out or self.path(name)
        fd = self.compressor(name, out).run()
        result = transform(fd, os.path.join(out, "slim.pth"))
        return {"checkpoint": os.path.join(out, "slim.pth"), "fold_error": result["check"].worst,
                "rows": result["records"]}

    def ablate(self, name: str, out: str) -> dict[str, Any]:
        """One compression of experiment ``name`` into ``out`` (the stages it reads run first),
        measured on held-out data only: the final network's selection score and diagnosis."""
        for stage in ("split", "crop") + (("pseudo",) if name == "label_free" else ()):
            self.run_stage(stage)
        result = self.compress(name, out)
        phases = read_json(os.path.join(out, "state.json"))["phases"]
        last = phases[-1]
        return {"experiment": name, "out": out, "held_out_auc": round(last["auc"], 4),
                "held_out_precision": round(last["precision"], 4), "parts": last["candidates"][0].get("parts"),
                "diagnosis": last.get("diagnosis"), "fold_error": result["fold_error"],
                "minutes": round(sum(p["seconds"] for p in phases) / 60, 1)}

    def stage_halve(self) -> dict[str, Any]:
        return self.compress("halve")

    def stage_label_free(self) -> dict[str, Any]:
        return self.compress("label_free")

    def stage_full(self) -> dict[str, Any]:
        return self.compress("full")

    def polish_sets(self, name: str) -> tuple[list[Any], list[Any]]:
        """The training and held-out sequences of experiment ``name``'s final distillation."""
        def sets(texts: list[str]) -> list[Any]:
            found = []
            for text in texts:
                found += load_benchmark(*sequence_set(self.shared_set(text))).sequences
            return found

        if name == "label_free":   # no box read: the teacher's own clips
            return (load_benchmark("folder", self.path("pseudo", "train")).sequences,
                    load_benchmark("folder", self.path("pseudo", "select")).sequences)
        bench = "got10k-train" if self.layout == "got10k" else "folder"
        own = {k: load_benchmark(bench, self.train_root, self.split()[k]).sequences for k in ("train", "select")}
        return (own["train"] + sets(self.cfg.real.polish_footage),
                own["select"] + sets(self.cfg.real.polish_selection))

    def stage_polish(self) -> dict[str, Any]:
        """Each compressed network distilled end to end against its teacher on tracking pairs, early-stopped
        on held-out pairs (compression/end_to_end.py); nothing when polish.epochs is 0."""
        cfg = self.cfg.polish
        if cfg.epochs == 0:
            return {"epochs": 0}
        done = {}
        for name in self.cfg.real.polish_experiments:
            out = self.path(name, "polished.pth")
            if os.path.isfile(out):   # finished before a stop
                done[name] = read_json(self.path(name, "polish", "state.json"))
                continue
            train, held = self.polish_sets(name)
            loaded = load_checkpoint(self.path(name, "slim.pth"))
            teacher = load_checkpoint(self.teachers[name]).net.eval()
            heldout = tracking_pairs(held, self.cfg.real.heldout_pairs, seed=1)
            state = finetune(loaded.net, teacher, lambda epoch, n: tracking_pairs(train, n, seed=1000 + epoch),
                             heldout, cfg, self.path(name, "polish"))
            write_json(self.path(name, "polish", "state.json"), state)
            render_curve(state["history"], self.path(f"polish_{name}.png"), f"final distillation: {name}")
            save_checkpoint(out, loaded.net, **loaded.meta)
            done[name] = state
        return {"epochs": cfg.epochs, "experiments": done}

    def network(self, name: str) -> str:
        """Experiment ``name``'s final network: polished when the polish stage trained it."""
        polished = self.path(name, "polished.pth")
        chosen = self.cfg.polish.epochs and name in self.cfg.real.polish_experiments
        return polished if chosen and os.path.isfile(polished) else self.path(name, "slim.pth")

    def trackers(self) -> dict[str, TrackerSpec]:
        track = to_dict(self.cfg.track)
        specs = {"full_teacher": TrackerSpec("siamfc", self.teachers["full"], options=track, name="SiamFC_VID")}
        specs.update({f"ref_{n}": TrackerSpec("siamfc", p, options=track, name=f"{n} (authors)")
                      for n, p in self.references.items()})
        names = {"halve": "ours-halve", "label_free": "ours-halve-label-free", "full": "ours-full-0.3"}
        specs.update({k: TrackerSpec("siamfc", self.network(k), options=track, name=v)
                      for k, v in names.items()})
        return specs

    def stage_evaluate(self) -> dict[str, Any]:
        out = self.path("eval")
        specs = self.trackers()
        results = {k: evaluate(s, "folder", self.test_root, out, self.cfg.real.workers,
                               summary_file=f"summary_{k}.json", plots=False) for k, s in specs.items()}
        order = ["halve", "label_free", "full"] + [k for k in specs if k not in EXPERIMENTS]
        plots = report_together("folder", self.test_root, out, [specs[k].tracker_name for k in order])
        return {"results": {k: {key: v[key] for key in ("tracker", "mean_auc", "mean_precision",
                                                        "mean_success_rate", "fps", "sequences")}
                            for k, v in results.items()}, "plots": plots}

    def stage_report(self) -> dict[str, Any]:
        report = self.gather()
        write_json(self.path("report.json"), report)
        render_report(self.out)
        return {"elapsed_s": report["elapsed_s"]}

    # ------------------------------------------------------------- the report's figures
    def gather(self) -> dict[str, Any]:
        import time

        start = time.perf_counter()
        evaluation = self.result("evaluate")
        specs = self.trackers()
        bench = load_benchmark("folder", self.test_root)
        models = {}
        for key, spec in specs.items():
            backbone = load_checkpoint(spec.checkpoint).net.backbone
            models[key] = {"name": spec.tracker_name, "checkpoint": os.path.abspath(spec.checkpoint),
                           "widths": list(backbone.widths), "params": count_params(backbone),
                           "gflops": gflops(backbone),
                           "fps": tracker_fps(spec, bench.sequences, self.cfg.real.fps_frames),
                           **{k: evaluation["results"][key][k] for k in ("mean_auc", "mean_precision",
                                                                         "mean_success_rate")}}
        phases = {name: [{k: p.get(k) for k in ("name", "selected_epoch", "auc", "precision", "success_rate",
                                                  "diagnosis", "arithmetic", "seconds")}
                         for p in read_json(self.path(name, "state.json"))["phases"]]
                  for name in EXPERIMENTS}
        plots = {name: f"diagnosis_{name}.png" for name in EXPERIMENTS
                 if os.path.isfile(self.path(name, "diagnosis.png"))}
        per_sequence = {key: {s: v["auc"] for s, v in evaluation["results"][key]["sequences"].items()}
                        for key in specs}
        seconds = self.stage_seconds()
        seconds["report"] = round(time.perf_counter() - start, 1)
        shown = self.cfg.real.overlay_sequence
        return {
            "job": "real", "title": "Compressing real trackers on real footage",
            "date": datetime.date.today().isoformat(), "cpu": cpu_name(), "isa": isa_summary(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "halve_checkpoint": models["halve"]["checkpoint"],
            "halve_label_free_checkpoint": models["label_free"]["checkpoint"],
            "full_checkpoint": models["full"]["checkpoint"],
            "teacher_checkpoint": os.path.abspath(self.teachers["full"]),
            "halve_teacher_checkpoint": os.path.abspath(self.teachers["halve"]),
            "split": self.split()["videos"], "tail": self.cfg.real.tail, "pseudo": self.result("pseudo"),
            "select_extra": [self.shared_set(t) for t in self.cfg.real.select_extra],
            "polish": self.result("polish") if self.done("polish") else None,
            "models": models, "per_sequence": per_sequence, "phases": phases, "diagnosis_plots": plots,
            "fold_error": {name: self.result(name)["fold_error"] for name in EXPERIMENTS},
            "stage_seconds": seconds, "elapsed_s": round(sum(seconds.values()), 1),
            "plots": [os.path.basename(p) for p in evaluation["plots"]],
            "plot_sources": [os.path.relpath(p, self.out) for p in evaluation["plots"]],
            "overlay": {"benchmark": "folder", "root": os.path.abspath(self.test_root), "layout": "otb",
                        "results": os.path.abspath(self.path("eval", "results", "folder",
                                                             specs["halve"].tracker_name)),
                        "sequences": [shown] if any(s.name == shown for s in bench.sequences) else
                        [bench.sequences[0].name], "frames": 120},
        }


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> RealJob:
    cfg = from_dict(RealConfig, data, f"{path}:")
    if out:
        cfg.real.out = out
    return RealJob(cfg)
