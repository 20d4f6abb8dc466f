"""Size and cost of a backbone: parameters, checkpoint size, FLOPs, CPU latency."""
from __future__ import annotations

import io

import torch
from torch import nn

from ..system import median_seconds


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def state_dict_mb(module: nn.Module) -> float:
    """Size of the saved fp32 state dict in MB (10^6 bytes)."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell() / 1e6


def gflops(module: nn.Module, size: int = 255) -> float:
    """GFLOPs for one search image, counted as the FDSiamFC paper's figures are:
    2 x conv MACs, plus one op per bias add, ReLU and max-pool input element and
    two per BN element (this reproduces 5.453 / 0.699 / 0.255 within 2%)."""
    macs, elementwise = _count(module, size)
    return (2 * macs + elementwise) / 1e9


def _count(module: nn.Module, size: int) -> tuple[int, int]:
    macs = elementwise = 0

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal macs, elementwise
        if isinstance(m, nn.Conv2d):
            macs += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            elementwise += out.numel() if m.bias is not None else 0
        elif isinstance(m, nn.BatchNorm2d):
            elementwise += 2 * out.numel()
        elif isinstance(m, nn.ReLU):
            elementwise += out.numel()
        elif isinstance(m, nn.MaxPool2d):
            elementwise += inp[0].numel()

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return macs, elementwise


def latency_ms(module: nn.Module, batch: int = 3, size: int = 255, repeats: int = 20,
               warmup: int = 3, channels_last: bool = True) -> float:
    """Median fp32 forward time of ``module`` on a (batch, 3, size, size) input."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module = module.eval().to(memory_format=fmt)
    x = (torch.rand(batch, 3, size, size) * 255).contiguous(memory_format=fmt)
    with torch.inference_mode():
        return median_seconds(lambda: module(x), repeats, warmup) * 1e3
