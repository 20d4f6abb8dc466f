"""Backbone runners for the tracker.

A runner maps a batch of uint8 RGB crops (N, H, W, 3) to float32 embeddings
(N, C, h, w) as a numpy array; its ``torch_threads`` says whether it runs on
PyTorch's thread pool (the tracker runs its own small GEMMs accordingly). The tracker only calls runners, so precision,
compilation and the inference engine are chosen here and nowhere else:

* ``fp32``: PyTorch eager, channels-last, under ``inference_mode``;
* ``bf16``: the same under bf16 autocast (AMP on CUDA);
* ``compile`` / ``compile-bf16``: ``torch.compile`` (inductor, weights frozen so
  BN folds into the convs); the first call per input shape compiles (~20-40 s);
* ``onnxruntime``: the exported backbone on ONNX Runtime's CPU provider;
* ``onnxruntime-int8`` / ``onnxruntime-int8-pct``: the same, statically
  quantized to int8 (VNNI kernels), activation ranges calibrated on synthetic
  crops by min-max or by the 99.999th percentile; which one keeps a given set
  of weights closer to fp32 varies, so both are offered and measured;
* ``auto``: the fastest backend that keeps accuracy for these weights on this
  machine, timed once on whole tracker updates and cached in ``~/.cache/fdsiamfc/auto_backend.json``.
  fp32-exact backends (:data:`EXACT`) always compete; reduced-precision ones
  (:data:`REDUCED`) only where they track as fp32 does for the same weights.
  The full proof is ``tools/benchmark.py``'s: a mean AUC on real footage within
  :data:`AUC_TOLERANCE` of fp32, above or below (a backend that changes what the
  tracker does is rejected even when the change happens to score higher). Where
  no benchmark has run, a self-check decides on first use: an embedded synthetic
  clip tracked in both precisions, the boxes compared frame by frame.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..files import read_json, update_json
from ..system import CACHE_DIR, machine_id, median_seconds

TORCH_BACKENDS = ("fp32", "bf16", "compile", "compile-bf16")
INT8 = {"onnxruntime-int8": "minmax", "onnxruntime-int8-pct": "percentile"}   # calibration
BACKENDS = TORCH_BACKENDS + ("onnxruntime", *INT8, "auto")
EXACT = ("fp32", "compile", "onnxruntime")                   # fp32 arithmetic, reordered at most
REDUCED = ("bf16", "compile-bf16", *INT8)                    # need a measured accuracy record
AUC_TOLERANCE = 0.005

Runner = Callable[[np.ndarray], np.ndarray]


def default_device() -> torch.device:
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


class TorchRunner:
    """Runs a PyTorch backbone in channels-last layout under ``inference_mode``."""

    torch_threads = True   # runs on PyTorch's thread pool, which the tracker's GEMMs share

    def __init__(self, backbone: nn.Module, device: torch.device | None = None,
                 precision: str = "fp32") -> None:
        if precision not in TORCH_BACKENDS:
            raise ValueError(f"unknown backend {precision!r}; expected one of {BACKENDS}")
        self.device = device or default_device()
        self.precision = precision
        module = backbone.eval().to(self.device, memory_format=torch.channels_last)
        if precision.startswith("compile"):
            import torch._dynamo.config as dynamo
            import torch._inductor.config as inductor

            inductor.freezing = True   # constant-fold weights: BN merges into conv
            # Every runner, model and input shape is one more compiled entry of the same
            # forward(); past the limit (8) dynamo silently runs it eagerly, so a benchmark
            # of several models would time eager code under a compile label.
            dynamo.recompile_limit = max(dynamo.recompile_limit, 64)
            module = torch.compile(module, dynamic=False)
        self.backbone = module
        self._inputs: dict[tuple[int, ...], torch.Tensor] = {}

    def _autocast(self):
        if self.precision.endswith("bf16"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _input(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A float input buffer per crop shape, reused across frames."""
        if shape not in self._inputs:
            n, h, w, c = shape
            self._inputs[shape] = torch.empty((n, c, h, w), device=self.device).contiguous(
                memory_format=torch.channels_last)
        return self._inputs[shape]

    def __call__(self, crops: np.ndarray) -> torch.Tensor:
        # An NHWC array viewed as NCHW is channels-last, like the buffer: a plain cast-copy.
        x = self._input(crops.shape)
        with torch.inference_mode(), self._autocast():
            x.copy_(torch.from_numpy(crops).permute(0, 3, 1, 2), non_blocking=True)
            return self.backbone(x).float().contiguous().cpu().numpy()


