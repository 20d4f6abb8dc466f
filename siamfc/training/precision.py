"""What ``precision: auto`` trains in: decided on this machine, never by oneDNN's flag.

oneDNN reports bf16 as "supported" on any AVX-512 CPU, where it runs emulated and
3x slower than fp32. So on a CPU, bf16 is a candidate only where the kernel lists
``avx512_bf16`` or ``amx_bf16`` and no ISA cap switches it off, and even then it
must win a timing of real training steps of the network being trained. A
decisive choice (one precision at least 1.25x faster) is cached per machine and per network shape in
``~/.cache/fdsiamfc/auto_precision.json``; a close one is timed again on the next run. Each is printed once
per process with why.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from ..errors import InputError
from ..files import read_json, update_json
from ..system import CACHE_DIR, cpu_flags, has_native_bf16, machine_id, median_seconds
from .losses import balanced_loss, logistic_labels

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CACHE = "auto_precision.json"
# A race is cached only when its winner is this much faster: a close one read while other work shares the
# cores can flip (fp32 cached as 1.18x faster where bf16 later timed 2.4x faster), so it is run again next time.
DECISIVE = 1.25
_said: set[str] = set()
_close: dict[str, "Choice"] = {}   # close races, kept for this process only


@dataclass(frozen=True)
class Choice:
    precision: str
    reason: str


def decide(native_bf16: bool, timings: dict[str, float] | None = None) -> Choice:
    """The CPU decision from the features and, where bf16 is native, the seconds per step."""
    if not native_bf16:
        return Choice("fp32", "no native bf16 on this CPU (neither avx512_bf16 nor amx_bf16, or an ISA cap)")
    if not timings:
        return Choice("bf16", "native bf16 (not timed)")
    best = min(timings, key=timings.get)
    other = "bf16" if best == "fp32" else "fp32"
    return Choice(best, f"{best} timed {timings[other] / timings[best]:.2f}x faster than {other} "
                        f"({', '.join(f'{k} {v * 1e3:.0f} ms' for k, v in timings.items())} per step)")


def time_step(net: nn.Module, precision: str, batch: int = 8, repeats: int = 3) -> float:
    """Median seconds of one training step (forward, balanced loss, backward) of a copy of ``net``."""
    model = copy.deepcopy(net).train().to(memory_format=torch.channels_last)
    z = torch.randn(batch, 3, 127, 127).contiguous(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 255, 255).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(z, x)
            maps = list(out.values()) if isinstance(out, dict) else [out]   # config models return a dict
            loss = sum(balanced_loss(m, logistic_labels(m.shape[-1], 16, 0, 8).expand_as(m)) for m in maps)
        model.zero_grad(set_to_none=True)
        loss.backward()

    return median_seconds(step, repeats, warmup=1)


def shape_key(net: nn.Module) -> str:
    return ",".join(f"{tuple(p.shape)}" for p in net.parameters() if p.requires_grad)


def cpu_choice(net: nn.Module, timer: Callable[[nn.Module, str], float] = time_step,
               native_bf16: bool | None = None) -> Choice:
    """The CPU precision for training ``net``: timed once per machine and shape, then cached."""
    native = has_native_bf16() if native_bf16 is None else native_bf16
    if not native:
        return decide(False)
    key = f"{machine_id()} | {sorted(cpu_flags() & {'avx512_bf16', 'amx_bf16'})} | {shape_key(net)}"
    path = os.path.join(CACHE_DIR, CACHE)
    try:
        cached = read_json(path).get(key)
    except (OSError, ValueError):
        cached = None
    if cached and cached.get("ratio", 0.0) >= DECISIVE:   # entries without a ratio predate the margin: re-timed
        return Choice(cached["precision"], cached["reason"] + " (cached)")
    if key in _close:
        return _close[key]
    timings = {p: timer(net, p) for p in ("fp32", "bf16")}
    choice = decide(True, timings)
    ratio = max(timings.values()) / min(timings.values())
    if ratio < DECISIVE:
        _close[key] = Choice(choice.precision, choice.reason + f" (within {DECISIVE}x: not cached, timed again "
                                                               f"by the next run)")
        return _close[key]
    update_json(path, lambda data: {**data, key: {"precision": choice.precision, "reason": choice.reason,
                                                  "ratio": round(ratio, 3)}})
    return choice


def choose_precision(precision: str, device: torch.device, net: nn.Module | None = None) -> Choice:
    """``auto``: on CUDA bf16 where supported, else fp16; on a CPU, by :func:`cpu_choice`."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    if precision != "auto":
        return Choice(precision, "set in the config")
    if device.type == "cuda":
        choice = Choice(*(("bf16", "CUDA with bf16") if torch.cuda.is_bf16_supported() else ("fp16", "CUDA")))
    elif net is None:
        choice = decide(has_native_bf16())
    else:
        choice = cpu_choice(net)
    if choice.reason not in _said:
        _said.add(choice.reason)
        print(f"precision auto -> {choice.precision}: {choice.reason}")
    return choice
