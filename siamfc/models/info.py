"""What a config-built model costs: parameters per part, GFLOPs and output shapes at its crop sizes."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .siamese import SiamModel, count_parameters


def model_info(model: SiamModel) -> dict[str, Any]:
    """Trainable parameters (total, backbone, neck, head); GFLOPs of one exemplar and one search
    forward, head included, as torch's FLOP counter counts them (2 per multiply-add of convs and
    matmuls); and the output shapes."""
    cfg = model.cfg
    z = torch.zeros(1, 3, cfg.exemplar_sz, cfg.exemplar_sz)
    x = torch.zeros(1, 3, cfg.instance_sz, cfg.instance_sz)
    model = model.eval()
    with torch.no_grad():
        with FlopCounterMode(display=False) as total:
            out = model(z, x)
        with FlopCounterMode(display=False) as search:
            model.embed(x)
    return {
        "name": cfg.name,
        "params": {"total": count_parameters(model), "backbone": count_parameters(model.backbone),
                   "neck": count_parameters(model.neck), "head": count_parameters(model.head)},
        "gflops": total.get_total_flops() / 1e9,
        "search_gflops": search.get_total_flops() / 1e9,
        "sizes": {"exemplar": cfg.exemplar_sz, "instance": cfg.instance_sz, "stride": cfg.stride},
        "outputs": {k: list(v.shape) for k, v in out.items()},
        "input": cfg.input, "tracker": cfg.tracker,
    }