def make_runner(backbone: nn.Module, backend: str, device: torch.device | None = None) -> Runner:
    """The runner for ``backend`` (see the module docstring)."""
    if backend == "auto":
        backend = auto_backend(backbone, device)
    if backend.startswith("onnxruntime"):
        from ..data.samples import calibration_crops
        from .onnx_runtime import OnnxRunner, export_backbone, quantize_int8
        model = export_backbone(backbone)
        if backend in INT8:
            model = quantize_int8(model, calibration_crops(), INT8[backend])
        return OnnxRunner(model)
    if backend not in TORCH_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    return TorchRunner(backbone, device, backend)


def time_runner(runner: Runner, crops: np.ndarray, repeats: int = 15, warmup: int = 3) -> float:
    """Median seconds of ``runner(crops)`` after warm-up (which also compiles)."""
    return median_seconds(lambda: runner(crops), repeats, warmup)


def weights_key(backbone: nn.Module) -> str:
    """A digest of the weights: accuracy records belong to exact weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _load(name: str) -> dict:
    try:
        return read_json(os.path.join(CACHE_DIR, name))
    except (OSError, ValueError):
        return {}


def _update(name: str, update: Callable[[dict], dict]) -> dict:
    """Read-modify-write of a cache file under its lock: parallel workers never lose
    each other's entries or see a torn file."""
    return update_json(os.path.join(CACHE_DIR, name), update)


def record_accuracy(backbone: nn.Module, aucs: dict[str, float]) -> None:
    """Remember, for these weights on this machine, each backend's mean AUC (fp32 included)."""
    key = weights_key(backbone)

    def add(data: dict) -> dict:
        data.setdefault(machine_id(), {})[key] = aucs
        return data

    _update("accuracy.json", add)


def verified(backbone: nn.Module) -> list[str]:
    """Reduced-precision backends that track as fp32 does for these weights on this
    machine: by the benchmark's AUC record where there is one, else by :func:`self_check`."""
    aucs = _load("accuracy.json").get(machine_id(), {}).get(weights_key(backbone), {})
    out = []
    for b in REDUCED:
        if "fp32" in aucs and b in aucs:
            if abs(aucs[b] - aucs["fp32"]) <= AUC_TOLERANCE:
                out.append(b)
        elif self_check(backbone, b):
            out.append(b)
    return out


SELF_CHECK_FRAMES = 40
SELF_CHECK_IOU = 0.9      # a frame agrees when its box overlaps fp32's at least this much
SELF_CHECK_AGREE = 0.95   # and this fraction of the frames must agree
SELF_CHECK_SEED = 8       # a clip the release weights follow (mean IoU to its truth 0.6)


def self_check(backbone: nn.Module, backend: str) -> bool:
    """Does ``backend`` track an embedded synthetic clip as fp32 does, frame by frame?
    Cached per machine, weights and backend in ``self_check.json``."""
    key = json.dumps([machine_id(), weights_key(backbone), backend])
    cached = _load("self_check.json").get(key)
    if cached is not None:
        return bool(cached["passed"])
    from got10k.utils.metrics import rect_iou

    from ..data.synthetic import render_sequence
    from .siamfc import SiamFCTracker

    clip = render_sequence(np.random.SeedSequence(SELF_CHECK_SEED), SELF_CHECK_FRAMES, 320, 240)
    try:
        ref, other = (SiamFCTracker(make_runner(backbone, name, torch.device("cpu")), backend=name)
                      for name in ("fp32", backend))
        for t in (ref, other):
            t.init(clip.frames[0], clip.boxes[0])
        ious = []
        for frame in clip.frames[1:]:
            # Each frame from fp32's state: one step's decision is compared, so a tie that
            # a distractor makes cannot send the two runs apart for the rest of the clip.
            other.follow(ref)
            ious.append(float(rect_iou(ref.update(frame)[None], other.update(frame)[None])[0]))
        agree, worst = float(np.mean(np.array(ious) >= SELF_CHECK_IOU)), min(ious)
        note = (f"{100 * agree:.0f}% of {len(ious)} frames within IoU {SELF_CHECK_IOU} of fp32's box "
                f"(worst {worst:.3f})")
    except (RuntimeError, OSError, ImportError, InputError, ValueError) as e:
        agree, worst, note = 0.0, 0.0, f"cannot run here ({type(e).__name__})"
    passed = agree >= SELF_CHECK_AGREE
    print(f"auto backend: {backend} self-check on the embedded clip: {note} -> "
          f"{'may compete' if passed else 'left out'}")
    _update("self_check.json", lambda data: {**data, key: {"passed": passed, "agree": agree, "worst_iou": worst}})
    return passed


