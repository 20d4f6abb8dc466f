"""The SiamFC training loop.

SGD with momentum, an lr decaying exponentially per epoch, mixed precision (bf16
autocast on CPUs with native bf16, AMP on CUDA), channels-last tensors and DDP
under torchrun. After every epoch rank 0 writes one checkpoint atomically with
model, optimizer, scheduler, epoch, RNG state and the loss history; ``fit``
resumes from the newest one and replays the remaining epochs exactly.
"""
from __future__ import annotations

import functools
import glob
import math
import os
import re
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from ..config import Config, param
from ..data.pairs import PairConfig, PairDataset
from ..errors import InputError
from ..files import torch_save, write_text
from ..models.backbone import TOTAL_STRIDE
from ..models.checkpoint import checkpoint_payload
from ..models.net import SiamNet
from .distributed import DistEnv, setup
from .lr_groups import relative_groups
from .precision import PRECISIONS, choose_precision
from .heldout import HeldOutPairs
from .losses import balanced_loss, logistic_labels



@dataclass
class TrainConfig(Config):
    epochs: int = param(50, ge=0)
    batch_size: int = param(8, ge=1)
    num_workers: int = param(2, ge=0)
    initial_lr: float = param(1e-2, gt=0)
    ultimate_lr: float = param(1e-5, gt=0)
    weight_decay: float = param(5e-4, ge=0)
    momentum: float = param(0.9, ge=0, le=1)
    optimizer: str = param("sgd", choices=("sgd", "adam"))   # adam suits distillation with frozen BN
    relative_lr: float = param(0.0, ge=0)       # > 0: each tensor's lr is this x its RMS at the start, in
                                                # place of initial_lr (training/lr_groups.py); the schedule scales it
                                                # by ultimate_lr / initial_lr over the epochs
    r_pos: float = param(16, ge=0)
    r_neg: float = param(0, ge=0)
    precision: str = param("auto", choices=PRECISIONS)
    bn: str = param("train", choices=("train", "frozen"))   # frozen: BN keeps its statistics (eval mode)
    channels_last: bool = True
    seed: int = param(0, ge=0)
    keep_checkpoints: int = param(3, ge=0)      # newest epoch checkpoints kept; 0 keeps all
    guard: float = param(0.0, ge=0)             # stop when the loss (mean of 20 batches) passes this many
                                                # times its starting level: a divergence, finite or not (0: off)
    threads: int = param(0, ge=0)               # torch threads per process; 0 = all cores / processes
    clip_grad: float = param(0.0, ge=0)         # max gradient norm (0: no clipping)
    warmup_epochs: int = param(0, ge=0)         # lr rises from warmup_lr to initial_lr over these, then decays
    warmup_lr: float = param(1e-3, gt=0)
    pairs: PairConfig = param(factory=PairConfig)
    heldout: str = param("", path="dir")        # cropped held-out sequences: each epoch's loss and peak hit rate
    heldout_pairs: int = param(200, ge=1)       # on this many of their pairs go in train_log.csv (training.heldout)


def lr_factor(cfg: TrainConfig):
    """The lr of epoch ``e`` (0-based) over initial_lr: a linear warm-up from warmup_lr, then a
    log-linear (exponential) decay to ultimate_lr at the last epoch, as SiamFC and pysot schedule it."""
    warm, decay = cfg.warmup_epochs, max(cfg.epochs - cfg.warmup_epochs, 1)
    gamma = (cfg.ultimate_lr / cfg.initial_lr) ** (1.0 / decay)

    def factor(e: int) -> float:
        if e < warm:
            start = cfg.warmup_lr / cfg.initial_lr
            return start + (1 - start) * e / warm
        return gamma ** (e - warm)
    return factor


class TrainingDiverged(RuntimeError):
    """The loss guard stopped a run; the epochs finished before stay on disk."""


def epoch_path(out_dir: str, epoch: int) -> str:
    return os.path.join(out_dir, "checkpoints", f"epoch_{epoch:03d}.pth")


def finished_epochs(out_dir: str) -> list[int]:
    paths = glob.glob(os.path.join(out_dir, "checkpoints", "epoch_*.pth"))
    return sorted(int(re.search(r"epoch_(\d+)\.pth$", p).group(1)) for p in paths)


