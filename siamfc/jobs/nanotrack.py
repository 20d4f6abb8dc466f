"""FD on NanoTrack v2, ending in the two ONNX files ``cv2.TrackerNano`` loads.

labels -> pairs -> fit -> finetune -> export -> evaluate -> report

The teacher is SiamTrackers' ``nanotrackv2.pth`` as the package builds it. ``fit`` cuts every internal
width of the backbone's expansions and the head's towers to ``rate`` and refits each consumer in closed
form (``compression.nano_fit``) on tracking pairs from the training footage; ``finetune`` distils the cut
model end to end against the teacher (``compression.end_to_end``), early-stopped on pairs from the
selection set; ``export`` writes ``OUT/backbone.onnx`` and ``OUT/head.onnx``; ``evaluate`` tracks the
selection set inside ``cv2.TrackerNano`` with the original pair and ours, on the same frames, and times
them side by side. The test set is never read here: ``fdsiamfc nanotrack-sweep --extra nanotrack:OUT``
scores the result there beside the peers.

``label_free: true`` reads no box at all: ``labels`` has the teacher pick and track its own targets in the
training and selection footage (``compression.pseudo``), and everything after trains, stops early and
scores against those tracks.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..compression.nano_calibration import tracking_pairs
from ..compression.end_to_end import FinetuneConfig, finetune
from ..compression.nano_depth import by_tower
from ..compression.nano_fit import distill_nano
from ..compression.nano_widths import CUTTABLE, PARTS, cut_like, update_macs
from ..compression.pseudo import PseudoConfig, frame_folders, pseudo_label
from ..config import Config, ConfigError, from_dict, param
from ..data.sequences import Sequence, source_video
from ..deploy.nano_onnx import export_nano
from ..errors import InputError
from ..evaluation import evaluate
from ..evaluation.benchmarks import load_benchmark, sequence_set
from ..evaluation.interleaved import interleaved_fps, paired_speedup
from ..evaluation.summary import paired_difference
from ..files import atomic_path, torch_save, write_json, write_text
from ..models.model_io import load_model
from ..models.siamese import SiamModel, build_model, model_config
from ..shared import shared_path
from ..stages import StagedJob
from ..system import cpu_name, isa_summary
from ..tracking.factory import TrackerSpec
from ..tracking.ops import torch_threads
from ..tracking.peers import onnx_parameters, peer_files

EXTRA_REAL = shared_path("data", "extra_real", "videos")


@dataclass
class NanoJobConfig(Config):
    out: str = "runs/nanotrack"
    model: str = "configs/nanotrack/NanoTrackV2.yaml"
    weights: str = shared_path("peers", "nanotrackv2", "nanotrackv2.pth")
    rate: float = param(0.6, gt=0, le=1)
    parts: list[str] = param(factory=lambda: list(PARTS), choices=CUTTABLE)
    drop: int = param(0, ge=0)   # whole layers each head tower loses before its widths are cut (nano_depth)
    select: str = param("greedy", choices=("greedy", "energy"))
    ridge: float = param(1.0e-3, ge=0)
    training: list[str] = param(factory=lambda: [f"folder:{EXTRA_REAL}:train",
                                                 f"got10k-train:{shared_path('data', 'train_real')}"])
    # BENCHMARK:ROOT[:SPLIT] sets, scenes apart from the training ones, pooled sequence by sequence
    selection: list[str] = param(factory=lambda: [f"folder:{EXTRA_REAL}:val"])
    # whole source videos of the training sets that go to selection instead (the real job's four by default)
    holdout: list[str] = param(factory=lambda: ["otb_Freeman1", "dtb70_BMX3", "vot14_car", "otb_Toy"])
    label_free: bool = False   # pseudo-label every set with the teacher's own tracks instead of reading boxes
    fit_pairs: int = param(256, ge=16)
    heldout_pairs: int = param(512, ge=16)
    threads: int = param(2, ge=1)
    speed_rounds: int = param(2, ge=1)


@dataclass
class NanoConfig(Config):
    job: str = param("nanotrack", choices=("nanotrack",))
    nanotrack: NanoJobConfig = param(factory=NanoJobConfig)
    finetune: FinetuneConfig = param(factory=FinetuneConfig)
    pseudo: PseudoConfig = param(factory=PseudoConfig)


def check_drop(key: str, model: str, drop: int) -> None:
    """``drop`` head layers a tower must leave one: read from the model's own structure, before any stage."""
    if drop:
        spans = build_model(model_config(model)).head.layer_spans()
        if drop > min(len(s) for s in spans.values()):
            raise ConfigError(key, f"{drop}: {model}'s head towers have {min(len(s) for s in spans.values())} "
                                   f"layers that can go")


