"""The one place where trackers are built: a registry from a spec to a got10k ``Tracker``.

Evaluation, the speed benchmark, compression's selection, the pipeline, the demo,
the VOT server and the tools all describe the tracker they want as a
:class:`TrackerSpec` and call :func:`build_tracker`. A new kind of tracker is one
:func:`register_tracker` entry here. Specs are plain data, so they cross process
boundaries (parallel evaluation workers build their own tracker from one).

On the command line a tracker is one string, read by :meth:`TrackerSpec.parse`:
a registered kind's name (``identity``, ``random``), ``KIND:ARG``
(``opencv:MIL``), or a file whose suffix a kind claims (``.onnx``); anything
else is a SiamFC checkpoint.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from ..config import TrackerConfig, from_dict
from ..errors import InputError
from ..registry import Registry


@dataclass(frozen=True)
class TrackerSpec:
    """What tracker to build: its ``kind``, the file or argument it needs, the
    backbone ``backend``, tracking hyper-parameters (``options``) and a display name."""

    kind: str
    checkpoint: str | None = None
    backend: str = "fp32"
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    seed: int = 0

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> "TrackerSpec":
        """The spec a command-line string names (see the module docstring)."""
        if text in TRACKERS:
            return cls(text, None, **kwargs)
        kind, sep, arg = text.partition(":")
        if sep and kind in TRACKERS and TRACKERS.get(kind).takes_argument:
            return cls(kind, arg, **kwargs)
        for name in TRACKERS:
            if text.endswith(TRACKERS.get(name).suffixes):
                return cls(name, text, **kwargs)
        return cls("siamfc", text, **kwargs)

    @property
    def tracker_name(self) -> str:
        return self.name or TRACKERS.get(self.kind).default_name(self)

    def key(self) -> str:
        """A stable text key (workers rebuild their tracker only when it changes)."""
        return json.dumps(asdict(self), sort_keys=True)

    def tracker_config(self) -> TrackerConfig:
        return from_dict(TrackerConfig, self.options, f"{self.tracker_name} options")


@dataclass(frozen=True)
class TrackerKind:
    """A registry entry: how to build the tracker, name it and check its spec early."""

    build: Callable[[TrackerSpec], Any]
    default_name: Callable[[TrackerSpec], str]
    check: Callable[[TrackerSpec], None] = lambda spec: None
    suffixes: tuple[str, ...] = ()
    takes_argument: bool = False
    siamfc_options: bool = True    # its options are SiamFC's TrackerConfig (else the kind checks its own)
    auto: Callable[[TrackerSpec], tuple[str, str]] | None = None   # the backend ``auto`` means, and why
    engine: str | None = None      # what runs it where that is not one of our backends: "none" (no
                                   # network: IdentityTracker, OpenCV's MIL/KCF/CSRT) or "opencv-dnn" (peers)


TRACKERS: Registry[TrackerKind] = Registry("tracker kind")


def register_tracker(name: str, build: Callable[[TrackerSpec], Any], default_name: Callable[[TrackerSpec], str],
                     **kwargs: Any) -> None:
    TRACKERS.add(name, TrackerKind(build, default_name, **kwargs))


def build_tracker(spec: TrackerSpec) -> Any:
    """A got10k ``Tracker`` for ``spec``."""
    return TRACKERS.get(spec.kind).build(spec)


def check_tracker(spec: TrackerSpec) -> None:
    """Fail with a one-line :class:`InputError` now, before any work, if ``spec``
    cannot be built (a missing or corrupt file, a wrong architecture, a bad option)."""
    kind = TRACKERS.get(spec.kind)
    kind.check(spec)
    if kind.siamfc_options:
        spec.tracker_config()


def resolve_backend(spec: TrackerSpec) -> tuple[TrackerSpec, str]:
    """``spec`` with ``auto`` replaced by the backend it picks on this machine, and why. Resolved once
    by the caller, so parallel workers neither race backends at the same time nor each pick their own."""
    kind = TRACKERS.get(spec.kind)
    if kind.engine == "none":
        return spec, "it runs no network"
    if kind.engine is not None:
        return spec, f"{kind.engine} runs it, as its users call it"
    if spec.backend != "auto":
        return spec, "as asked"
    if kind.auto is None:
        return spec, "its only path"
    backend, why = kind.auto(spec)
    return replace(spec, backend=backend), why


def backend_label(spec: TrackerSpec, asked: str) -> str:
    """What a summary prints for the resolved ``spec``: ``auto -> onnxruntime-int8`` where ``auto`` chose,
    the engine of a tracker that is not ours (``none`` where no network runs), else the backend."""
    engine = TRACKERS.get(spec.kind).engine
    if engine is not None:
        return engine
    return f"auto -> {spec.backend}" if asked == "auto" and spec.backend != "auto" else spec.backend


def _stem(spec: TrackerSpec) -> str:
    return os.path.splitext(os.path.basename(spec.checkpoint or spec.kind))[0]


# ---------------------------------------------------------------- the kinds

def _siamfc(spec: TrackerSpec) -> Any:
    from ..models.model_io import is_model_checkpoint
    from .backends import make_runner
    from .siamfc import SiamFCTracker

    if spec.checkpoint and is_model_checkpoint(spec.checkpoint):   # a config-built model names itself
        return _model(spec)
    net, cfg = _chain(spec)
    return SiamFCTracker(make_runner(net.backbone, spec.backend), cfg, name=spec.tracker_name, backend=spec.backend)


def _chain(spec: TrackerSpec) -> tuple[Any, TrackerConfig]:
    """A chain checkpoint's network and the tracking options. The score scale is the
    checkpoint's (SiamFC's 0.001 unless it carries its own, as a converted SiamVGG does)
    where the options leave SiamFC's default, else the options'."""
    from ..models.checkpoint import DEFAULT_OUT_SCALE, load_checkpoint

    cfg = spec.tracker_config()
    net = load_checkpoint(spec.checkpoint, None if cfg.out_scale == DEFAULT_OUT_SCALE else cfg.out_scale).net
    return net, replace(cfg, out_scale=float(net.head.out_scale))


def _auto_siamfc(spec: TrackerSpec) -> tuple[str, str]:
    from ..models.model_io import is_model_checkpoint
    from .backends import auto_choice

    if spec.checkpoint and is_model_checkpoint(spec.checkpoint):
        return _auto_model(spec)
    return auto_choice(_chain(spec)[0].backbone)


def _auto_model(spec: TrackerSpec) -> tuple[str, str]:
    return "fp32", "config-built models run on the PyTorch fp32 path"


def _auto_random(spec: TrackerSpec) -> tuple[str, str]:
    from ..models.checkpoint import random_net
    from .backends import auto_choice

    return auto_choice(random_net(spec.seed).eval().backbone)


def _plain(spec: TrackerSpec) -> Any:
    from .plain import PlainSiamFCTracker

    net, cfg = _chain(spec)
    return PlainSiamFCTracker(net, cfg, name=spec.tracker_name)


def _check_checkpoint(spec: TrackerSpec) -> None:
    from ..models.checkpoint import load_checkpoint
    from ..models.model_io import is_model_checkpoint

    if not spec.checkpoint:
        raise InputError(f"tracker kind '{spec.kind}' needs a checkpoint file")
    if is_model_checkpoint(spec.checkpoint):
        _check_model(spec)
    else:
        load_checkpoint(spec.checkpoint)


def model_source(spec: TrackerSpec) -> tuple[str | None, str | None]:
    """``model:CONFIG.yaml[,WEIGHTS]`` or ``model:CHECKPOINT``: the config and the weights file."""
    arg = spec.checkpoint or ""
    config, _, weights = arg.partition(",")
    if config.endswith((".yaml", ".yml")):
        return config, weights or None
    if not arg:
        raise InputError("tracker kind 'model' needs CONFIG.yaml[,WEIGHTS.pth] or one of our model checkpoints")
    return None, arg


def _fc_model_tracker() -> tuple[type, Callable[..., Any]]:
    from .model_fc import ModelSiamFCTracker
    return TrackerConfig, ModelSiamFCTracker


def _rpn_model_tracker() -> tuple[type, Callable[..., Any]]:
    from .rpn import RPNTracker, RPNTrackerConfig
    return RPNTrackerConfig, RPNTracker


def _nano_model_tracker() -> tuple[type, Callable[..., Any]]:
    from .nano import NanoTracker, NanoTrackerConfig
    return NanoTrackerConfig, NanoTracker


# What a config-built model's ``tracker`` names (models.siamese.TRACKERS): its options' dataclass and
# its tracker class, ``Tracker(model, cfg, name=...)``. Imported when asked for, as the kinds are.
MODEL_TRACKERS: Registry[Callable[[], tuple[type, Callable[..., Any]]]] = Registry("model tracker")
MODEL_TRACKERS.add("siamfc", _fc_model_tracker)
MODEL_TRACKERS.add("rpn", _rpn_model_tracker)
MODEL_TRACKERS.add("nano", _nano_model_tracker)


def _model_tracker(spec: TrackerSpec, build: bool) -> Any:
    """The tracker its model's config names, with tracking options from the config's ``track``
    section (or the checkpoint's), overridden by the spec's."""
    from ..config import from_dict, load_yaml
    from ..models.model_io import load_model
    from ..models.siamese import ModelConfig

    config, weights = model_source(spec)
    if spec.backend not in ("fp32", "auto"):
        raise InputError(f"{spec.checkpoint}: config-built models run on the fp32 PyTorch backend "
                         f"(auto -> fp32); '{spec.backend}' is for SiamFC AlexNet checkpoints")
    doc = load_yaml(config) if config else None   # read once: its model section and its track section
    loaded = load_model(weights, from_dict(ModelConfig, doc.get("model"), f"{config}:model") if doc else None)
    track = dict((doc.get("track") if doc else loaded.meta.get("track")) or {})
    track.update(spec.options)
    model = loaded.model
    name = spec.name or model.cfg.name
    config_type, tracker = MODEL_TRACKERS.get(model.cfg.tracker)()
    cfg = from_dict(config_type, track, f"{name} track")
    return tracker(model, cfg, name=name) if build else cfg


def _model(spec: TrackerSpec) -> Any:
    return _model_tracker(spec, build=True)


def _check_model(spec: TrackerSpec) -> None:
    _model_tracker(spec, build=False)


def _onnx(spec: TrackerSpec) -> Any:
    from .onnx_runtime import OnnxRunner
    from .siamfc import SiamFCTracker

    _check_onnx(spec)
    return SiamFCTracker(OnnxRunner(spec.checkpoint), spec.tracker_config(), name=spec.tracker_name,
                         backend="onnxruntime")


def _check_onnx(spec: TrackerSpec) -> None:
    from .onnx_runtime import session

    if spec.backend not in ("onnxruntime", "auto"):
        raise InputError(f"{spec.checkpoint}: an ONNX backbone runs with --backend onnxruntime, "
                         f"not '{spec.backend}'")
    session(spec.checkpoint)


def _random(spec: TrackerSpec) -> Any:
    from ..models.checkpoint import random_net
    from .backends import make_runner
    from .siamfc import SiamFCTracker

    cfg = spec.tracker_config()
    return SiamFCTracker(make_runner(random_net(spec.seed).eval().backbone, spec.backend), cfg,
                         name=spec.tracker_name, backend=spec.backend)


def _identity(spec: TrackerSpec) -> Any:
    from got10k.trackers import IdentityTracker

    return IdentityTracker()


def _opencv(spec: TrackerSpec) -> Any:
    from .opencv import OpenCVTracker

    return OpenCVTracker(spec.checkpoint or "")


def _check_opencv(spec: TrackerSpec) -> None:
    from .opencv import check_available

    check_available(spec.checkpoint or "")


register_tracker("siamfc", _siamfc, _stem, check=_check_checkpoint, auto=_auto_siamfc)
def _model_name(spec: TrackerSpec) -> str:
    """The config's stem, or the name our checkpoint gives its model (read without its tensors)."""
    config, weights = model_source(spec)
    if config:
        return os.path.splitext(os.path.basename(config))[0]
    from ..models.model_io import model_name
    return model_name(weights) or _stem(spec)


register_tracker("model", _model, _model_name, check=_check_model, takes_argument=True, siamfc_options=False,
                 auto=_auto_model)
register_tracker("plain", _plain, lambda spec: _stem(spec) + "-plain", check=_check_checkpoint, takes_argument=True,
                 auto=lambda spec: ("fp32", "the plain baseline runs eager fp32"))
register_tracker("onnx", _onnx, _stem, check=_check_onnx, suffixes=(".onnx",),
                 auto=lambda spec: ("onnxruntime", "an ONNX file runs on ONNX Runtime"))
register_tracker("random", _random, lambda spec: "RandomSiamFC" + (f"-seed{spec.seed}" if spec.seed else ""),
                 auto=_auto_random)
register_tracker("identity", _identity, lambda spec: "IdentityTracker", engine="none")
register_tracker("opencv", _opencv, lambda spec: f"OpenCV-{spec.checkpoint}", check=_check_opencv,
                 takes_argument=True, engine="none")


def _peer(spec: TrackerSpec) -> Any:
    from .peers import PeerTracker

    return PeerTracker(spec.kind, spec.checkpoint, spec.name)


def _check_peer(spec: TrackerSpec) -> None:
    from .peers import create_peer, peer_files

    create_peer(spec.kind, peer_files(spec.kind, spec.checkpoint))


def _peer_name(spec: TrackerSpec) -> str:
    from .peers import PEERS

    return PEERS[spec.kind].name


for _kind in ("nanotrack", "vittrack"):
    register_tracker(_kind, _peer, _peer_name, check=_check_peer, takes_argument=True, siamfc_options=False,
                     engine="opencv-dnn")
