"""End-to-end distillation of a cut NanoTrack model against its teacher, early-stopped on held-out pairs.

The closed-form fits (``nano_fit``) match the teacher span by span on a few hundred pairs; the
errors they leave add up through the network. Here the whole cut model is trained to reproduce the
teacher's outputs (the backbone's features of both crops, the class logits and, where the teacher sees
the target, the log box sizes) on tracking pairs drawn afresh every epoch, so it never sees the same
pair twice. Both networks get the same augmented input (a mirror image, brightness and contrast
change), so the teacher's output stays the right answer. BatchNorm keeps the teacher's statistics
(frozen; its scale and shift train), since batches of 16 would estimate them badly.

After each epoch the held-out loss on fixed pairs from other scenes decides: the best epoch is kept,
and training stops after ``patience`` epochs without a better one. Every epoch leaves an atomic
checkpoint, so a stopped run resumes at the next epoch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import Config, param
from ..files import torch_save
from ..models.siamese import SiamModel

Pairs = tuple[np.ndarray, np.ndarray]   # exemplars N x 127 x 127 x 3, search crops N x 255 x 255 x 3 (uint8)


@dataclass
class FinetuneConfig(Config):
    """The distillation schedule."""

    epochs: int = param(12, ge=0)
    pairs: int = param(2048, ge=16)        # fresh training pairs an epoch
    batch: int = param(16, ge=1)
    lr: float = param(1.0e-4, gt=0)
    weight_decay: float = param(0.0, ge=0)
    patience: int = param(3, ge=1)         # epochs without a better held-out loss before stopping
    flip: float = param(0.5, ge=0, le=1)   # chance of mirroring a pair
    photometric: float = param(0.2, ge=0, le=1)   # brightness and contrast change, up to this fraction
    features: float = param(1.0, ge=0)     # loss weights
    cls: float = param(1.0, ge=0)
    loc: float = param(1.0, ge=0)


def augment(z: np.ndarray, x: np.ndarray, cfg: FinetuneConfig, rng: np.random.Generator) -> Pairs:
    """Each pair mirrored (both crops) with chance ``flip`` and given one brightness and contrast change."""
    z, x = z.astype(np.float32), x.astype(np.float32)
    for i in range(len(z)):
        if rng.random() < cfg.flip:
            z[i], x[i] = z[i, :, ::-1], x[i, :, ::-1]
        gain, shift = 1 + rng.uniform(-1, 1) * cfg.photometric, rng.uniform(-1, 1) * cfg.photometric * 64
        z[i] = np.clip(z[i] * gain + shift, 0, 255)
        x[i] = np.clip(x[i] * gain + shift, 0, 255)
    return z, x


def _tensor(model: SiamModel, a: np.ndarray) -> torch.Tensor:
    return model.normalise(torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float())


def _outputs(model: SiamModel, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    fz, fx = model.embed(z), model.embed(x)
    out = model.head.respond(model.head.prepare(fz), fx)
    return {"fz": fz, "fx": fx, "cls": out["cls"], "loc": out["loc"]}


def distill_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                 cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
    """The terms, each relative to the teacher's own spread so that their weights compare."""
    def rel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).square().mean() / b.var().clamp_min(1e-8)

    target = torch.softmax(teacher["cls"], 1)[:, 1:2]   # where the teacher sees the target
    log_s, log_t = student["loc"].clamp_min(1e-6).log(), teacher["loc"].clamp_min(1e-6).log()
    loc = ((log_s - log_t).square() * target).sum() / (target.sum() * log_t.shape[1]).clamp_min(1e-8)
    terms = {"features": (rel(student["fz"], teacher["fz"]) + rel(student["fx"], teacher["fx"])) / 2,
             "cls": rel(student["cls"], teacher["cls"]),
             "loc": loc / log_t.var().clamp_min(1e-8)}
    terms["total"] = cfg.features * terms["features"] + cfg.cls * terms["cls"] + cfg.loc * terms["loc"]
    return terms


@torch.no_grad()
def heldout_loss(student: SiamModel, teacher: SiamModel, pairs: Pairs, cfg: FinetuneConfig,
                 batch: int = 32) -> float:
    """The mean distillation loss on fixed pairs, no augmentation."""
    student.eval()
    total, n = 0.0, 0
    for i in range(0, len(pairs[0]), batch):
        z, x = _tensor(student, pairs[0][i:i + batch]), _tensor(student, pairs[1][i:i + batch])
        loss = distill_loss(_outputs(student, z, x), _outputs(teacher, z, x), cfg)["total"]
        total, n = total + float(loss) * len(z), n + len(z)
    return total / n


def _train_mode(model: nn.Module) -> None:
    """Training, with every BatchNorm on its running statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def finetune(student: SiamModel, teacher: SiamModel, draw: Callable[[int, int], Pairs], heldout: Pairs,
             cfg: FinetuneConfig, folder: str, progress: bool = True) -> dict:
    """Train ``student`` towards ``teacher``; ``draw(epoch, count)`` gives an epoch's training pairs.

    Resumes from ``folder/last.pth``; the best epoch's weights are loaded into ``student`` at the end and
    saved as ``folder/best.pth``. Returns the history: per epoch the training and held-out losses.
    """
    os.makedirs(folder, exist_ok=True)
    teacher = teacher.eval()   # its outputs are computed under no_grad
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    last, best_path = os.path.join(folder, "last.pth"), os.path.join(folder, "best.pth")
    state = {"epoch": 0, "history": [], "best": heldout_loss(student, teacher, heldout, cfg), "best_epoch": 0}
    if os.path.isfile(last):
        saved = torch.load(last, map_location="cpu", weights_only=False)
        student.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
    elif not os.path.isfile(best_path):
        torch_save(student.state_dict(), best_path)   # epoch 0: the fits alone
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        epoch = state["epoch"] + 1
        rng = np.random.default_rng(epoch)
        z_all, x_all = draw(epoch, cfg.pairs)
        order = rng.permutation(len(z_all))
        _train_mode(student)
        seen, running = 0, 0.0
        bar = tqdm(range(0, len(order), cfg.batch), desc=f"distil epoch {epoch}", unit="batch", disable=not progress)
        for i in bar:
            idx = order[i:i + cfg.batch]
            z, x = augment(z_all[idx], x_all[idx], cfg, rng)
            z, x = _tensor(student, z), _tensor(student, x)
            with torch.no_grad():
                want = _outputs(teacher, z, x)
            loss = distill_loss(_outputs(student, z, x), want, cfg)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen, running = seen + len(idx), running + loss.item() * len(idx)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        held = heldout_loss(student, teacher, heldout, cfg)
        state["history"].append({"epoch": epoch, "train": running / seen, "heldout": held})
        if held < state["best"]:
            state["best"], state["best_epoch"] = held, epoch
            torch_save(student.state_dict(), best_path)
        state["epoch"] = epoch
        torch_save({"model": student.state_dict(), "optimizer": opt.state_dict(), "state": state}, last)
        if progress:
            print(f"epoch {epoch}: training loss {running / seen:.4f}, held-out {held:.4f} "
                  f"(best {state['best']:.4f} at epoch {state['best_epoch']})")
    student.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
    return state
