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
from dataclasses import asdict
from typing import Any

import torch

from ..data.frames import cut_pairs, training_frames
from ..errors import InputError
from ..files import copy_file, read_json, write_json
from ..models.batchnorm import identity_bns, reexpress_identity_bns
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.fd import FDChain, FDPlan
from ..models.net import SiamNet
from ..training.bank import TeacherBank
from ..training.distill import DistillTrainer, distill_gflop_per_pair
from ..training.trainer import TrainConfig, TrainingDiverged, epoch_path
from .diagnosis import Outputs, diagnose, held_out_pairs, outputs
from .phase_log import write_log
from .phase_select import score_candidate, unscored
from .recipe import CompressConfig
from .squeezes import init_hourglass, init_selection, output_projection
from .transitions import carry_over, init_narrowed, refine_narrowed


def phases(last_step: int) -> list[tuple[str, int, bool]]:
    """(name, step, fine_tune) for the phases in order: 2 per step."""
    out = []
    for step in range(1, last_step + 1):
        out += [(f"step{step}", step, False), (f"finetune{step}", step, True)]
    return out


def candidate_path(phase_dir: str, epoch: int) -> str:
    """A phase's candidate: its starting network (epoch 0) or an epoch checkpoint."""
    return os.path.join(phase_dir, "start.pth") if epoch == 0 else epoch_path(phase_dir, epoch)


