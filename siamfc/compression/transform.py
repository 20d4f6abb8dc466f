"""Transform a fully squeezed FD checkpoint into a slim plain chain, and verify it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.samples import sample_crops
from ..errors import InputError
from ..files import write_json, write_text
from ..models.checkpoint import build_net, load_checkpoint, save_checkpoint
from ..models.fold import fold_state_dict
from ..models.net import SiamNet
from ..models.stats import count_params, gflops, latency_ms, state_dict_mb

TOLERANCE = 1e-4


@dataclass
class FoldCheck:
    random_error: float
    crop_error: float
    crops_from: str

    @property
    def worst(self) -> float:
        return max(self.random_error, self.crop_error)


def fold_checkpoint(path: str) -> tuple[SiamNet, SiamNet, dict[str, Any]]:
    """Load an FD checkpoint and return (FD net, slim net, FD meta)."""
    loaded = load_checkpoint(path)
    if not loaded.meta.get("fd"):
        raise InputError(f"{path}: not a fully compressed FD checkpoint (it holds a plain network)")
    plan = loaded.net.backbone.plan
    if plan.step != plan.last_step:
        raise InputError(f"{path}: not a fully compressed FD checkpoint (need FD step {plan.last_step}, "
                         f"got step {plan.step})")
    slim_state = fold_state_dict(loaded.net.state_dict(), plan)
    slim = build_net(layers=plan.slim_layers, out_scale=loaded.net.head.out_scale)
    slim.load_state_dict(slim_state)
    return loaded.net.eval(), slim.eval(), loaded.meta


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@torch.no_grad()
def check_fold(fd: SiamNet, slim: SiamNet, image_dir: str | None) -> FoldCheck:
    """Worst relative difference of the two backbones on random input and on crops."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(4, 3, 255, 255, generator=gen) * 255
    crops, source = sample_crops(image_dir)
    errors = [relative_error(fd.backbone(x), slim.backbone(x)) for x in (noise, crops)]
    return FoldCheck(errors[0], errors[1], source)


def compression_table(rows: dict[str, nn.Module]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown and records for backbones named by ``rows`` (first is the reference)."""
    records = []
    for name, backbone in rows.items():
        records.append({"model": name, "widths": list(backbone.widths), "params": count_params(backbone),
                        "mb": round(state_dict_mb(backbone), 3), "gflops": round(gflops(backbone), 3),
                        "latency_ms": round(latency_ms(backbone), 2)})
    ref = records[0]
    lines = [f"| model | widths | params | MB | GFLOPs | latency 3x255 (ms, {torch.get_num_threads()} threads) | "
             "params / | FLOPs / | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['model']} | {'/'.join(map(str, r['widths']))} | {r['params']:,} | {r['mb']:.2f} | "
                     f"{r['gflops']:.3f} | {r['latency_ms']:.1f} | {ref['params'] / r['params']:.1f}x | "
                     f"{ref['gflops'] / r['gflops']:.1f}x | {ref['latency_ms'] / r['latency_ms']:.1f}x |")
    return "\n".join(lines), records


def transform(checkpoint: str, out: str, image_dir: str | None = None,
              extra_rows: dict[str, nn.Module] | None = None) -> dict[str, Any]:
    """Fold, verify (raises above :data:`TOLERANCE`), save, and tabulate against the teacher."""
    fd, slim, meta = fold_checkpoint(checkpoint)
    check = check_fold(fd, slim, image_dir)
    if check.worst > TOLERANCE:
        raise InputError(f"{checkpoint}: fold check failed: worst relative difference {check.worst:.2e} "
                         f"> {TOLERANCE:g}")
    save_checkpoint(out, slim, source=os.path.abspath(checkpoint), folded_from=meta["fd"],
                    fold_error=check.worst)
    teacher = build_net(layers=fd.backbone.plan.base).backbone
    rows = {"teacher": teacher, f"FD slim {os.path.basename(out)}": slim.backbone}
    rows.update(extra_rows or {})
    table, records = compression_table(rows)
    stem = os.path.splitext(out)[0]
    write_text(stem + "_table.md", table + "\n")
    write_json(stem + "_table.json", {"fold_check": check.__dict__, "rows": records})
    return {"check": check, "table": table, "records": records, "slim": slim}
