"""ONNX export of a NanoTrack model (``tracker: nano``) as the two files OpenCV's ``TrackerNano`` loads.

``backbone.onnx``: ``input`` (1 x 3 x 255 x 255, RGB float 0-255, what ``TrackerNano`` feeds: it runs
``blobFromImage(..., swapRB=true)`` on BGR frames) -> ``output`` (1 x 48 x 16 x 16); OpenCV runs
the same graph on the 127 px exemplar, so no spatial size may be baked into it. ``head.onnx``:
``input1`` (exemplar features, 1 x 48 x 8 x 8) and ``input2`` (search features, 1 x 48 x 16 x 16)
-> ``output1`` (class logits, 1 x 2 x 16 x 16) and ``output2`` (ltrb distances, 1 x 4 x 16 x 16).
Names and shapes are those of SiamTrackers' ``nanotrack_backbone_sim.onnx`` /
``nanotrack_head_sim.onnx``. The model's input convention goes into the backbone graph (a
``raw_bgr`` model swaps the channels back), so OpenCV needs no setting.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..files import atomic_path
from ..models.parts.nanohead_fused import FusedNanoHead, fusable
from ..models.siamese import Branch, SiamModel

BACKBONE_IO = (["input"], ["output"])
HEAD_IO = (["input1", "input2"], ["output1", "output2"])


class _Head(nn.Module):
    """Exemplar and search features in, ``(cls, loc)`` out: ``prepare`` runs inside, as OpenCV calls it."""

    def __init__(self, model: SiamModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, zf: torch.Tensor, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.head.respond(self.model.head.prepare(zf), xf)
        return out["cls"], out["loc"]


class _Backbone(nn.Module):
    """The model's :class:`Branch` with its one feature map unwrapped."""

    def __init__(self, model: SiamModel) -> None:
        super().__init__()
        self.branch = Branch(model)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.branch(img)[0]


@dataclass
class NanoExport:
    paths: dict[str, str]       # "backbone", "head"
    worst: dict[str, float]     # worst relative difference against PyTorch (the model as given), per check
    folded: list[str]           # backbone blocks whose last conv was folded into the next one's first
    fused: bool                 # the head's two branches written as one (FusedNanoHead)


def _write(module: nn.Module, args: tuple[torch.Tensor, ...], path: str, names: tuple[list[str], list[str]],
           opset: int) -> None:
    program = torch.onnx.export(module, args, None, input_names=names[0], output_names=names[1],
                                opset_version=opset, dynamo=True, external_data=False, verbose=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(program.model_proto.SerializeToString())


def _relative(got: np.ndarray, want: torch.Tensor) -> float:
    return float(np.abs(got - want.numpy()).max() / max(float(want.abs().max()), 1e-12))


def export_nano(model: SiamModel, folder: str, opset: int = 18) -> NanoExport:
    """Write ``backbone.onnx`` and ``head.onnx`` under ``folder`` and compare them with PyTorch on random
    input: ONNX Runtime at the declared shapes, and OpenCV's dnn on the backbone at the exemplar size.
    The graphs are of a copy whose backbone folded its consecutive linear layers (``fold_for_inference``,
    where it has one) and whose head runs its two branches as one (:class:`FusedNanoHead`, where they are
    alike): fewer layers for OpenCV to run, the same numbers. The checks compare with the model as given."""
    import cv2

    from ..tracking.onnx_runtime import session

    cfg = model.cfg
    if cfg.tracker != "nano":
        raise ValueError(f"{cfg.name} is tracked by '{cfg.tracker}', not 'nano': export_model writes its graphs")
    os.makedirs(folder, exist_ok=True)
    model = model.eval().float()
    backbone, head = _Backbone(model).eval(), _Head(model).eval()
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(1, 3, cfg.exemplar_sz, cfg.exemplar_sz, generator=gen) * 255
    x = torch.rand(1, 3, cfg.instance_sz, cfg.instance_sz, generator=gen) * 255
    with torch.no_grad():
        fz, fx = backbone(z), backbone(x)
        cls, loc = head(fz, fx)
    folded: list[str] = []
    if hasattr(model.backbone, "fold_for_inference"):
        model = copy.deepcopy(model)
        folded = model.backbone.fold_for_inference()
        backbone, head = _Backbone(model).eval(), _Head(model).eval()
    fused = fusable(model.head)
    if fused:
        head = FusedNanoHead(model.head).eval()
    paths = {"backbone": os.path.join(folder, "backbone.onnx"), "head": os.path.join(folder, "head.onnx")}
    _write(backbone, (x,), paths["backbone"], BACKBONE_IO, opset)
    _write(head, (fz, fx), paths["head"], HEAD_IO, opset)

    got_x = session(paths["backbone"]).run(None, {"input": x.numpy()})[0]
    got_cls, got_loc = session(paths["head"]).run(None, {"input1": fz.numpy(), "input2": fx.numpy()})
    net = cv2.dnn.readNet(paths["backbone"])   # OpenCV reshapes the 255 graph to the exemplar itself
    net.setInput(z.numpy())
    got_z = net.forward()
    net = cv2.dnn.readNet(paths["head"])   # the head as cv2.TrackerNano runs it, rewritten graph and all
    net.setInput(fz.numpy(), "input1")
    net.setInput(fx.numpy(), "input2")
    cv_cls, cv_loc = net.forward(HEAD_IO[1])
    return NanoExport(paths, {"backbone": _relative(got_x, fx), "backbone@exemplar (OpenCV dnn)": _relative(got_z, fz),
                              "head cls": _relative(got_cls, cls), "head loc": _relative(got_loc, loc),
                              "head cls (OpenCV dnn)": _relative(cv_cls, cls), "head loc (OpenCV dnn)": _relative(cv_loc, loc)},
                      folded, fused)
