"""The compression driver: the FD steps of any plain chain, each followed by a fine-tune,
with selection (a 5-layer AlexNet has 9 steps, so 18 phases).

A phase is one step or one fine-tune. It starts from the previous phase's
selected checkpoint, trains for its epochs (the step's parameters only, or all of
them when fine-tuning), scores the candidate epochs on the selection benchmark
(0.4 AUC + 0.4 precision + 0.2 success rate, as in the paper) and keeps the best.
``state.json`` (machine-readable) and ``compress_log.md`` (for people) are rewritten
after every phase; a re-run of the same command skips finished phases and
resumes the phase in flight from its last epoch checkpoint.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..config import Config, param
from ..errors import InputError
from ..evaluation.benchmarks import BENCHMARK_NAMES
from ..evaluation import evaluate
from ..files import copy_file, read_json, write_json, write_text
from ..models.batchnorm import identity_bns, reexpress_identity_bns
from ..models.checkpoint import load_checkpoint
from ..models.fd import SQUEEZE_GROUPINGS, FDChain, FDPlan
from ..models.net import SiamNet
from ..tracking.backends import BACKENDS
from ..tracking.factory import TrackerSpec
from ..training.distill import DistillTrainer, LossWeights
from ..training.trainer import TrainConfig, epoch_path
from .transitions import (TRANSITIONS, carry_over, init_hourglass, init_narrowed, output_projection,
                          refine_narrowed)


@dataclass
class SelectConfig(Config):
    """Where and how candidate checkpoints are scored."""

    benchmark: str = param("got10k-val", choices=BENCHMARK_NAMES)
    root: str = param("", path="dir")
    workers: int = param(2, ge=1)
    backend: str = param("fp32", choices=BACKENDS)
    sequences: int = param(0, ge=0)                 # use only the first N sequences (0 = all)
    names: list[str] = param(factory=list)          # or only these sequences
    segment: int = param(0, ge=0)                   # track in pieces of this many frames (0: whole sequences)


@dataclass
class CompressConfig(Config):
    rates: list[float] = param(factory=lambda: [0.3], gt=0, le=1)   # relative to the teacher: one, or one a layer
    grouping: str = param("conv", choices=SQUEEZE_GROUPINGS)     # squeeze/combine groups: conv (paper) | aligned
    transition: str = param("inherit", choices=TRANSITIONS)      # even-step initialisation: fresh (paper) | inherit
    loss: LossWeights = param(factory=LossWeights)               # tracking loss and the teacher's supervision
    candidates: int = param(2, ge=1)                # newest epochs of a phase that compete for selection
    sample_images: int = param(32, ge=1)            # crops used by the inherit initialisation
    refine_iters: int = param(0, ge=0)              # inherit: local refinement of each even step (0: off)
    refine_lr: float = param(1e-4, gt=0)
    step: TrainConfig = param(factory=lambda: TrainConfig(epochs=50, initial_lr=1e-2, ultimate_lr=1e-4))
    finetune: TrainConfig = param(factory=lambda: TrainConfig(epochs=10, initial_lr=1e-3, ultimate_lr=1e-5))
    select: SelectConfig = param(factory=SelectConfig)
    seed: int = param(0, ge=0)
    last_step: int = param(0, ge=0)                 # stop after this step (0: all; the transform needs all)


def phases(last_step: int) -> list[tuple[str, int, bool]]:
    """(name, step, fine_tune) for the phases in order: 2 per step."""
    out = []
    for step in range(1, last_step + 1):
        out += [(f"step{step}", step, False), (f"finetune{step}", step, True)]
    return out


def selection_score(summary: dict[str, Any]) -> float:
    return 0.4 * summary["mean_auc"] + 0.4 * summary["mean_precision"] + 0.2 * summary["mean_success_rate"]


class Compressor:
    """Runs the phases of one compression of ``teacher`` (any plain chain) into ``out_dir``."""

    def __init__(self, cfg: CompressConfig, teacher: str, crops_dir: str, out_dir: str) -> None:
        self.cfg, self.crops_dir, self.out_dir = cfg, crops_dir, out_dir
        loaded = load_checkpoint(teacher)
        if loaded.meta.get("fd"):
            raise InputError(f"{teacher}: the teacher must be a plain network, not an FD network in mid-compression "
                             f"(fold it with tools/model_transform.py first)")
        self.base = loaded.net.backbone.layers
        try:
            self.final = FDPlan(self.base, tuple(cfg.rates), 0, cfg.grouping).at(0)
        except ValueError as e:
            raise InputError(f"{teacher}: compress.rates {cfg.rates} do not fit its "
                             f"{len(self.base)}-layer chain {loaded.net.backbone.widths}: {e}") from None
        self.last_step = min(cfg.last_step or self.final.last_step, self.final.last_step)
        self.teacher_state = loaded.net.state_dict()
        if not cfg.select.root:
            raise InputError("compress.select.root is empty: give the selection benchmark's root folder")
        self.state_path = os.path.join(out_dir, "state.json")
        self.state = read_json(self.state_path) if os.path.isfile(self.state_path) else {
            "config": asdict(cfg), "teacher": os.path.abspath(teacher), "phases": []}

    # ---------------------------------------------------------------- helpers
    def path(self, relative: str) -> str:
        """Paths in state.json are relative to the run folder, so it can move."""
        return os.path.join(self.out_dir, relative)

    def plan(self, step: int) -> FDPlan:
        return self.final.at(step)

    def net_for(self, step: int) -> SiamNet:
        return SiamNet(FDChain(self.plan(step)))

    @functools.cached_property
    def _sample(self) -> torch.Tensor:
        from ..data.pairs import PairDataset
        ds = PairDataset(self.crops_dir, self.cfg.step.pairs, self.cfg.seed)
        n = min(self.cfg.sample_images, len(ds))
        idx = torch.linspace(0, len(ds) - 1, n).long().tolist()
        return torch.stack([ds[i][1] for i in idx]).float()

    def sample(self) -> torch.Tensor:
        """Fixed training crops (search images) for the inherit initialisation, read once."""
        return self._sample

    @functools.cached_property
    def _teacher_ready(self) -> dict[str, torch.Tensor]:
        net = self.net_for(0)
        net.load_state_dict(self.teacher_state)
        if "train" in (self.cfg.step.bn, self.cfg.finetune.bn) and identity_bns(net.backbone):
            changed = reexpress_identity_bns(net.backbone, self.sample())
            print(f"teacher: {len(changed)} identity BN layers given the statistics of their inputs "
                  f"({', '.join(changed)})")
        return net.state_dict()

    def teacher_net(self) -> SiamNet:
        """The teacher as a step-0 FD network. Where it trains BN in train mode and its BN
        layers are the identity (BN folded into the convs), they get real statistics first
        (once per run)."""
        net = self.net_for(0)
        net.load_state_dict(self._teacher_ready)
        return net.eval()

    def previous(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        """State dict and step that phase ``index`` starts from."""
        if index == 0:
            return self.teacher_net().state_dict(), 0
        prev = self.state["phases"][index - 1]
        return load_checkpoint(self.path(prev["selected"])).net.state_dict(), prev["step"]

    def initial_net(self, index: int, step: int, fine_tune: bool) -> tuple[SiamNet, dict[str, Any]]:
        torch.manual_seed(self.cfg.seed * 1000 + index)
        old_state, old_step = self.previous(index)
        net = self.net_for(step)
        info: dict[str, Any] = {"fresh": carry_over(net.backbone, {k.removeprefix("backbone."): v for k, v in old_state.items()})}
        if fine_tune or self.cfg.transition == "fresh":
            return net, info
        old = self.net_for(old_step)
        old.load_state_dict(old_state)
        layer = (step + 1) // 2
        sample = self.sample()
        if step % 2:
            init_hourglass(net.backbone, old.backbone, layer, sample)
            info["init"] = f"PCA hourglass at conv{layer}"
        else:
            info["init"] = f"least-squares conv{layer + 1} on distilled conv{layer}"
            info["fit_residual"] = init_narrowed(net.backbone, old.backbone, layer, sample, seed=self.cfg.seed)
            if self.cfg.refine_iters:
                info["init"] += f", refined with squeeze{layer} ({self.cfg.refine_iters} iterations)"
                info["refined_residual"] = refine_narrowed(net.backbone, old.backbone, layer, sample,
                                                           self.cfg.refine_iters, self.cfg.refine_lr,
                                                           seed=self.cfg.seed)
        return net, info

    # ---------------------------------------------------------------- phases
    def run(self) -> str:
        """Run every unfinished phase; returns the final FD checkpoint path."""
        os.makedirs(self.out_dir, exist_ok=True)
        done = {p["name"] for p in self.state["phases"] if p["status"] == "done"}
        for index, (name, step, fine_tune) in enumerate(phases(self.last_step)):
            if name not in done:
                self.run_phase(index, name, step, fine_tune)
        final = os.path.join(self.out_dir, "fd_model.pth")
        copy_file(self.path(self.state["phases"][-1]["selected"]), final)
        return final

    def run_phase(self, index: int, name: str, step: int, fine_tune: bool) -> None:
        phase_dir = os.path.join(self.out_dir, "phases", f"{index + 1:02d}_{name}")
        train_cfg = self.cfg.finetune if fine_tune else self.cfg.step
        train_cfg = TrainConfig(**{**asdict(train_cfg), "seed": self.cfg.seed * 1000 + index,
                                   "keep_checkpoints": 0, "pairs": train_cfg.pairs})
        start = time.perf_counter()
        print(f"[{index + 1}/{2 * self.last_step}] {name}: {'all parameters' if fine_tune else 'step parameters'}, "
              f"{train_cfg.epochs} epochs")
        net, info = self.initial_net(index, step, fine_tune)
        trainable = net.backbone.set_trainable(fine_tune)
        teacher = self.teacher_net() if self.cfg.loss.needs_teacher else None
        projection = None
        if teacher is not None and self.cfg.loss.features and net.backbone.out_channels != teacher.backbone.out_channels:
            n = self.final.layers
            projection = output_projection(teacher.backbone, self.sample(), net.backbone.out_channels,
                                           self.final.squeeze_groups(n))
        trainer = DistillTrainer(net, train_cfg, self.crops_dir, phase_dir, meta={"phase": name},
                                 teacher=teacher, weights=self.cfg.loss, projection=projection)
        trainer.fit(resume=True)
        epochs = list(range(max(1, train_cfg.epochs - self.cfg.candidates + 1), train_cfg.epochs + 1))
        candidates = [self.score(phase_dir, name, e) for e in epochs]
        best = max(candidates, key=lambda c: c["score"])
        selected = os.path.join(phase_dir, "selected.pth")
        copy_file(epoch_path(phase_dir, best["epoch"]), selected)
        record = {"name": name, "step": step, "fine_tune": fine_tune, "status": "done",
                  "trainable": trainable, "init": info.get("init", "carried over"),
                  "fit_residual": info.get("fit_residual"), "refined_residual": info.get("refined_residual"),
                  "epochs": train_cfg.epochs,
                  "candidates": candidates, "selected": os.path.relpath(selected, self.out_dir),
                  "selected_epoch": best["epoch"],
                  "auc": best["auc"], "precision": best["precision"], "success_rate": best["success_rate"],
                  "ao": best.get("ao"), "seconds": round(time.perf_counter() - start, 1)}
        self.state["phases"] = [p for p in self.state["phases"] if p["name"] != name] + [record]
        write_json(self.state_path, self.state)
        self.write_log()
        for e in range(1, train_cfg.epochs + 1):   # only the selected epoch is kept
            if os.path.exists(epoch_path(phase_dir, e)):
                os.remove(epoch_path(phase_dir, e))
        print(f"  selected epoch {best['epoch']}: AUC {best['auc']:.3f}, precision {best['precision']:.3f}, "
              f"SR {best['success_rate']:.3f} ({record['seconds']:.0f} s)")

    def score(self, phase_dir: str, name: str, epoch: int) -> dict[str, Any]:
        sel = self.cfg.select
        s = evaluate(TrackerSpec("siamfc", epoch_path(phase_dir, epoch), sel.backend, name=f"{name}_e{epoch}"),
                     sel.benchmark, sel.root, os.path.join(phase_dir, "select"), sel.workers,
                     self.selection_sequences(), segment=sel.segment)
        return {"epoch": epoch, "score": selection_score(s), "auc": s["mean_auc"],
                "precision": s["mean_precision"], "success_rate": s["mean_success_rate"], "ao": s.get("ao")}

    def selection_sequences(self) -> list[str] | None:
        if self.cfg.select.names:
            return list(self.cfg.select.names)
        if not self.cfg.select.sequences:
            return None
        if not hasattr(self, "_selection"):
            from ..evaluation.benchmarks import load_benchmark
            bench = load_benchmark(self.cfg.select.benchmark, self.cfg.select.root)
            self._selection = [s.name for s in bench.sequences[:self.cfg.select.sequences]]
        return self._selection

    def write_log(self) -> None:
        lines = ["# FD compression log", "",
                 f"teacher: `{self.state['teacher']}`  ",
                 f"rates: {self.cfg.rates}, grouping: {self.cfg.grouping}, transition: {self.cfg.transition}, "
                 f"loss: {asdict(self.cfg.loss)}  ",
                 f"selection: {self.cfg.select.benchmark} at `{self.cfg.select.root}`, "
                 "score = 0.4 AUC + 0.4 precision + 0.2 SR", "",
                 "| phase | init | candidates (epoch: score) | chosen | AUC | precision | SR | AO | time (s) |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for p in self.state["phases"]:
            cands = ", ".join(f"{c['epoch']}: {c['score']:.3f}" for c in p["candidates"])
            ao = f"{p['ao']:.3f}" if p.get("ao") is not None else "-"
            lines.append(f"| {p['name']} | {p['init']} | {cands} | {p['selected_epoch']} | {p['auc']:.3f} | "
                         f"{p['precision']:.3f} | {p['success_rate']:.3f} | {ao} | {p['seconds']:.0f} |")
        write_text(os.path.join(self.out_dir, "compress_log.md"), "\n".join(lines) + "\n")
