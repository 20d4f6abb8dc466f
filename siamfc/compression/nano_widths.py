"""Which channels of a NanoTrack model can be cut on their own, read from its graph by torch-pruning.

torch-pruning traces the model as the tracker runs it (exemplar and search crop in, class and box
maps out) and, for a channel of one layer, returns every layer that must lose the same channel:
the BNs and the depthwise conv after an expand conv, the squeeze-excitation's two Linears, the
residual adds that tie the outputs of consecutive blocks. A width is *internal* when its group has
one 1x1-style conv that makes it (the producer), exactly one conv that reads it (the consumer, which
FD refits) and no add or matrix product: cutting it changes nothing past the consumer. Linears that
read it (a squeeze-excitation's first layer) are refit too.

The pixel-wise correlation is a matmul, which torch-pruning 1.6 takes for a channel-preserving op: it
couples the 48 feature channels with the 64 correlation channels (a wrong group), so any group with a
matrix product is left out here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from ..models.parts.mobilenetv3 import InvertedResidual
from ..models.siamese import SiamModel

PARTS = ("expansion", "tower")   # what a cut narrows by default
CUTTABLE = (*PARTS, "stem")      # what a config may name; other internal widths are reported, left whole


@dataclass(frozen=True)
class Width:
    producer: str           # module names in the model
    consumer: str
    linears: tuple[str, ...]   # Linears that read the width too (squeeze-excitation), refit with the consumer
    size: int
    part: str               # "expansion" (inside an inverted residual), "tower" (the head's), "stem" (made
                            # outside every block, read inside the first), "block_output" (between blocks) or "other"


class Tracked(nn.Module):
    """``(exemplar, search) -> (cls, loc)``, the model as the tracker runs it, for torch-pruning to trace."""

    def __init__(self, model: SiamModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(z, x)
        return out["cls"], out["loc"]


def dependency_graph(model: SiamModel) -> tp.DependencyGraph:
    cfg = model.cfg
    example = (torch.rand(1, 3, cfg.exemplar_sz, cfg.exemplar_sz) * 255,
               torch.rand(1, 3, cfg.instance_sz, cfg.instance_sz) * 255)
    with torch.enable_grad():   # torch-pruning traces the autograd graph
        return tp.DependencyGraph().build_dependency(Tracked(model).eval(), example_inputs=example)


def _block(model: SiamModel, name: str) -> str | None:
    """The innermost inverted residual that holds module ``name``, if any."""
    parts = name.split(".")
    inside = [".".join(parts[:k]) for k in range(1, len(parts) + 1)
              if isinstance(model.get_submodule(".".join(parts[:k])), InvertedResidual)]
    return inside[-1] if inside else None


def _part(model: SiamModel, producer: str, consumer: str) -> str:
    made, read = _block(model, producer), _block(model, consumer)
    if made is not None and made == read:
        return "expansion"
    if producer.startswith("backbone.") and read is not None:
        return "stem" if made is None else "block_output"
    return "tower" if producer.split(".")[1].endswith("_tower") else "other"


def update_macs(model: SiamModel) -> int:
    """Multiply-adds of one tracker update (the backbone on the search crop, then the head), as
    torch-pruning counts them: convs and Linears; the correlation's two small matmuls are left out."""
    cfg = model.cfg
    z = torch.rand(1, 3, cfg.exemplar_sz, cfg.exemplar_sz)
    x = torch.rand(1, 3, cfg.instance_sz, cfg.instance_sz)
    both = tp.utils.count_ops_and_params(Tracked(model).eval(), (z, x))[0]
    return int(both - tp.utils.count_ops_and_params(model.backbone, z)[0])   # the exemplar runs once per target


def internal_widths(model: SiamModel, graph: tp.DependencyGraph) -> list[Width]:
    """Every internal width, in the order the model runs them (the backbone's blocks, then each tower)."""
    names = {m: n for n, m in model.named_modules()}
    found = []
    for module, name in names.items():
        if not (isinstance(module, nn.Conv2d) and module.groups == 1):
            continue
        group = graph.get_pruning_group(module, tp.prune_conv_out_channels, idxs=[0])
        consumers, linears, blocked = [], [], False
        for dep, _ in group:
            target, handler = dep.target.module, dep.handler
            blocked |= any(op in str(dep.target.name) for op in ("Add", "Bmm", "MatMul", "Cat"))
            if handler in (tp.prune_conv_in_channels, tp.prune_linear_in_channels):
                if isinstance(target, nn.Conv2d) and target.groups == 1:
                    consumers.append(names[target])
                elif isinstance(target, nn.Linear):
                    linears.append(names[target])
            elif (handler == tp.prune_conv_out_channels and target is not module and isinstance(target, nn.Conv2d)
                  and target.groups == 1):
                blocked = True   # a second producer: the width is tied to another layer's output
        if not blocked and len(consumers) == 1:
            found.append(Width(name, consumers[0], tuple(linears), module.out_channels,
                               _part(model, name, consumers[0])))
    return found


def narrow(graph: tp.DependencyGraph, model: SiamModel, width: Width, keep: torch.Tensor) -> None:
    """Keep only the channels ``keep`` of ``width``: torch-pruning cuts the producer and every coupled layer."""
    drop = sorted(set(range(model.get_submodule(width.producer).out_channels)) - set(keep.tolist()))
    if drop:
        group = graph.get_pruning_group(model.get_submodule(width.producer), tp.prune_conv_out_channels, idxs=drop)
        group.prune()


def cut_like(model: SiamModel, keeps: dict[str, list[int]], dropped: dict[str, list[int]] | None = None) -> SiamModel:
    """A copy of ``model`` with the head layers ``dropped`` lists replaced by the identity, then each width
    named by its producer narrowed to the channels ``keeps`` lists: the structure of a saved cut, ready for
    its state dict."""
    from .nano_depth import apply_drops   # nano_depth's fits import this module's neighbours

    cut = copy.deepcopy(model).eval()
    apply_drops(cut, dropped or {})
    graph = dependency_graph(cut)
    widths = internal_widths(cut, graph)
    unknown = sorted(set(keeps) - {w.producer for w in widths})
    if unknown:
        raise ValueError(f"no internal width is made by {', '.join(unknown)}: the cut is of another model")
    for w in widths:
        if w.producer in keeps:
            narrow(graph, cut, w, torch.tensor(keeps[w.producer]))
    return cut
