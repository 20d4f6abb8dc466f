"""End-to-end distillation of a compressed tracker against its teacher, early-stopped on held-out pairs.

The closed-form fits (``nano_fit``, ``squeezes``, ``transitions``) match the teacher span by span on a
few hundred crops; the errors they leave add up through the network. Here the whole compressed network
is trained to reproduce the teacher's outputs on tracking pairs drawn afresh every epoch, so it never
sees the same pair twice: the score map (SiamFC's response, an anchor-free head's class logits), the
log box sizes where the teacher sees the target (a head that regresses boxes), and the embeddings of
both crops where student and teacher have the same width. Both networks get the same augmented input
(a mirror image, brightness and contrast change), so the teacher's output stays the right answer.
BatchNorm keeps its statistics (frozen; its scale and shift train): batches of 16 would estimate them
badly.

After each epoch the held-out loss on fixed pairs from other scenes decides: the best epoch is kept,
and training stops after ``patience`` epochs without a better one. Every epoch leaves an atomic
checkpoint, so a stopped run resumes at the next epoch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import Config, param
from ..files import torch_save
from ..models.net import SiamNet
from ..models.siamese import SiamModel
from ..training.lr_groups import relative_groups

Pairs = tuple[np.ndarray, np.ndarray]   # exemplars N x 127 x 127 x 3, search crops N x 255 x 255 x 3 (uint8)


@dataclass
class FinetuneConfig(Config):
    """The distillation schedule."""

    epochs: int = param(12, ge=0)
    pairs: int = param(2048, ge=16)        # fresh training pairs an epoch
    batch: int = param(16, ge=1)
    lr: float = param(1.0e-4, gt=0)
    relative_lr: float = param(0.0, ge=0)  # > 0: each tensor's lr is this x its RMS at the start, in place of lr
    weight_decay: float = param(0.0, ge=0)
    patience: int = param(3, ge=1)         # epochs without a better held-out loss before stopping
    flip: float = param(0.5, ge=0, le=1)   # chance of mirroring a pair
    photometric: float = param(0.2, ge=0, le=1)   # brightness and contrast change, up to this fraction
    features: float = param(1.0, ge=0)     # loss weights
    score: float = param(1.0, ge=0)
    score_kl: float = param(0.0, ge=0)     # KL of the maps' spatial softmax: where the peak is, not the level
    kl_temperature: float = param(1.0, gt=0)   # in units of each teacher map's own s.d.
    box: float = param(1.0, ge=0)


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


def _model_outputs(model: SiamModel, z: np.ndarray, x: np.ndarray) -> dict[str, torch.Tensor]:
    z, x = (model.normalise(torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float()) for a in (z, x))
    fz, fx = model.embed(z), model.embed(x)
    out = model.head.respond(model.head.prepare(fz), fx)
    return {"fz": fz, "fx": fx, "score": out["cls"], **({"box": out["loc"]} if "loc" in out else {})}


def _chain_outputs(model: SiamNet, z: np.ndarray, x: np.ndarray) -> dict[str, torch.Tensor]:
    z, x = (torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() for a in (z, x))   # raw RGB 0-255
    score, fz, fx = model(z, x, features=True)
    return {"fz": fz, "fx": fx, "score": score}


# network class -> what it outputs for a batch of pairs; a new kind of network is one more entry
READERS: dict[type, Callable[..., dict[str, torch.Tensor]]] = {SiamModel: _model_outputs, SiamNet: _chain_outputs}


def outputs(model: torch.nn.Module, z: np.ndarray, x: np.ndarray) -> dict[str, torch.Tensor]:
    """``model``'s distilled outputs (``fz``, ``fx``, ``score``, perhaps ``box``) for pairs of RGB crops
    (N x H x W x 3, 0-255)."""
    kind = next((k for k in type(model).__mro__ if k in READERS), None)
    if kind is None:
        raise TypeError(f"no distillation outputs for a {type(model).__name__}; add one to READERS")
    return READERS[kind](model, z, x)


def spatial_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of each map's softmax over positions (N x C x H x W, per map and channel), both
    divided by ``temperature`` x the teacher map's s.d.: the tracker takes the peak of a map shifted and
    scaled, so the loss weighs where the mass sits, not the map's offset."""
    t, s = teacher.flatten(2), student.flatten(2)
    scale = t.std(dim=2, keepdim=True).clamp_min(1e-8) * temperature
    log_t, log_s = torch.log_softmax(t / scale, 2), torch.log_softmax(s / scale, 2)
    return (log_t.exp() * (log_t - log_s)).sum(2).mean()


