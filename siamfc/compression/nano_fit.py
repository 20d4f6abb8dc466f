"""Closed-form Feature Distilling of a NanoTrack model: narrow its internal widths, refit each consumer.

For a keep-ratio ``r``, width by width in the order the model runs them (the backbone's expansions, then
each head tower's hidden widths), on calibration crops cut as the tracker cuts them:

1. run the student (the model as cut so far) and the teacher (the uncut model) over the width's span,
   from each one's own input there, and gather in float64 the moments of the consumer's input ``X``
   (student) against the target ``T``: the teacher's output at the end of the span (a block's output, or
   the consumer's BN output), less the student's own block input where a residual add follows;
2. keep ``r`` of the channels (rounded to a multiple of 8): by ``greedy`` forward selection of the
   channels whose least-squares reconstruction of ``T`` is best, or by ``energy`` (the channel's mean
   square times its consumer column's squared norm);
3. cut them out with torch-pruning (``nano_widths``), refit the Linears that read the width (the
   squeeze-excitation's first layer, per image) to the teacher's outputs, then refit the consumer and
   its BN as one affine map to ``T``.

Each fit is ridge regression pulled towards the weights it replaces (``ridge`` x the mean diagonal of the
Gram matrix), so with nothing cut (``r`` = 1) every fit returns the teacher's weights: the cut model
then *is* the teacher, to float32 rounding. The student's inputs carry every earlier cut, so each fit
also absorbs the errors made upstream.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from tqdm import tqdm

from ..models.parts.mobilenetv3 import InvertedResidual
from ..models.siamese import SiamModel
from .least_squares import Moments, affine, greedy_keep, phi_rows, ridge_towards, rows, set_affine
from .nano_depth import LayerDrop, drop_layers
from .nano_widths import PARTS, Width, dependency_graph, internal_widths, narrow

SELECTIONS = ("greedy", "energy")


@dataclass
class WidthFit:
    producer: str
    part: str
    size: int
    kept: int
    keep: list[int]        # the kept channels' indices in the teacher's width
    error_dropped: float   # relative RMS error of the span's output, the kept channels with the old weights
    error_fit: float       # ... after the refit


def kept_channels(size: int, rate: float, multiple: int = 8) -> int:
    """``rate`` of ``size`` channels, to the nearest multiple of ``multiple`` (at least one multiple)."""
    if rate >= 1:
        return size
    return min(size, max(multiple, multiple * int(rate * size / multiple + 0.5)))


def _bn_after(model: nn.Module, name: str) -> str | None:
    """The BatchNorm2d that directly follows module ``name`` in its parent Sequential, if any."""
    parent, _, idx = name.rpartition(".")
    seq = model.get_submodule(parent)
    if isinstance(seq, nn.Sequential) and idx.isdigit() and int(idx) + 1 < len(seq) \
            and isinstance(seq[int(idx) + 1], nn.BatchNorm2d):
        return f"{parent}.{int(idx) + 1}"
    return None


def _position(path: list[str], name: str) -> int:
    return next(i for i, p in enumerate(path) if name == p or name.startswith(p + "."))


class _Stream:
    """One chain of modules (the backbone, or a head branch) with the student's and teacher's batches
    cached at the input of module ``at``."""

    def __init__(self, path: list[str], student: list, teacher: list) -> None:
        self.path, self.student, self.teacher, self.at = path, student, teacher, 0

    def run(self, model: nn.Module, batch: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        for name in self.path[lo:hi]:
            batch = model.get_submodule(name)(batch)
        return batch

    def advance(self, nets: tuple[nn.Module, nn.Module], to: int) -> None:
        self.student = [self.run(nets[0], b, self.at, to) for b in self.student]
        self.teacher = [self.run(nets[1], b, self.at, to) for b in self.teacher]
        self.at = to


def _hooks(model: nn.Module, names: list[str], store: dict[str, torch.Tensor], output: bool) -> list:
    def grab(name: str) -> Callable:
        if output:   # a copy: an in-place activation (the gate's ReLU) would overwrite the output
            return lambda mod, args, out: store.__setitem__(name, out.clone())
        return lambda mod, args: store.__setitem__(name, args[0])
    return [model.get_submodule(n).register_forward_hook(grab(n)) if output
            else model.get_submodule(n).register_forward_pre_hook(grab(n)) for n in names]


def _streams(student: SiamModel, z: np.ndarray, x: np.ndarray, batch: int) -> dict[str, _Stream]:
    def images(a: np.ndarray) -> list[torch.Tensor]:
        return [student.normalise(torch.from_numpy(a[i:i + batch]).permute(0, 3, 1, 2).float())
                for i in range(0, len(a), batch)]

    imgs = images(z) + images(x)   # the same input for both: the normalisation is not cut
    path = [f"backbone.features.{i}" for i in range(len(student.backbone.features))]
    return {"backbone": _Stream(path, imgs, imgs)}


def _head_streams(backbone: _Stream, nets: tuple[SiamModel, SiamModel]) -> dict[str, _Stream]:
    backbone.advance(nets, len(backbone.path))
    out = {}
    for b, branch in enumerate(("cls", "loc")):
        inputs = []
        for feats, net in zip((backbone.student, backbone.teacher), nets):
            half = len(feats) // 2
            corr = getattr(net.head, f"corr_{branch}")
            inputs.append([corr(net.head.prepare(fz)[b], fx) for fz, fx in zip(feats[:half], feats[half:])])
        tower = getattr(nets[0].head, f"{branch}_tower")
        path = [f"head.{branch}_tower.{i}" for i in range(len(tower))] + [f"head.{branch}_pred"]
        out[branch] = _Stream(path, *inputs)
    return out


def _choose(first: Moments, consumer: nn.Conv2d, bn: nn.BatchNorm2d | None, k: int, select: str) -> torch.Tensor:
    if select == "greedy":
        return greedy_keep(first.g, first.c, k)
    energy = first.g.diagonal()[:-1] * (affine(consumer, bn)[:, :-1] ** 2).sum(0)
    return torch.sort(torch.topk(energy, k).indices).values


@torch.no_grad()
def _refit_linear(lin: nn.Linear, data: list[tuple[torch.Tensor, torch.Tensor]], keep: torch.Tensor,
                  ridge: float) -> None:
    """Per image: the kept channels' means (what the gate sees) -> the teacher's pre-activation."""
    phi = torch.cat([phi_rows(m[:, keep]) for m, _ in data])
    target = torch.cat([t.double() for _, t in data])
    fitted = ridge_towards(phi.T @ phi, phi.T @ target, torch.cat([lin.weight.double(), lin.bias.double()[:, None]], 1),
                           ridge)
    lin.weight.copy_(fitted[:, :-1])
    lin.bias.copy_(fitted[:, -1])


def _fit_width(nets: tuple[SiamModel, SiamModel], graph: tp.DependencyGraph, stream: _Stream, w: Width,
               rate: float, select: str, ridge: float) -> WidthFit:
    student, teacher = nets
    start, end = _position(stream.path, w.producer), _position(stream.path, w.consumer)
    bn_name = _bn_after(student, w.consumer)
    bn = student.get_submodule(bn_name) if bn_name else None
    if bn is not None and stream.path[end] == w.consumer:
        end += 1   # the consumer and its BN are one affine map; the target is the BN's output
    residual = isinstance(student.get_submodule(stream.path[end]), InvertedResidual) and \
        student.get_submodule(stream.path[end]).identity
    stream.advance(nets, start)
    got: dict[str, torch.Tensor] = {}
    want: dict[str, torch.Tensor] = {}

    def gather(moments: Moments, targets: list[torch.Tensor] | None) -> tuple[list[torch.Tensor], dict[str, list]]:
        """One pass over the batches: moments of the consumer's input against the targets (the teacher's,
        unless given), and each Linear's input with the teacher's output."""
        found, seen = [], {n: [] for n in w.linears}
        for i, (s, t) in enumerate(zip(stream.student, stream.teacher)):
            y = stream.run(teacher, t, start, end + 1) if targets is None else None
            stream.run(student, s, start, end + 1)
            if y is None:
                target = targets[i]
            else:
                target = y - got[stream.path[end]] if residual else y
                moments.ref += float((y.double() ** 2).sum())
            moments.add(phi_rows(got[w.consumer]), rows(target))
            found.append(target)
            for n in w.linears:
                seen[n].append((got[n], want.get(n)))
        return found, seen

    hooks = _hooks(student, [w.consumer, *w.linears, stream.path[end]], got, output=False)
    hooks += _hooks(teacher, list(w.linears), want, output=True)
    try:
        first = Moments()
        targets, linear_data = gather(first, None)
        consumer = student.get_submodule(w.consumer)
        keep = _choose(first, consumer, bn, kept_channels(w.size, rate), select)
        idx = torch.cat([keep, torch.tensor([w.size])])   # the kept channels and the shift
        error_dropped = first.pick(idx).error(affine(consumer, bn)[:, idx])
        narrow(graph, student, w, keep)
        for n in w.linears:
            _refit_linear(student.get_submodule(n), linear_data[n], keep, ridge)
        if w.linears:   # the gates changed: the consumer's input must be gathered again
            final = Moments()
            final.ref = first.ref
            gather(final, targets)
        else:
            final = first.pick(idx)
    finally:
        for h in hooks:
            h.remove()
    fitted = ridge_towards(final.g, final.c, affine(consumer, bn), ridge)
    set_affine(consumer, bn, fitted)
    return WidthFit(w.producer, w.part, w.size, len(keep), keep.tolist(), error_dropped, final.error(fitted))


@torch.no_grad()
def distill_nano(teacher: SiamModel, rate: float, z: np.ndarray, x: np.ndarray, parts: tuple[str, ...] = PARTS,
                 select: str = "greedy", ridge: float = 1e-3, batch: int = 32, progress: bool = True,
                 drop: int = 0) -> tuple[SiamModel, list[WidthFit], list[LayerDrop]]:
    """A copy of ``teacher`` with ``rate`` of every internal width of ``parts`` kept and its consumers
    refit on the calibration crops ``z`` (N x 127 x 127 x 3) and ``x`` (N x 255 x 255 x 3), uint8 RGB pairs;
    with ``drop``, that many layers of each head tower go first (``nano_depth``), before the towers' widths."""
    if not 0 < rate <= 1:
        raise ValueError(f"the keep-ratio must be in (0, 1], got {rate}")
    if select not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got '{select}'")
    teacher = teacher.eval()
    student = copy.deepcopy(teacher).eval()
    graph = dependency_graph(student)
    nets = (student, teacher)
    streams = _streams(student, z, x, batch)
    fits, drops = [], []
    for in_head in (False, True):
        if in_head:
            streams.update(_head_streams(streams["backbone"], nets))
            if drop:
                drops = drop_layers(nets, streams, drop, ridge)
                graph = dependency_graph(student)   # the towers' widths changed: a dropped layer's two widths are one
        widths = [w for w in internal_widths(student, graph)
                  if w.part in parts and w.producer.startswith("head.") == in_head]
        for w in tqdm(widths, desc=f"fitting r={rate:g}" + (" (head)" if in_head else ""), unit="width",
                      disable=not progress):
            branch = "backbone" if not in_head else w.producer.split(".")[1].split("_")[0]
            fits.append(_fit_width(nets, graph, streams[branch], w, rate, select, ridge))
    return student, fits, drops