class Compressor:
    """Runs the phases of one compression of ``teacher`` (any plain chain) into ``out_dir``."""

    def __init__(self, cfg: CompressConfig, teacher: str, crops_dir: str, out_dir: str) -> None:
        self.cfg, self.crops_dir, self.out_dir = cfg, crops_dir, out_dir
        loaded = load_checkpoint(teacher)
        if loaded.meta.get("fd"):
            raise InputError(f"{teacher}: the teacher must be a plain network, not an FD network in mid-compression "
                             f"(fold it with tools/model_transform.py first)")
        self.base = loaded.net.backbone.layers
        self.out_scale = float(loaded.net.head.out_scale)   # every phase scores as the teacher does
        try:
            self.final = FDPlan(self.base, tuple(cfg.rates), 0, cfg.grouping).at(0)
        except ValueError as e:
            raise InputError(f"{teacher}: compress.rates {cfg.rates} do not fit its "
                             f"{len(self.base)}-layer chain {loaded.net.backbone.widths}: {e}") from None
        self.last_step = min(cfg.last_step or self.final.last_step, self.final.last_step)
        self.teacher_state = loaded.net.state_dict()
        if not cfg.select.root:
            raise InputError("compress.select.root is empty: give the selection benchmark's root folder")
        self._peaks: dict[str, float] = {}
        self.state_path = os.path.join(out_dir, "state.json")
        self.state = read_json(self.state_path) if os.path.isfile(self.state_path) else {
            "config": asdict(cfg), "teacher": os.path.abspath(teacher), "phases": []}

    # ---------------------------------------------------------------- helpers
    def path(self, relative: str) -> str:
        """Paths in state.json are relative to the run folder, so it can move."""
        return os.path.join(self.out_dir, relative)

    def peak(self, precision: str) -> float:
        """The machine's GEMM peak (GFLOP/s) at this precision, measured once per run."""
        from ..evaluation.speed import gemm_peak
        kind = "bf16" if precision == "bf16" else "fp32"
        if kind not in self._peaks:
            self._peaks[kind] = gemm_peak(kind)
        return self._peaks[kind]

    def plan(self, step: int) -> FDPlan:
        return self.final.at(step)

    def net_for(self, step: int) -> SiamNet:
        return SiamNet(FDChain(self.plan(step)), self.out_scale)

    @functools.cached_property
    def _sample(self) -> list[torch.Tensor]:
        from ..data.pairs import PairDataset
        ds = PairDataset(self.crops_dir, self.cfg.step.pairs, self.cfg.seed)
        n = min(self.cfg.sample_images, len(ds))
        idx = torch.linspace(0, len(ds) - 1, n).long().tolist()
        z, x = zip(*(ds[i] for i in idx))
        return [torch.stack(z).float(), torch.stack(x).float()]

    def sample(self) -> list[torch.Tensor]:
        """Fixed training crops for the inherit fits, read once: the exemplars and the
        search images of ``sample_images`` pairs spread over the training data."""
        return self._sample

    @functools.cached_property
    def bank(self) -> TeacherBank:
        """Random-region pairs of the training frames with the teacher's outputs, made once a run."""
        start = time.perf_counter()
        z, x = cut_pairs(training_frames(self.crops_dir), self.cfg.frames)
        bank = TeacherBank(z, x, self.teacher_net())
        print(f"distillation bank: {len(bank)} random-region pairs and the teacher's outputs "
              f"({time.perf_counter() - start:.0f} s)")
        return bank

    @functools.cached_property
    def _held_out(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return held_out_pairs(self.cfg.diagnose)

    @functools.cached_property
    def _teacher_outputs(self) -> Outputs:
        return outputs(self.teacher_net(), self._held_out)

    @functools.cached_property
    def _teacher_ready(self) -> dict[str, torch.Tensor]:
        net = self.net_for(0)
        net.load_state_dict(self.teacher_state)
        if "train" in (self.cfg.step.bn, self.cfg.finetune.bn) and identity_bns(net.backbone):
            changed = reexpress_identity_bns(net.backbone, self.sample()[1][:64])
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
        target = self.teacher_net().backbone if self.cfg.targets == "teacher" else None
        aim = "the teacher's" if target is not None else "the previous step's"
        if step % 2 and self.cfg.squeeze == "select" and layer < self.final.layers:
            info["fit_residual"] = init_selection(net.backbone, old.backbone, layer, sample, target, seed=self.cfg.seed)
            info["init"] = f"channels of conv{layer} selected for {aim} conv{layer + 1}"
        elif step % 2:
            info["fit_residual"] = init_hourglass(net.backbone, old.backbone, layer, sample, target, seed=self.cfg.seed)
            info["init"] = f"hourglass at conv{layer} onto {aim} conv{layer}"
        else:
            info["init"] = f"least-squares conv{layer + 1} onto {aim} conv{layer + 1}"
            info["fit_residual"] = init_narrowed(net.backbone, old.backbone, layer, sample, target, seed=self.cfg.seed)
            if self.cfg.refine_iters:
                info["init"] += f", refined with squeeze{layer} ({self.cfg.refine_iters} iterations)"
                info["refined_residual"] = refine_narrowed(net.backbone, old.backbone, layer, sample,
                                                           self.cfg.refine_iters, self.cfg.refine_lr,
                                                           seed=self.cfg.seed, teacher=target)
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
        if fine_tune and not train_cfg.epochs and index:   # nothing changes: the step's network and scores carry over
            self.carry_phase(index, name, step, phase_dir, start)
            return
        net, info = self.initial_net(index, step, fine_tune)
        trainable = net.backbone.set_trainable(fine_tune)
        teacher = self.teacher_net() if self.cfg.loss.needs_teacher else None
        projection = None
        if teacher is not None and self.cfg.loss.features and net.backbone.out_channels != teacher.backbone.out_channels:
            n = self.final.layers
            projection = output_projection(teacher.backbone, self.sample(), net.backbone.out_channels,
                                           self.final.squeeze_groups(n), student=net.backbone)
        bank = self.bank if self.cfg.data == "frames" and train_cfg.epochs else None
        trainer = DistillTrainer(net, train_cfg, self.crops_dir, phase_dir, meta={"phase": name},
                                 teacher=teacher, weights=self.cfg.loss, projection=projection, bank=bank)
        if self.cfg.init_candidate or not train_cfg.epochs:   # the fitted start competes with what training makes of it
            save_checkpoint(candidate_path(phase_dir, 0), net, epoch=0, phase=name)
        try:
            trainer.fit(resume=True)
        except TrainingDiverged as e:   # keep what was trained before it went wrong
            info["diverged"] = str(e)
            print(f"  {e}")
        epochs = [e for e in range(max(1, train_cfg.epochs - self.cfg.candidates + 1), train_cfg.epochs + 1)
                  if os.path.exists(candidate_path(phase_dir, e))]
        if os.path.exists(candidate_path(phase_dir, 0)):
            epochs.insert(0, 0)
        if not epochs:
            raise RuntimeError(f"{phase_dir}: {info.get('diverged', 'no epoch finished')}, and init_candidate is off")
        trained = time.perf_counter()
        if len(epochs) > 1 or self.cfg.select.score_single:
            candidates = [score_candidate(self.cfg.select, candidate_path(phase_dir, e), f"{name}_e{e}", phase_dir, e)
                          for e in epochs]
        else:
            candidates = [unscored(epochs[0])]
        select_seconds = time.perf_counter() - trained
        best = max(candidates, key=lambda c: c["score"])
        selected = os.path.join(phase_dir, "selected.pth")
        copy_file(candidate_path(phase_dir, best["epoch"]), selected)
        diagnosis = None
        if self._held_out is not None:
            diagnosis = diagnose(load_checkpoint(selected).net, self._teacher_outputs, self._held_out)
        throughput = [round(h["pairs_per_s"], 1) for h in trainer.history]
        share = None
        if throughput:   # is the loop bound by arithmetic? its GFLOP/s against the GEMM peak of its precision
            ran = None if teacher is None or bank is not None else teacher.backbone   # a bank ran it beforehand
            sizes = ((bank.z.shape[-1], bank.x.shape[-1]) if bank is not None else
                     (train_cfg.pairs.exemplar_sz, train_cfg.pairs.search_side))
            per_pair = distill_gflop_per_pair(net.backbone, ran, sizes)
            rate = sum(throughput) / len(throughput)
            from ..evaluation.speed import share_of_peak
            kind = "bf16" if trainer.precision == "bf16" else "fp32"
            self.peak(trainer.precision)
            fraction = share_of_peak(rate * per_pair, self._peaks, kind)
            share = {"gflop_per_pair": round(per_pair, 3), "gflops": round(rate * per_pair, 1),
                     "peak_gflops": round(self._peaks[kind], 1), "precision": trainer.precision,
                     "fraction": round(fraction, 3)}
            print(f"  training: {rate:.1f} pairs/s x {per_pair:.2f} GFLOP = {share['gflops']:.0f} GFLOP/s, "
                  f"{100 * share['fraction']:.0f}% of the {trainer.precision} GEMM peak ({share['peak_gflops']:.0f})")
        record = {"name": name, "step": step, "fine_tune": fine_tune, "status": "done",
                  "trainable": trainable, "init": info.get("init", "carried over"),
                  "fit_residual": info.get("fit_residual"), "refined_residual": info.get("refined_residual"),
                  "epochs": train_cfg.epochs,
                  "candidates": candidates, "selected": os.path.relpath(selected, self.out_dir),
                  "selected_epoch": best["epoch"],
                  "auc": best["auc"], "precision": best["precision"], "success_rate": best["success_rate"],
                  "ao": best.get("ao"), "diverged": info.get("diverged"), "diagnosis": diagnosis,
                  "pairs_per_s": throughput, "arithmetic": share,
                  "train_seconds": round(sum(h["seconds"] for h in trainer.history), 1),
                  "load_seconds": round(sum(h.get("load_seconds", 0.0) for h in trainer.history), 1),
                  "select_seconds": round(select_seconds, 1),
                  "seconds": round(time.perf_counter() - start, 1)}
        self.record(record)
        for e in range(0, train_cfg.epochs + 1):   # only the selected candidate is kept
            if os.path.exists(candidate_path(phase_dir, e)):
                os.remove(candidate_path(phase_dir, e))
        told = (f", embedding error {diagnosis['embedding_error']:.3f}, score-map correlation "
                f"{diagnosis['response_correlation']:.3f}") if diagnosis else ""
        scored = "" if best["auc"] is None else (f": AUC {best['auc']:.3f}, precision {best['precision']:.3f}, "
                                                 f"SR {best['success_rate']:.3f}")
        print(f"  selected epoch {best['epoch']}{scored}{told} ({record['seconds']:.0f} s)")

    def carry_phase(self, index: int, name: str, step: int, phase_dir: str, start: float) -> None:
        """A fine-tune of 0 epochs: the previous phase's selected network, as it was scored."""
        prev = self.state["phases"][index - 1]
        selected = os.path.join(phase_dir, "selected.pth")
        copy_file(self.path(prev["selected"]), selected)
        record = {**prev, "name": name, "step": step, "fine_tune": True, "init": "carried over (0 epochs)",
                  "trainable": [], "fit_residual": None, "refined_residual": None, "epochs": 0, "pairs_per_s": [],
                  "arithmetic": None, "selected": os.path.relpath(selected, self.out_dir),
                  "seconds": round(time.perf_counter() - start, 1)}
        self.record(record)

    def record(self, record: dict[str, Any]) -> None:
        """Put a finished phase in state.json (replacing an earlier record of it) and the log."""
        self.state["phases"] = [p for p in self.state["phases"] if p["name"] != record["name"]] + [record]
        write_json(self.state_path, self.state)
        write_log(self.state, self.cfg, self.out_dir)