def distill_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                 cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
    """The terms, each relative to the teacher's own spread so that their weights compare."""
    def rel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).square().mean() / b.var().clamp_min(1e-8)

    terms = {"score": rel(student["score"], teacher["score"])}
    if cfg.score_kl:
        terms["score_kl"] = spatial_kl(student["score"], teacher["score"], cfg.kl_temperature)
    if student["fz"].shape == teacher["fz"].shape:   # a narrower embedding is judged by its score map alone
        terms["features"] = (rel(student["fz"], teacher["fz"]) + rel(student["fx"], teacher["fx"])) / 2
    if "box" in teacher:
        target = torch.softmax(teacher["score"], 1)[:, 1:2]   # where the teacher sees the target
        log_s, log_t = student["box"].clamp_min(1e-6).log(), teacher["box"].clamp_min(1e-6).log()
        box = ((log_s - log_t).square() * target).sum() / (target.sum() * log_t.shape[1]).clamp_min(1e-8)
        terms["box"] = box / log_t.var().clamp_min(1e-8)
    terms["total"] = sum(getattr(cfg, k) * v for k, v in terms.items())
    return terms


@torch.no_grad()
def heldout_loss(student: torch.nn.Module, teacher: torch.nn.Module, pairs: Pairs, cfg: FinetuneConfig,
                 batch: int = 32) -> float:
    """The mean distillation loss on fixed pairs, no augmentation."""
    student.eval()
    total, n = 0.0, 0
    for i in range(0, len(pairs[0]), batch):
        z, x = pairs[0][i:i + batch], pairs[1][i:i + batch]
        loss = distill_loss(outputs(student, z, x), outputs(teacher, z, x), cfg)["total"]
        total, n = total + float(loss) * len(z), n + len(z)
    return total / n


def param_groups(model: nn.Module, cfg: FinetuneConfig) -> list[dict[str, Any]]:
    """The optimiser's groups: one lr for all, or each tensor's own (training/lr_groups.py)."""
    if cfg.relative_lr:
        return relative_groups(model, cfg.relative_lr)
    return [{"params": list(model.parameters()), "lr": cfg.lr}]


def _train_mode(model: nn.Module) -> None:
    """Training, with every BatchNorm on its running statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def finetune(student: torch.nn.Module, teacher: torch.nn.Module, draw: Callable[[int, int], Pairs], heldout: Pairs,
             cfg: FinetuneConfig, folder: str, progress: bool = True) -> dict[str, Any]:
    """Train ``student`` towards ``teacher``; ``draw(epoch, count)`` gives an epoch's training pairs.

    Resumes from ``folder/last.pth``; the best epoch's weights are loaded into ``student`` at the end and
    saved as ``folder/best.pth``. Returns the history: per epoch the training and held-out losses.
    """
    os.makedirs(folder, exist_ok=True)
    teacher = teacher.eval()   # its outputs are computed under no_grad
    opt = torch.optim.Adam(param_groups(student, cfg), weight_decay=cfg.weight_decay)
    last, best_path = os.path.join(folder, "last.pth"), os.path.join(folder, "best.pth")
    if os.path.isfile(last):
        saved = torch.load(last, map_location="cpu", weights_only=False)
        student.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
    else:   # epoch 0: the network as given (a best.pth without last.pth is from another run)
        start = heldout_loss(student, teacher, heldout, cfg)
        state = {"epoch": 0, "history": [{"epoch": 0, "train": None, "heldout": start}], "best": start,
                 "best_epoch": 0}
        torch_save(student.state_dict(), best_path)
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
            with torch.no_grad():
                want = outputs(teacher, z, x)
            loss = distill_loss(outputs(student, z, x), want, cfg)["total"]
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