class Trainer:
    """Trains ``net`` (all parameters with ``requires_grad``) on cropped pairs.

    Subclasses extend :meth:`loss` (compression adds distillation).
    """

    def __init__(self, net: SiamNet, cfg: TrainConfig, crops_dir: str, out_dir: str,
                 env: DistEnv | None = None, meta: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.env = env or setup()
        self.out_dir = out_dir
        self.meta = meta or {}
        self.device = self.env.device
        if cfg.threads or self.env.distributed:
            cores = os.cpu_count() or 1
            torch.set_num_threads(cfg.threads or max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
        choice = choose_precision(cfg.precision, self.device, net)
        self.precision = choice.precision
        self.meta = {**self.meta, "precision": choice.precision, "precision_reason": choice.reason}
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.net = net.to(self.device, memory_format=self.memory_format)
        self.model: nn.Module = self.net
        if self.env.distributed:
            self.model = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.dataset = PairDataset(crops_dir, cfg.pairs, cfg.seed)
        params = [p for p in self.net.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters")
        self.optimizer = self.make_optimizer(params)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(cfg))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.history: list[dict[str, float]] = []
        self._labels: dict[tuple[int, ...], torch.Tensor] = {}

    # ------------------------------------------------------------ pieces
    def make_optimizer(self, params: list) -> torch.optim.Optimizer:
        """SGD with momentum or Adam over ``params`` (tensors or param-group dicts); with ``relative_lr`` each
        tensor at its own lr."""
        cfg = self.cfg
        if cfg.relative_lr:   # each given group's lr, over initial_lr, scales its tensors' relative lrs
            given = [g for g in params if isinstance(g, dict)] or [{"params": list(params)}]
            params = relative_groups(self.net, cfg.relative_lr,
                                     [{"params": g["params"], "scale": g.get("lr", cfg.initial_lr) / cfg.initial_lr}
                                      for g in given])
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.initial_lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.initial_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def set_mode(self) -> None:
        """Train mode; with ``bn: frozen`` BN keeps its statistics (its affine parameters still train)."""
        self.model.train()
        if self.cfg.bn == "frozen":
            for m in self.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def autocast(self):
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype)
        return nullcontext()

    def labels(self, responses: torch.Tensor) -> torch.Tensor:
        key = tuple(responses.shape[-2:])
        if key not in self._labels:
            self._labels[key] = logistic_labels(key[0], self.cfg.r_pos, self.cfg.r_neg,
                                                TOTAL_STRIDE).to(self.device)
        return self._labels[key]

    def loss(self, z: torch.Tensor, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        responses = self.model(z, x)
        return balanced_loss(responses, self.labels(responses))

    def loader(self, epoch: int) -> DataLoader:
        self.dataset.epoch = epoch
        if self.env.distributed:
            sampler = DistributedSampler(self.dataset, self.env.world_size, self.env.rank,
                                         shuffle=True, seed=self.cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(self.dataset, generator=torch.Generator().manual_seed(
                self.cfg.seed * 100_003 + epoch))
        return DataLoader(self.dataset, self.cfg.batch_size, sampler=sampler,
                          num_workers=self.cfg.num_workers, drop_last=True,
                          pin_memory=self.device.type == "cuda")

    @functools.cached_property
    def heldout(self) -> HeldOutPairs:
        return HeldOutPairs(self.cfg.heldout, self.cfg.heldout_pairs)

    # ------------------------------------------------------------ state
    def payload(self, **meta: Any) -> dict[str, Any]:
        """The checkpoint of the network being trained (subclasses with other networks override)."""
        return checkpoint_payload(self.net, **meta)

    def state(self, epoch: int) -> dict[str, Any]:
        payload = self.payload(epoch=epoch, config=asdict(self.cfg), history=self.history, **self.meta)
        payload.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                       scaler=self.scaler.state_dict(), rng=torch.get_rng_state())
        return payload

    def restore(self, path: str) -> int:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(obj["state_dict"])
        self.optimizer.load_state_dict(obj["optimizer"])
        self.scheduler.load_state_dict(obj["scheduler"])
        self.scaler.load_state_dict(obj["scaler"])
        torch.set_rng_state(obj["rng"])
        self.history = list(obj["meta"]["history"])
        return int(obj["meta"]["epoch"])

    def write_log(self) -> None:
        cols = ["epoch", "lr", "loss", "pairs_per_s", "seconds", "load_seconds"]
        if self.cfg.heldout:
            cols += ["heldout_loss", "heldout_peak"]
        rows = [",".join(cols)] + [",".join(f"{h.get(c, float('nan')):.6g}" for c in cols) for h in self.history]
        write_text(os.path.join(self.out_dir, "train_log.csv"), "\n".join(rows) + "\n")

    # ------------------------------------------------------------ loop
    def fit(self, resume: bool = True) -> list[str]:
        """Train up to ``cfg.epochs``; returns the epoch checkpoints written or found."""
        done = finished_epochs(self.out_dir)
        if done and not resume:
            raise InputError(f"{self.out_dir}: already holds epoch checkpoints; resume or use a new --out")
        start = self.restore(epoch_path(self.out_dir, done[-1])) if done else 0
        for epoch in range(start + 1, self.cfg.epochs + 1):
            self.train_epoch(epoch)
        return [epoch_path(self.out_dir, e) for e in finished_epochs(self.out_dir)]

    def train_epoch(self, epoch: int) -> None:
        self.set_mode()
        first = self.optimizer.param_groups[0]
        # with relative_lr the log shows it (times the schedule), not one tensor's own lr
        lr = first["lr"] * (self.cfg.relative_lr / first["initial_lr"] if self.cfg.relative_lr else 1.0)
        total, steps, pairs, waited = 0.0, 0, 0, 0.0
        recent: list[float] = []
        start = time.perf_counter()
        ready = start
        bar = tqdm(self.loader(epoch), desc=f"epoch {epoch}/{self.cfg.epochs}", unit="batch",
                   disable=not self.env.is_main, leave=False)
        for z, x, *extra in bar:   # extra: what a subclass's dataset adds (the bank's indices)
            waited += time.perf_counter() - ready   # the time spent waiting on the data, not computing
            value = self.step(z, x, *extra, where=f"epoch {epoch}")
            recent = (recent + [value])[-20:]
            self.check_guard(epoch, recent)
            total += value
            steps += 1
            pairs += len(z) * self.env.world_size
            bar.set_postfix(loss=f"{total / steps:.4f}")
            ready = time.perf_counter()
        self.scheduler.step()
        seconds = time.perf_counter() - start
        self.history.append({"epoch": epoch, "lr": lr, "loss": total / max(steps, 1),
                             "pairs_per_s": pairs / seconds, "seconds": seconds, "load_seconds": waited})
        if self.cfg.heldout and self.env.is_main:   # after the timing: it is measurement, not training
            self.history[-1].update(self.heldout.score(self.net, self.cfg.r_pos))
        if self.env.is_main:
            torch_save(self.state(epoch), epoch_path(self.out_dir, epoch))
            self.write_log()
            self.prune()
            tqdm.write(f"epoch {epoch}: loss {total / max(steps, 1):.4f}, lr {lr:.2e}, "
                       f"{pairs / seconds:.1f} pairs/s")
        self.env.barrier()

    def step(self, z: torch.Tensor, x: torch.Tensor, *extra: torch.Tensor, where: str = "") -> float:
        """One optimiser step on a batch of uint8 or float crops; returns its loss."""
        z = z.to(self.device, non_blocking=True).float().contiguous(memory_format=self.memory_format)
        x = x.to(self.device, non_blocking=True).float().contiguous(memory_format=self.memory_format)
        with self.autocast():
            loss = self.loss(z, x, *extra)
        value = loss.detach().item()
        if not math.isfinite(value):   # stop before a non-finite step reaches the weights
            raise RuntimeError(f"{self.out_dir}: training diverged at {where} (loss {value}); "
                               f"lower the learning rate ({self.optimizer.param_groups[0]['lr']:g})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value

    def check_guard(self, epoch: int, recent: list[float]) -> None:
        """Raise :class:`TrainingDiverged` once the recent loss is ``guard`` x its starting level
        (the first epoch's mean, or the first 20 batches' while that epoch runs)."""
        if not self.cfg.guard or len(recent) < 20:
            return
        if self.history:
            start = self.history[0]["loss"]
        else:
            start = self.__dict__.setdefault("_start_loss", sum(recent) / len(recent))
        level = sum(recent) / len(recent)
        if level > self.cfg.guard * start:
            raise TrainingDiverged(f"{self.out_dir}: the loss rose from {start:.4g} to {level:.4g} in epoch {epoch} "
                                   f"(guard {self.cfg.guard:g}x); lower the learning rate")

    def prune(self) -> None:
        keep = self.cfg.keep_checkpoints
        if keep > 0:
            for e in finished_epochs(self.out_dir)[:-keep]:
                os.remove(epoch_path(self.out_dir, e))

    def save_final(self, path: str) -> None:
        if self.env.is_main:
            torch_save(self.payload(epoch=self.cfg.epochs, config=asdict(self.cfg), **self.meta), path)
        self.env.barrier()


def train_siamfc(cfg: TrainConfig, crops_dir: str, out_dir: str, resume: bool = False,
                 device: str | None = None) -> str:
    """Train the full-width SiamFC (the teacher) and write ``out_dir/model.pth``."""
    from ..models.checkpoint import build_net

    env = setup(device)
    torch.manual_seed(cfg.seed)
    return fit_and_save(Trainer(build_net(), cfg, crops_dir, out_dir, env), resume)


def fit_and_save(trainer: Trainer, resume: bool) -> str:
    """Train, write ``out_dir/model.pth``, and leave the process group however it ends."""
    from .distributed import teardown

    try:
        trainer.fit(resume)
        final = os.path.join(trainer.out_dir, "model.pth")
        trainer.save_final(final)
    finally:
        teardown(trainer.env)
    return final
