"""ONNX export of a config-built model (:mod:`siamfc.models.siamese`), checked against PyTorch.

Three graphs, as a deployed Siamese tracker runs them: ``template.onnx`` (the exemplar
branch: the model's input normalisation, backbone and neck at the exemplar size),
``search.onnx`` (the same at the search size, any batch) and ``head.onnx`` (template and
search features in, the head's maps out). The branches are separate graphs because a neck may
treat the two sizes differently (SiamRPN++'s adjust layers crop the template). Inputs are RGB
float 0-255, NCHW.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..files import atomic_path
from ..models.siamese import Branch, SiamModel


class Head(nn.Module):
    """The head on flattened features: ``n`` template maps, then ``n`` search maps."""

    def __init__(self, model: SiamModel, n: int) -> None:
        super().__init__()
        self.model, self.n = model, n

    def forward(self, *features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z, x = features[:self.n], features[self.n:]
        unpack = (lambda f: list(f)) if self.n > 1 else (lambda f: f[0])
        out = self.model.head.respond(self.model.head.prepare(unpack(z)), unpack(x))
        return tuple(out[k] for k in sorted(out))


@dataclass
class ModelExport:
    paths: dict[str, str]
    worst: dict[str, float]     # worst relative difference, ONNX Runtime against PyTorch, per graph


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: str, names: tuple[list[str], list[str]],
            dynamic_batch: bool, opset: int) -> None:
    # a Branch's forward takes ``img``: the search graph serves 1 to 64 scales
    dims = {"img": {0: torch.export.Dim("batch", min=1, max=64)}} if dynamic_batch else None
    program = torch.onnx.export(module, args, None, input_names=names[0], output_names=names[1], opset_version=opset,
                                dynamo=True, external_data=False, verbose=False, dynamic_shapes=dims)
    with atomic_path(path) as tmp:
        tmp.write_bytes(program.model_proto.SerializeToString())


def export_model(model: SiamModel, folder: str, opset: int = 18) -> ModelExport:
    """Write the three graphs under ``folder`` and compare each with PyTorch on random input."""
    from ..tracking.onnx_runtime import session

    os.makedirs(folder, exist_ok=True)
    model = model.eval().float()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(1, 3, cfg.exemplar_sz, cfg.exemplar_sz, generator=gen) * 255
    x = torch.rand(2, 3, cfg.instance_sz, cfg.instance_sz, generator=gen) * 255
    branch = Branch(model).eval()
    with torch.no_grad():
        fz, fx = branch(z), branch(x[:1])
        maps = Head(model, len(fz)).eval()(*fz, *fx)
    n = len(fz)
    zn, xn = [f"z{i}" for i in range(n)], [f"x{i}" for i in range(n)]
    outputs = sorted(model(z, x[:1]))
    paths = {k: os.path.join(folder, f"{k}.onnx") for k in ("template", "search", "head")}
    _export(branch, (z,), paths["template"], (["image"], zn), False, opset)
    _export(branch, (x,), paths["search"], (["image"], xn), True, opset)
    _export(Head(model, n).eval(), (*fz, *fx), paths["head"], (zn + xn, outputs), False, opset)

    def worst(path: str, inputs: dict, want: tuple[torch.Tensor, ...]) -> float:
        got = session(path).run(None, {k: v.numpy() for k, v in inputs.items()})
        return max(float((torch.from_numpy(g) - w).abs().max() / w.abs().max().clamp_min(1e-12))
                   for g, w in zip(got, want))

    with torch.no_grad():
        fxx = branch(x)
    return ModelExport(paths, {
        "template": worst(paths["template"], {"image": z}, fz),
        "search": worst(paths["search"], {"image": x}, fxx),
        "head": worst(paths["head"], dict(zip(zn + xn, (*fz, *fx))), maps)})
