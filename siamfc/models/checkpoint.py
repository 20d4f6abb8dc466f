"""Checkpoint I/O for plain chains (full or slim AlexNet, any chain) and FD backbones.

Our format is ``{"state_dict": ..., "meta": {"layers" | "fd", "widths", "out_scale", "config", "epoch"}}``:
``layers`` describes a plain chain, ``fd`` an FD network (its teacher chain, rates
and step), ``out_scale`` the head's (SiamFC's 0.001 where a file has none; a converted
SiamVGG carries its score BN's gain). The loader also takes a bare state dict, as the
public release weights are, and then infers the AlexNet's layer widths from the tensor shapes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..files import torch_save
from .backbone import FULL_WIDTHS, AlexNet, init_weights
from .chain import ConvChain, Layer, layers_from_meta, layers_meta
from .fd import FDChain, FDPlan
from .net import SiamNet

PREFIX = "backbone."
DEFAULT_OUT_SCALE = 0.001   # SiamFC's


@dataclass
class LoadedCheckpoint:
    net: SiamNet
    meta: dict[str, Any]


def build_net(widths: Sequence[int] | None = None, plan: FDPlan | None = None,
              out_scale: float = DEFAULT_OUT_SCALE, layers: Sequence[Layer] | None = None) -> SiamNet:
    """A freshly initialised SiamFC: an FD network for ``plan``, a chain of ``layers``,
    or an AlexNet of ``widths`` (full width by default)."""
    if plan is not None:
        backbone: nn.Module = FDChain(plan)
    elif layers is not None:
        backbone = ConvChain(layers)
    else:
        backbone = AlexNet(widths or FULL_WIDTHS)
    net = SiamNet(backbone, out_scale)
    init_weights(net)
    return net


def random_net(seed: int = 0, widths: Sequence[int] | None = None) -> SiamNet:
    """A randomly initialised network with a fixed seed (the untrained baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_net(widths)


def checkpoint_payload(net: SiamNet, **meta: Any) -> dict[str, Any]:
    """The ``{"state_dict", "meta"}`` dict of our format; ``meta`` adds e.g. epoch."""
    backbone = net.backbone
    info: dict[str, Any] = {"widths": None, "layers": None, "fd": None, "out_scale": float(net.head.out_scale)}
    if isinstance(backbone, FDChain):
        info["fd"] = backbone.plan.to_meta()
    else:
        info["widths"] = list(backbone.widths)
        info["layers"] = layers_meta(backbone.layers)
    info.update(meta)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return {"state_dict": state, "meta": info}


def save_checkpoint(path: str | os.PathLike, net: SiamNet, **meta: Any) -> None:
    """Write ``net`` atomically in our format."""
    torch_save(checkpoint_payload(net, **meta), path)


def _numpy_scalars() -> list[Any]:
    """What rebuilds numpy scalars, which pysot-style snapshots keep in their optimizer state (a learning
    rate as np.float64): a dtype and raw bytes, no code runs. Under both of numpy's module names."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtypes = [getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType",
                                                "BoolDType") if hasattr(np, "dtypes") and hasattr(np.dtypes, n)]
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype, *dtypes]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict a checkpoint file holds, or a one-line InputError naming the file."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: checkpoint file not found")
    try:
        with torch.serialization.safe_globals(_numpy_scalars()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types, with many lines that do not name the cause
        raise InputError(f"{path}: not a readable PyTorch checkpoint: corrupt, truncated or not written by "
                         f"torch.save ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: checkpoint holds a {type(obj).__name__}, not a state dict")
    return obj


def _normalise_keys(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Accept DDP's ``module.`` prefix and backbone-only dicts without ``backbone.``."""
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        k = k.removeprefix("module.")
        if not k.startswith(PREFIX) and k.startswith("conv"):
            k = PREFIX + k
        out[k] = v
    return out


def infer_widths(state: dict[str, torch.Tensor]) -> tuple[int, ...] | None:
    """An AlexNet's widths from a bare state dict (None if it has no such five convs)."""
    keys = [f"{PREFIX}conv{i}.0.weight" for i in range(1, 6)]
    if not all(k in state and state[k].ndim == 4 for k in keys):
        return None
    return tuple(int(state[k].shape[0]) for k in keys)


def _mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k} has {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
                 for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    return problems


def load_checkpoint(path: str | os.PathLike, out_scale: float | None = None) -> LoadedCheckpoint:
    """Build the network a checkpoint describes and load its weights; the head's
    ``out_scale`` is the one given, else the file's, else SiamFC's 0.001.

    Raises :class:`InputError` with the list of mismatched keys and shapes when the
    file does not fit the network its metadata (or, for a bare state dict, its
    AlexNet-shaped tensors) describes.
    """
    obj = read_checkpoint(path)
    meta = dict(obj.get("meta") or {}) if "state_dict" in obj else {}
    state = _normalise_keys(obj["state_dict"] if "state_dict" in obj else obj)
    if out_scale is None:
        out_scale = float(meta.get("out_scale") or DEFAULT_OUT_SCALE)
    try:
        if meta.get("fd"):
            net, what = build_net(plan=FDPlan.from_meta(meta["fd"]), out_scale=out_scale), "its FD network"
        elif meta.get("layers"):
            net = build_net(layers=layers_from_meta(meta["layers"]), out_scale=out_scale)
            what = f"its chain of widths {net.backbone.widths}"
        else:
            widths = infer_widths(state)
            if widths is None:
                missing = [f"{PREFIX}conv{i}.0.weight" for i in range(1, 6)
                           if f"{PREFIX}conv{i}.0.weight" not in state]
                raise InputError(f"{path}: checkpoint does not fit an AlexNet-shaped SiamFC: "
                                 f"missing {', '.join(missing) or 'conv weights of rank 4'}")
            net, what = build_net(widths, out_scale=out_scale), f"an AlexNet of widths {widths}"
    except (ValueError, TypeError, KeyError) as e:
        raise InputError(f"{path}: checkpoint does not describe a network this package builds: {e}") from None
    problems = _mismatches(net, state)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise InputError(f"{path}: checkpoint does not fit {what}: {shown}")
    net.load_state_dict(state)
    if not isinstance(net.backbone, FDChain):
        meta.setdefault("widths", list(net.backbone.widths))
    meta.setdefault("fd", None)
    return LoadedCheckpoint(net.eval(), meta)