AUTO_SIZE = (640, 360)   # the frames auto times whole update() calls on
AUTO_WARMUP, AUTO_FRAMES = 5, 30


def auto_clip():
    """The embedded clip that ``auto`` times trackers on: real-size frames, so that
    the crops, correlation and upsampling count as they do when tracking."""
    from ..data.synthetic import render_sequence

    return render_sequence(np.random.SeedSequence(SELF_CHECK_SEED), 1 + AUTO_WARMUP + AUTO_FRAMES, *AUTO_SIZE)


def time_updates(runner: Runner, clip) -> float:
    """Median seconds of a SiamFC tracker's whole ``update()`` with ``runner`` as its
    backbone on ``clip``, after warm-up calls (which also compile)."""
    import time

    from .siamfc import SiamFCTracker

    tracker = SiamFCTracker(runner)
    tracker.init(clip.frames[0], clip.boxes[0])
    times = []
    for n, frame in enumerate(clip.frames[1:]):
        frame = frame.copy()   # in cache, as a frame just decoded is
        start = time.perf_counter()
        tracker.update(frame)
        if n >= AUTO_WARMUP:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def auto_backend(backbone: nn.Module, device: torch.device | None = None) -> str:
    """The fastest accurate backend for these weights on this machine (see :func:`auto_choice`)."""
    return auto_choice(backbone, device)[0]


def auto_choice(backbone: nn.Module, device: torch.device | None = None) -> tuple[str, str]:
    """The fastest accurate backend for these weights on this machine (cached), and why.

    Candidates race on whole ``update()`` calls of the tracker on real-size frames,
    not on the backbone alone: a backend whose backbone times faster may track
    slower once its input and output conversions are counted. A candidate that
    cannot run here (no C++ compiler for ``torch.compile``, say) drops out, with
    its reason printed; if none can run, the reasons are raised.
    """
    device = device or default_device()
    if device.type != "cpu":
        return "fp32", f"on {device.type} the PyTorch fp32 path runs (the race is for CPUs)"
    candidates = list(EXACT) + verified(backbone)
    key = json.dumps([machine_id(), torch.get_num_threads(), weights_key(backbone), candidates,
                      "update@{}x{}".format(*AUTO_SIZE)])
    cached = _load("auto_backend.json").get(key)
    if isinstance(cached, dict) and cached.get("choice") in candidates:
        return cached["choice"], cached["why"] + " (cached race)"
    clip = auto_clip()
    timings, failures = {}, {}
    for name in candidates:
        try:
            timings[name] = time_updates(make_runner(backbone, name, device), clip)
        except (RuntimeError, OSError, ImportError, InputError, ValueError) as e:
            failures[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"auto backend: {name} cannot run here ({failures[name]})")
    if not timings:
        raise RuntimeError("auto backend: no backend runs on this machine: "
                           + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    choice = min(timings, key=timings.get)
    why = ("fastest update() on {}x{} frames among the accurate backends: ".format(*AUTO_SIZE)
           + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in sorted(timings.items(), key=lambda kv: kv[1])))
    print(f"auto backend: {why} -> {choice}")
    _update("auto_backend.json", lambda data: {**data, key: {"choice": choice, "why": why}})
    return choice, why
