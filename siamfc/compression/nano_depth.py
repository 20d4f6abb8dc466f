"""Fewer layers in a NanoTrack head: whole tower layers replaced by the identity, the next layer refit.

NanoTrack's head is 34 small convs on a 16x16 map, so its time is set by the number of layers more than
by their width (a head at half width runs 0.88 against 0.95 ms at 0.65; two fewer layers a tower, 0.42
against 0.55). A model names the layers that may go (``layer_spans``: contiguous modules whose input and
output widths are equal); for each tower, one at a time, every remaining candidate is tried: its modules
become ``nn.Identity``, the next layer's 1x1 conv and BN (or the prediction conv after the last layer) is
refit in closed form, as one affine map, to the teacher's output there, and the drop whose tower output
stays nearest the teacher's on the calibration crops is kept. Identity modules keep every other module's
name, so a saved cut is the teacher, the drops (``apply_drops``) and the kept channels, in that order.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .least_squares import Moments, affine, phi_rows, ridge_towards, rows, set_affine


@dataclass
class LayerDrop:
    tower: str
    layer: int           # index of the layer in the tower (its modules: layer_spans()[tower][layer - 1])
    error: float         # relative RMS error of the branch's prediction (after the tower's 1x1 prediction conv)
                         # against the teacher's, after the refit


def apply_drops(model: nn.Module, dropped: dict[str, list[int]]) -> None:
    """Replace the modules of every dropped layer (``{tower: [layer, ...]}``) by ``nn.Identity``."""
    spans = model.head.layer_spans()
    for tower, layers in dropped.items():
        seq = model.get_submodule(tower)
        for layer in layers:
            for i in spans[tower][layer - 1]:
                seq[i] = nn.Identity()


def by_tower(drops: list[LayerDrop]) -> dict[str, list[int]]:
    """``{tower: [layer, ...]}``, as ``apply_drops`` and ``cut_like`` take them, in the order they were dropped."""
    return {t: [d.layer for d in drops if d.tower == t] for t in dict.fromkeys(d.tower for d in drops)}


def _live(model: nn.Module, tower: str, dropped: list[int]) -> list[int]:
    return [k + 1 for k in range(len(model.head.layer_spans()[tower])) if k + 1 not in dropped]


def _consumer(model: nn.Module, tower: str, layer: int, dropped: list[int]) -> tuple[str, str | None]:
    """The refit target after dropping ``layer``: the next live layer's 1x1 conv and BN, else the prediction."""
    spans = model.head.layer_spans()[tower]
    after = [k for k in _live(model, tower, dropped) if k > layer]
    if not after:
        return tower.replace("_tower", "_pred"), None
    first = spans[after[0] - 1].start
    return f"{tower}.{first + 1}", f"{tower}.{first + 2}"


@torch.no_grad()
def _try(student: nn.Module, teacher: nn.Module, stream: Any, tower: str, layer: int, dropped: list[int],
         ridge: float) -> tuple[nn.Module, float]:
    """A copy of ``student`` with ``layer`` dropped and its consumer refit, and the prediction's error."""
    trial = copy.deepcopy(student)
    apply_drops(trial, {tower: [layer]})
    conv_name, bn_name = _consumer(trial, tower, layer, dropped + [layer])
    conv = trial.get_submodule(conv_name)
    bn = trial.get_submodule(bn_name) if bn_name else None
    end = stream.path.index(bn_name or conv_name) + 1
    seen: dict[str, torch.Tensor] = {}
    hook = conv.register_forward_pre_hook(lambda mod, args: seen.__setitem__("x", args[0]))
    moments = Moments()
    try:
        for s, t in zip(stream.student, stream.teacher):
            stream.run(trial, s, stream.at, end)
            y = stream.run(teacher, t, stream.at, end)
            moments.add(phi_rows(seen["x"]), rows(y))
    finally:
        hook.remove()
    set_affine(conv, bn, ridge_towards(moments.g, moments.c, affine(conv, bn), ridge))
    num = den = 0.0
    for s, t in zip(stream.student, stream.teacher):
        a, b = stream.run(trial, s, stream.at, len(stream.path)), stream.run(teacher, t, stream.at, len(stream.path))
        num, den = num + float(((a - b).double() ** 2).sum()), den + float((b.double() ** 2).sum())
    return trial, (num / max(den, 1e-30)) ** 0.5


def drop_layers(nets: tuple[nn.Module, nn.Module], streams: dict[str, Any], count: int,
                ridge: float) -> list[LayerDrop]:
    """Drop ``count`` layers from each tower of ``nets[0]`` (in place), greedily, each refit as above.
    ``streams[branch]`` hold both networks' tower inputs on the calibration crops."""
    student, teacher = nets
    done: list[LayerDrop] = []
    for tower in student.head.layer_spans():
        if count > len(student.head.layer_spans()[tower]):
            raise ValueError(f"{tower} has {len(student.head.layer_spans()[tower])} layers that can go, "
                             f"not {count}")
        stream = streams[tower.split(".")[1].split("_")[0]]
        dropped: list[int] = []
        for _ in range(count):
            tried = {k: _try(student, teacher, stream, tower, k, dropped, ridge)
                     for k in _live(student, tower, dropped)}
            best = min(tried, key=lambda k: tried[k][1])
            apply_drops(student, {tower: [best]})
            student.load_state_dict(tried[best][0].state_dict())   # the same modules now: the refit comes along
            dropped.append(best)
            done.append(LayerDrop(tower, best, tried[best][1]))
    return done