def make_job(path: str, data: dict[str, Any], out: str | None = None) -> "NanoJob":
    cfg = from_dict(NanoConfig, data, f"{path}:")
    if out:
        cfg.nanotrack.out = out
    for key in ("model", "weights"):   # before any stage writes anything
        if not os.path.isfile(getattr(cfg.nanotrack, key)):
            raise ConfigError(f"{path}:nanotrack.{key}", f"{getattr(cfg.nanotrack, key)}: file not found")
    if not cfg.nanotrack.selection:
        raise ConfigError(f"{path}:nanotrack.selection", "at least one BENCHMARK:ROOT[:SPLIT] set is needed")
    check_drop(f"{path}:nanotrack.drop", cfg.nanotrack.model, cfg.nanotrack.drop)
    for role in ("training", "selection"):
        for i, text in enumerate(getattr(cfg.nanotrack, role)):
            if len(text.split(":")) not in (2, 3):
                raise ConfigError(f"{path}:nanotrack.{role}[{i}]", f"'{text}' is not BENCHMARK:ROOT[:SPLIT]")
    return NanoJob(cfg)


Set = tuple[str, str, "list[str] | None"]   # benchmark, root, the names it holds (None: all)


def _sequences(sets: list[Set]) -> list[Sequence]:
    return [q for bench, root, names in sets for q in load_benchmark(bench, root, names).sequences]


def _names(root: str, names: list[str] | None) -> list[str]:
    """The sequences a set holds, listed without reading a box (label-free footage has none)."""
    return list(names) if names is not None else list(frame_folders(root))


