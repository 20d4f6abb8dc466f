"""What machine this is (for reports and per-machine caches) and how fast it runs a call."""
from __future__ import annotations

import functools
import os
import platform
import statistics
import time
from typing import Callable


# Per-machine caches (timed choices, accuracy records) live here.
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "fdsiamfc")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


# The instruction-set caps a user may set to stand in for a smaller CPU; they are part
# of what "this machine" means for every per-machine cache and report.
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def isa_caps() -> dict[str, str]:
    return {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)}


# oneDNN's ISA names at or above which it may run bf16 natively (its cap is an upper bound).
_BF16_ISAS = {"avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx", "avx512_core_amx_fp16",
              "avx10_1_512", "avx10_1_512_amx", "avx10_1_512_amx_fp16", "all"}


def capped_to_avx2() -> bool:
    """True when PyTorch or oneDNN were told to use AVX2 (or less) at most."""
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    onednn = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").lower()
    return aten in ("avx2", "default") or (bool(onednn) and not onednn.startswith(("avx512", "avx10", "all")))


def has_native_bf16() -> bool:
    """bf16 arithmetic in hardware (AVX512-BF16 or AMX) that no ISA cap has switched off."""
    onednn = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").lower()
    if onednn and onednn not in _BF16_ISAS:
        return False
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"}) and not capped_to_avx2()


def has_vnni() -> bool:
    """int8 dot products without saturation: AVX512-VNNI or AVX-VNNI (ONNX Runtime has no cap)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni"})


def isa_summary() -> str:
    """A short account of the vector extensions, e.g. 'avx2 avx512f avx512_bf16 (capped: ...)'."""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    text = " ".join(f for f in wanted if f in cpu_flags()) or platform.machine()
    caps = isa_caps()
    return text + (f" (capped: {', '.join(f'{k}={v}' for k, v in caps.items())})" if caps else "")


def machine_id() -> str:
    """The key of per-machine caches: CPU model, instruction-set caps, cores, torch version."""
    import torch

    caps = ",".join(f"{k}={v}" for k, v in sorted(isa_caps().items()))
    return f"{cpu_name()} | {caps or 'native ISA'} | {os.cpu_count()} cpus | torch {torch.__version__}"


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones
    (which also absorb compilation and allocator warm-up)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
