"""The 12 SiameseX models: built from their configs, with SiameseX's parameter counts and output
shapes, and SiameseX's own outputs reproduced from its reference weights (../shared/siamesex)."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from conftest import REPO, SHARED, need_shared
from siamfc.models.siamese import build_model, count_parameters, model_config
from siamfc.models.siamesex import load_siamesex

SIAMESEX = SHARED / "siamesex"

# SiameseX HEAD 36fec1e, trainable parameters and output shapes at z 127 / x 255 (issue 31)
TABLE = {
    "SiamFC": (2_336_320, {"score": (1, 1, 17, 17)}),
    "SiamVGG": (7_766_594, {"score": (1, 1, 17, 17)}),
    "SiamFCRes22": (1_444_928, {"score": (1, 1, 17, 17)}),
    "SiamFCIncep22": (1_694_656, {"score": (1, 1, 17, 17)}),
    "SiamFCNext22": (1_416_576, {"score": (1, 1, 17, 17)}),
    "SiamFCRes22W": (2_458_048, {"score": (1, 1, 17, 17)}),
    "SiamRPN": (21_219_300, {"cls": (1, 10, 17, 17), "loc": (1, 20, 17, 17)}),
    "SiamRPNVGG": (26_649_572, {"cls": (1, 10, 17, 17), "loc": (1, 20, 17, 17)}),
    "SiamRPNRes22": (76_959_204, {"cls": (1, 10, 17, 17), "loc": (1, 20, 17, 17)}),
    "SiamRPNIncep22": (119_680_356, {"cls": (1, 10, 17, 17), "loc": (1, 20, 17, 17)}),
    "SiamRPNResNeXt22": (76_930_852, {"cls": (1, 10, 17, 17), "loc": (1, 20, 17, 17)}),
    "SiamRPNPP": (53_950_624, {"cls": (1, 10, 25, 25), "loc": (1, 20, 25, 25)}),
}


def config_path(name: str):
    return REPO / "configs" / "siamesex" / f"{name}.yaml"


def reference():
    need_shared(SIAMESEX / "reference.py")
    spec = importlib.util.spec_from_file_location("siamesex_reference", SIAMESEX / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(TABLE))
def test_config_builds_siamesex_parameter_count_and_output_shapes(name):
    model = build_model(model_config(config_path(name))).eval()
    params, shapes = TABLE[name]
    assert count_parameters(model) == params
    cfg = model.cfg
    with torch.no_grad():
        out = model(torch.zeros(1, 3, cfg.exemplar_sz, cfg.exemplar_sz), torch.zeros(1, 3, cfg.instance_sz,
                                                                                    cfg.instance_sz))
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes


@pytest.mark.parametrize("name", list(TABLE))
def test_siamesex_reference_weights_give_siamesex_outputs(name):
    ref = reference()
    model = build_model(model_config(config_path(name))).eval()
    load_siamesex(model, ref.state_dict(name), name)
    z, x = ref.inputs()
    with torch.no_grad():
        got = model(z, x)
    worst = ref.compare(got, ref.outputs(name))
    assert max(worst.values()) <= 1e-5, worst
