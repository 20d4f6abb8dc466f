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
from ..data.frames import FramePairConfig, cut_pairs, training_frames
from ..errors import InputError
from ..evaluation.benchmarks import BENCHMARK_NAMES
from ..evaluation import evaluate
from ..files import copy_file, read_json, write_json, write_text
from ..models.batchnorm import identity_bns, reexpress_identity_bns
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.fd import SQUEEZE_GROUPINGS, FDChain, FDPlan
from ..models.net import SiamNet
from ..tracking.backends import BACKENDS
from ..tracking.factory import TrackerSpec
from ..training.bank import TeacherBank
from ..training.distill import DistillTrainer, LossWeights, distill_gflop_per_pair
from ..training.trainer import TrainConfig, TrainingDiverged, epoch_path
from .diagnosis import DiagnoseConfig, diagnose, held_out_pairs, plot_diagnosis
from .squeezes import SQUEEZES, init_hourglass, init_selection, output_projection
from .transitions import TARGETS, TRANSITIONS, carry_over, init_narrowed, refine_narrowed


# Distillation from the teacher: Adam at a small lr, BN statistics kept (SiamFC_VID's are folded into identities).
DISTILL = dict(batch_size=16, num_workers=0, optimizer="adam", weight_decay=0.0, initial_lr=5e-5, ultimate_lr=2e-5,
               bn="frozen")


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
    tail_names: list[str] = param(factory=list)     # sequences whose last `tail` (kept out of training) is tracked too
    tail: float = param(0.0, ge=0, le=0.9)


@dataclass
class CompressConfig(Config):
    """One compression. The defaults are the recipe measured best on held-out real footage
    (docs/training-and-compression.md, "Ablations"): closed-form steps aimed at the teacher's activations,
    channel-selection squeezes grouped as the next conv, and fine-tunes alone training, by distillation
    on random regions of the training frames. Configs set the data, the budget and the selection set;
    the paper's own recipe is ``transition: fresh, grouping: conv, targets: previous, squeeze: pca,
    data: pairs, loss: {track: 1}`` with trained steps."""

    rates: list[float] = param(factory=lambda: [0.3], gt=0, le=1)   # relative to the teacher: one, or one a layer
    grouping: str = param("aligned", choices=SQUEEZE_GROUPINGS)  # squeeze/combine groups: conv (paper) | aligned
    transition: str = param("inherit", choices=TRANSITIONS)      # even-step initialisation: fresh (paper) | inherit
    targets: str = param("teacher", choices=TARGETS)             # what the inherit fits reproduce
    squeeze: str = param("select", choices=SQUEEZES)             # inherit's odd steps: PCA hourglass | channel selection
    loss: LossWeights = param(factory=lambda: LossWeights(track=0.0, response=1.0, features=1.0))
    data: str = param("frames", choices=("pairs", "frames"))     # training pairs: target-centred crops | random
                                                                 # regions of the frames, teacher outputs cached
    frames: FramePairConfig = param(factory=FramePairConfig)
    candidates: int = param(1, ge=1)                # newest epochs of a phase that compete for selection
    init_candidate: bool = True                     # the phase's starting network (epoch 0) competes too
    sample_images: int = param(128, ge=1)           # pairs (exemplar and search crop) the inherit fits read
    refine_iters: int = param(0, ge=0)              # inherit: local refinement of each even step (0: off)
    refine_lr: float = param(1e-4, gt=0)
    step: TrainConfig = param(factory=lambda: TrainConfig(epochs=0, **DISTILL))   # the fit alone
    finetune: TrainConfig = param(factory=lambda: TrainConfig(epochs=2, guard=3.0, **DISTILL))
    select: SelectConfig = param(factory=SelectConfig)
    diagnose: DiagnoseConfig = param(factory=DiagnoseConfig)
    seed: int = param(0, ge=0)
    last_step: int = param(0, ge=0)                 # stop after this step (0: all; the transform needs all)

    def check(self) -> None:
        from ..config import ConfigError
        if self.data == "frames" and self.loss.track:
            raise ConfigError("CompressConfig.data", "random-region pairs have no labels: set loss.track to 0")


def phases(last_step: int) -> list[tuple[str, int, bool]]:
    """(name, step, fine_tune) for the phases in order: 2 per step."""
    out = []
    for step in range(1, last_step + 1):
        out += [(f"step{step}", step, False), (f"finetune{step}", step, True)]
    return out


def _throughput(phase: dict[str, Any]) -> str:
    rate, share = phase.get("pairs_per_s") or [], phase.get("arithmetic")
    if not rate:
        return "-"
    text = f"{sum(rate) / len(rate):.1f}"
    return f"{text} ({100 * share['fraction']:.0f}% {share['precision']})" if share else text