class NanoJob(StagedJob):
    STAGES = ("labels", "pairs", "fit", "finetune", "export", "evaluate", "report")
    OUTPUTS = {"labels": ("pseudo",), "pairs": ("pairs",), "fit": ("fit.pth",), "finetune": ("finetune", "student.pth"),
               "export": ("backbone.onnx", "head.onnx"), "evaluate": ("eval",),
               "report": ("report.json", "REPORT.md", "distillation.png")}

    def __init__(self, cfg: NanoConfig) -> None:
        super().__init__(cfg.nanotrack.out)
        self.cfg = cfg
        self._teacher: SiamModel | None = None
        self._sets: dict[str, list[Set]] | None = None
        self._sequences: dict[str, list[Sequence]] = {}

    # ------------------------------------------------------------- helpers
    def teacher(self) -> SiamModel:
        if self._teacher is None:
            self.given_sets()   # the overlap check, before the model loads
            self._teacher = load_model(self.cfg.nanotrack.weights, self.cfg.nanotrack.model).model.eval()
        return self._teacher

    def given_sets(self) -> dict[str, list[Set]]:
        """The training and selection sets of the config, checked apart, with ``holdout`` applied."""
        if self._sets is None:
            j = self.cfg.nanotrack
            given = {role: [sequence_set(t) for t in getattr(j, role)] for role in ("training", "selection")}
            for text, (_, root, names) in zip(j.training, given["training"]):   # selection stays out of training
                for s_text, (_, s_root, s_names) in zip(j.selection, given["selection"]):
                    same = os.path.abspath(root) == os.path.abspath(s_root)
                    if same and (names is None or s_names is None or set(names) & set(s_names)):
                        raise InputError(f"{text}: the training footage holds selection sequences ({s_text})")
            self._sets = self._hold_out(given)
        return self._sets

    def _hold_out(self, given: dict[str, list[Set]]) -> dict[str, list[Set]]:
        """Move ``holdout``'s source videos from the training sets to the end of the selection sets."""
        hold = set(self.cfg.nanotrack.holdout)
        if not hold:
            return given
        training, moved, found = [], [], set()
        for bench, root, names in given["training"]:
            names = _names(root, names)
            held = [n for n in names if source_video(n) in hold]
            found |= {source_video(n) for n in held}
            if len(held) < len(names):
                training.append((bench, root, [n for n in names if n not in held]))
            if held:
                moved.append((bench, root, held))
        if hold - found:
            raise InputError(f"nanotrack.holdout: {', '.join(sorted(hold - found))}: no such source video in "
                             f"the training sets ({', '.join(self.cfg.nanotrack.training)})")
        return {"training": training, "selection": given["selection"] + moved}

    def sets(self, role: str) -> list[Set]:
        """The sets of ``role`` (training, selection) as the job reads them, ``holdout`` applied: the teacher's
        pseudo-labelled clips of each in a label-free run."""
        j = self.cfg.nanotrack
        if role not in ("training", "selection"):
            raise ValueError(f"no set role '{role}'")
        given = self.given_sets()[role]
        if self.done("labels") and self.result("labels")["label_free"] != j.label_free:
            raise InputError(f"{self.out}: its labels stage ran with label_free: {not j.label_free}; "
                             f"run again with --from labels")
        if not j.label_free:
            return given
        return [("folder", os.path.join(self.out, "pseudo", f"{role}{i}"), None) for i in range(len(given))]

    def described(self, role: str) -> list[str]:
        """The sets of ``role`` as ``BENCHMARK:ROOT`` with the number of sequences each, for the report."""
        return [f"{bench}:{root} ({len(_names(root, names))} sequences)"
                for bench, root, names in self.sets(role)]

    def sequences(self, role: str) -> list[Sequence]:
        got = self._sequences
        if role not in got:
            got[role] = _sequences(self.sets(role))
            if not got[role]:
                raise InputError(f"no {role} sequences could be read "
                                 f"({', '.join(f'{b}:{r}' for b, r, _ in self.sets(role))})")
        return got[role]

    def pairs(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(os.path.join(self.out, "pairs", f"{name}.npz")) as f:
            return f["z"], f["x"]

    def student(self, path: str) -> tuple[SiamModel, dict[str, Any]]:
        """The saved cut at ``path`` and its structure (``keeps``: kept channels, ``dropped``: head layers)."""
        saved = torch.load(path, map_location="cpu", weights_only=False)
        structure = {"keeps": saved["keeps"], "dropped": saved.get("dropped") or {}}
        model = cut_like(self.teacher(), structure["keeps"], structure["dropped"])
        model.load_state_dict(saved["model"])
        return model.eval(), structure

    # ------------------------------------------------------------- stages
    def stage_labels(self) -> dict[str, Any]:
        j = self.cfg.nanotrack
        if not j.label_free:
            return {"label_free": False}
        self.given_sets()   # the overlap check
        teacher = TrackerSpec.parse(f"model:{j.model},{j.weights}")
        made = {}
        for role in ("training", "selection"):
            for i, (_, root, names) in enumerate(self.given_sets()[role]):
                made[f"{role}{i}"] = pseudo_label(teacher, root, os.path.join(self.out, "pseudo", f"{role}{i}"),
                                                  self.cfg.pseudo, names)
        return {"label_free": True, "clips": made}

    def stage_pairs(self) -> dict[str, Any]:
        j, cfg = self.cfg.nanotrack, self.teacher().cfg
        os.makedirs(os.path.join(self.out, "pairs"), exist_ok=True)
        for name, role, count, seed in (("fit", "training", j.fit_pairs, 0), ("heldout", "selection", j.heldout_pairs, 1)):
            z, x = tracking_pairs(self.sequences(role), count, cfg.exemplar_sz, cfg.instance_sz, seed=seed)
            with atomic_path(os.path.join(self.out, "pairs", f"{name}.npz")) as tmp, open(tmp, "wb") as f:
                np.savez(f, z=z, x=x)
        return {"fit": j.fit_pairs, "heldout": j.heldout_pairs, "training_sequences": len(self.sequences("training")),
                "selection_sequences": len(self.sequences("selection"))}

    def stage_fit(self) -> dict[str, Any]:
        j = self.cfg.nanotrack
        with torch_threads(j.threads):
            student, fits, drops = distill_nano(self.teacher(), j.rate, *self.pairs("fit"), tuple(j.parts),
                                                j.select, j.ridge, drop=j.drop)
        keeps = {f.producer: f.keep for f in fits}
        torch_save({"keeps": keeps, "dropped": by_tower(drops), "model": student.state_dict(), "rate": j.rate},
                   os.path.join(self.out, "fit.pth"))
        return {"widths": [{k: v for k, v in asdict(f).items() if k != "keep"} for f in fits],
                "drops": [asdict(d) for d in drops], "macs": update_macs(student)}

    def stage_finetune(self) -> dict[str, Any]:
        j, ft = self.cfg.nanotrack, self.cfg.finetune
        student, structure = self.student(os.path.join(self.out, "fit.pth"))
        teacher = self.teacher()
        cfg = teacher.cfg

        def draw(epoch: int, count: int) -> tuple[np.ndarray, np.ndarray]:   # fresh pairs, the fit's seed aside
            return tracking_pairs(self.sequences("training"), count, cfg.exemplar_sz, cfg.instance_sz,
                                  seed=1000 + epoch)

        with torch_threads(j.threads):
            state = finetune(student, teacher, draw, self.pairs("heldout"), ft, os.path.join(self.out, "finetune"))
        torch_save({**structure, "model": student.state_dict(), "rate": j.rate}, os.path.join(self.out, "student.pth"))
        return {"history": state["history"], "best_epoch": state["best_epoch"], "best_heldout": state["best"]}

    def stage_export(self) -> dict[str, Any]:
        student, _ = self.student(os.path.join(self.out, "student.pth"))
        done = export_nano(student, self.out)
        files = peer_files("nanotrack", self.out)
        return {"export_worst": max(done.worst.values()), "export_check": done.worst, "folded": done.folded,
                "fused": done.fused,
                "files": list(files), "params": onnx_parameters(files),
                "mb": sum(os.path.getsize(f) for f in files) / 1e6, "macs": update_macs(student)}

    def stage_evaluate(self) -> dict[str, Any]:
        j = self.cfg.nanotrack
        specs = {"NanoTrackV2": TrackerSpec.parse("nanotrack"),
                 "NanoTrackV2-FD": TrackerSpec.parse(f"nanotrack:{self.out}", name="NanoTrackV2-FD")}
        scored, per_seq = {}, {}
        for name, spec in specs.items():   # every selection set, pooled sequence by sequence
            per_seq[name] = {}
            for i, (bench, root, names) in enumerate(self.sets("selection")):
                s = evaluate(spec, bench, root, os.path.join(self.out, "eval", name, f"set{i}"), workers=1,
                             only=names, threads=j.threads)
                per_seq[name].update({f"{i}/{q}": v for q, v in s["sequences"].items()})
            scored[name] = {k: float(np.mean([v[k] for v in per_seq[name].values()])) for k in ("auc", "precision")}
            per_seq[name] = {q: v["auc"] for q, v in per_seq[name].items()}
        sequences = self.sequences("selection")
        timing = interleaved_fps(specs, sequences, j.threads, j.speed_rounds)
        ours = scored["NanoTrackV2-FD"]
        ours["speedup"], ours["speedup_q1"], ours["speedup_q3"] = paired_speedup(timing, "NanoTrackV2-FD", "NanoTrackV2")
        ours["auc_diff"], ours["auc_diff_se"] = paired_difference(per_seq["NanoTrackV2-FD"], per_seq["NanoTrackV2"])
        for name in specs:
            scored[name]["fps"] = timing.fps[name]
        return {"selection": self.described("selection"), "sequences": len(sequences),
                "frames": sum(len(q) for q in sequences), "trackers": scored}

    def stage_report(self) -> dict[str, Any]:
        from .distill_plot import render_curve
        from .nanotrack_report import render_markdown

        j = self.cfg.nanotrack
        report = {"cpu": cpu_name(), "isa": isa_summary(), "threads": j.threads, "rate": j.rate,
                  "label_free": self.result("labels")["label_free"],
                  "teacher_macs": update_macs(self.teacher()), "fit": self.result("fit"),
                  "finetune": self.result("finetune"), "export": self.result("export"),
                  "evaluate": self.result("evaluate"), "settings": {"nanotrack": asdict(j),
                                                                     "finetune": asdict(self.cfg.finetune)},
                  "stage_seconds": self.stage_seconds()}
        report["elapsed_s"] = round(sum(report["stage_seconds"].values()), 1)
        write_json(os.path.join(self.out, "report.json"), report)
        write_text(os.path.join(self.out, "REPORT.md"), render_markdown(report))
        render_curve(report["finetune"]["history"], os.path.join(self.out, "distillation.png"))
        return {"elapsed_s": report["elapsed_s"]}