def candidate_path(phase_dir: str, epoch: int) -> str:
    """A phase's candidate: its starting network (epoch 0) or an epoch checkpoint."""
    return os.path.join(phase_dir, "start.pth") if epoch == 0 else epoch_path(phase_dir, epoch)


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
        candidates = [self.score(phase_dir, name, e) for e in epochs]
        select_seconds = time.perf_counter() - trained
        best = max(candidates, key=lambda c: c["score"])
        selected = os.path.join(phase_dir, "selected.pth")
        copy_file(candidate_path(phase_dir, best["epoch"]), selected)
        diagnosis = None
        if self._held_out is not None:
            diagnosis = diagnose(load_checkpoint(selected).net, self.teacher_net(), self._held_out)
        throughput = [round(h["pairs_per_s"], 1) for h in trainer.history]
        share = None
        if throughput:   # is the loop bound by arithmetic? its GFLOP/s against the GEMM peak of its precision
            ran = None if teacher is None or bank is not None else teacher.backbone   # a bank ran it beforehand
            sizes = ((bank.z.shape[-1], bank.x.shape[-1]) if bank is not None else
                     (train_cfg.pairs.exemplar_sz, train_cfg.pairs.instance_sz - 2 * train_cfg.pairs.margin))
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
        print(f"  selected epoch {best['epoch']}: AUC {best['auc']:.3f}, precision {best['precision']:.3f}, "
              f"SR {best['success_rate']:.3f}{told} ({record['seconds']:.0f} s)")

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
        self.write_log()

    def score(self, phase_dir: str, name: str, epoch: int) -> dict[str, Any]:
        """The candidate's selection score over the held-out sequences and, where set, the
        held-out tails of the training sequences."""
        sel = self.cfg.select
        spec = TrackerSpec("siamfc", candidate_path(phase_dir, epoch), sel.backend, name=f"{name}_e{epoch}")
        runs = [evaluate(spec, sel.benchmark, sel.root, os.path.join(phase_dir, "select"), sel.workers,
                         self.selection_sequences(), segment=sel.segment)]
        if sel.tail and sel.tail_names:
            runs.append(evaluate(spec, sel.benchmark, sel.root, os.path.join(phase_dir, "select_tails"), sel.workers,
                                 list(sel.tail_names), tails=sel.tail))
        # the held-out videos and the tails weigh the same: the tails outnumber the videos, but
        # they come from videos training saw, and so hide a loss the videos show
        mean = {k: sum(r[f"mean_{k}"] for r in runs) / len(runs) for k in ("auc", "precision", "success_rate")}
        out = {"epoch": epoch, "auc": mean["auc"], "precision": mean["precision"],
               "success_rate": mean["success_rate"], "ao": runs[0].get("ao"),
               "sequences": sum(len(r["sequences"]) for r in runs)}
        out["score"] = selection_score({f"mean_{k}": v for k, v in mean.items()})
        if len(runs) > 1:   # the two parts apart, to see whether they agree
            out["parts"] = {"held_out": runs[0]["mean_auc"], "tails": runs[1]["mean_auc"]}
        return out

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
                 f"targets: {self.cfg.targets}, calibration pairs: {self.cfg.sample_images}, "
                 f"loss: {asdict(self.cfg.loss)}  ",
                 f"selection: {self.cfg.select.benchmark} at `{self.cfg.select.root}`"
                 f"{f' in {self.cfg.select.segment}-frame segments' if self.cfg.select.segment else ', whole sequences'}, "
                 "score = 0.4 AUC + 0.4 precision + 0.2 SR  ",
                 f"diagnosis: {self.cfg.diagnose.pairs} held-out pairs from `{self.cfg.diagnose.crops}`; embedding "
                 "error after the best orthogonal map onto the teacher's, relative to its energy" if self.cfg.diagnose.crops
                 else "diagnosis: off (no held-out crops given)", "",
                 "| phase | init | fit residual | candidates (epoch: score) | chosen | held-out AUC | precision | SR "
                 "| embedding error | score-map corr. | pairs/s (share of GEMM peak) | time (s) |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in self.state["phases"]:
            cands = ", ".join(f"{c['epoch']}: {c['score']:.3f}" for c in p["candidates"])
            d = p.get("diagnosis") or {}
            fit = p.get("refined_residual") if p.get("refined_residual") is not None else p.get("fit_residual")
            lines.append(f"| {p['name']} | {p['init']} | {'-' if fit is None else f'{fit:.3f}'} | {cands} | "
                         f"{p['selected_epoch']} | {p['auc']:.3f} | {p['precision']:.3f} | {p['success_rate']:.3f} | "
                         f"{d.get('embedding_error', '-')} | {d.get('response_correlation', '-')} | "
                         f"{_throughput(p)} | {p['seconds']:.0f} |")
        plot = plot_diagnosis(self.state["phases"], os.path.join(self.out_dir, "diagnosis.png"),
                              f"{os.path.basename(self.state['teacher'])} at {self.cfg.rates}: held-out, per phase")
        if plot:
            lines += ["", "![diagnosis](diagnosis.png)"]
        write_text(os.path.join(self.out_dir, "compress_log.md"), "\n".join(lines) + "\n")
