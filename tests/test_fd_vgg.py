"""FD beyond AlexNet: SiamVGG as a chain checkpoint, its FD plan, every closed-form step, and the exact fold."""
from __future__ import annotations

import pytest
import torch

from conftest import REPO
from siamfc.compression.transform import TOLERANCE, check_fold, fold_checkpoint
from siamfc.compression.squeezes import init_hourglass, init_selection
from siamfc.compression.transitions import carry_over, init_narrowed
from siamfc.errors import InputError
from siamfc.models.as_chain import as_chain, save_as_chain
from siamfc.models.backbone import init_weights
from siamfc.models.checkpoint import build_net, load_checkpoint, save_checkpoint
from siamfc.models.fd import FDChain, FDPlan
from siamfc.models.fold import fold_state_dict
from siamfc.models.parts.vgg import FULL_WIDTHS, vgg_layers
from siamfc.models.siamese import build_model, model_config
from siamfc.tracking.factory import TrackerSpec, build_tracker

SLIM_30 = (18, 18, 38, 38, 76, 76, 76, 152, 152, 152, 76)


def siamvgg(seed: int = 0, gain: float = 0.7):
    torch.manual_seed(seed)
    model = build_model(model_config(REPO / "configs" / "siamesex" / "SiamVGG.yaml"))
    init_weights(model.backbone)   # Xavier: scores with a spread to compare
    randomize_biases(model.backbone, seed)
    bn = model.head.adjust
    bn.weight.data.fill_(gain)
    bn.bias.data.fill_(0.3)
    bn.running_mean.fill_(2.0)
    bn.running_var.fill_(9.0)
    return model.eval()


def randomize_biases(net: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.bias.data.copy_(torch.randn(m.out_channels, generator=g) * 0.05)


def test_siamvgg_becomes_its_chain_up_to_the_score_shift():
    model = siamvgg()
    converted = as_chain(model)
    g = 0.7 / (9.0 + model.head.adjust.eps) ** 0.5
    assert converted.net.head.out_scale == pytest.approx(g)
    assert converted.shift == pytest.approx(0.3 - 2.0 * g)
    gen = torch.Generator().manual_seed(3)
    z, x = torch.rand(1, 3, 127, 127, generator=gen) * 255, torch.rand(1, 3, 191, 191, generator=gen) * 255
    with torch.no_grad():
        want = model(model.normalise(z), model.normalise(x))["score"]
        got = converted.net(z, x)   # raw pixels in: the normalisation is in conv1
    assert got.shape == want.shape == (1, 1, 9, 9)
    want = want - converted.shift
    assert float((got - want).abs().max() / want.abs().max()) < 1e-4
    assert int(got.argmax()) == int(want.argmax())


def test_the_chain_checkpoint_carries_its_score_scale_and_alexnet_keeps_siamfcs(tmp_path):
    converted = save_as_chain(siamvgg(), tmp_path / "vgg.pth")
    loaded = load_checkpoint(tmp_path / "vgg.pth")
    assert loaded.meta["converted_from"] == "SiamVGG" and loaded.meta["dropped_score_shift"] == converted.shift
    assert loaded.net.head.out_scale == pytest.approx(converted.net.head.out_scale)
    assert loaded.net.backbone.widths == FULL_WIDTHS
    assert build_tracker(TrackerSpec("siamfc", str(tmp_path / "vgg.pth"))).cfg.out_scale == \
        pytest.approx(converted.net.head.out_scale)
    assert build_tracker(TrackerSpec("siamfc", str(tmp_path / "vgg.pth"), options={"out_scale": 0.5})).cfg.out_scale == 0.5
    save_checkpoint(tmp_path / "alex.pth", build_net())
    assert load_checkpoint(tmp_path / "alex.pth").net.head.out_scale == 0.001
    assert build_tracker(TrackerSpec("siamfc", str(tmp_path / "alex.pth"))).cfg.out_scale == 0.001


def test_models_that_are_not_a_chain_with_a_positive_score_gain_are_refused():
    with pytest.raises(InputError, match="not positive"):
        as_chain(siamvgg(gain=-0.5))
    rpn = build_model(model_config(REPO / "configs" / "siamesex" / "SiamRPN.yaml"))
    with pytest.raises(InputError, match="plain-chain backbone"):
        as_chain(rpn)


def test_the_fd_plan_of_vgg_has_21_steps_and_the_slim_widths():
    plan = FDPlan(vgg_layers(), (0.3,), 0)
    assert plan.last_step == 21
    assert plan.slim == SLIM_30
    assert tuple(layer.width for layer in plan.slim_layers) == SLIM_30
    last = FDChain(plan.at(21))
    assert last.out_channels == 76
    assert set(last.set_trainable(fine_tune=False)) == {"squeeze11.weight", "squeeze11.bias"}
    assert set(FDChain(plan.at(20)).set_trainable(fine_tune=False)) == {"conv11.0.weight", "conv11.0.bias"}


def test_the_fold_of_fd_vgg_at_rate_03_is_exact(tmp_path):
    torch.manual_seed(2)
    plan = FDPlan(vgg_layers(), (0.3,), 21)
    fd = build_net(plan=plan, out_scale=0.02)
    randomize_biases(fd)
    save_checkpoint(tmp_path / "fd.pth", fd)
    fd_net, slim, meta = fold_checkpoint(str(tmp_path / "fd.pth"))
    assert slim.backbone.widths == SLIM_30 and slim.head.out_scale == 0.02
    check = check_fold(fd_net, slim, None)
    assert check.worst <= TOLERANCE


@pytest.fixture
def one_thread():
    """The fits below run thousands of tiny solves: one thread spares them the pool's hand-offs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_closed_form_step_runs_on_a_vgg_chain_and_the_result_folds(one_thread):
    base = vgg_layers(tuple(w // 16 for w in FULL_WIDTHS))          # VGG's structure, a sixteenth of its widths
    plan = FDPlan(base, (0.5,), 0)
    gen = torch.Generator().manual_seed(0)
    sample = [torch.rand(6, 3, 95, 95, generator=gen) * 255, torch.rand(6, 3, 111, 111, generator=gen) * 255]
    torch.manual_seed(0)
    teacher = build_net(layers=base)
    randomize_biases(teacher)
    old = FDChain(plan)
    old.load_state_dict(teacher.backbone.state_dict())
    ref = FDChain(plan)
    ref.load_state_dict(teacher.backbone.state_dict())
    for step in range(1, plan.last_step + 1):
        new = FDChain(plan.at(step))
        carry_over(new, old.state_dict())
        layer = (step + 1) // 2
        if step % 2 and layer < plan.layers:
            residual = init_selection(new, old, layer, sample, ref)
        elif step % 2:
            residual = init_hourglass(new, old, layer, sample, ref)
        else:
            residual = init_narrowed(new, old, layer, sample, ref)
        assert residual == residual and residual >= 0, f"step {step}"
        old = new.eval()
    slim = build_net(layers=plan.slim_layers)
    slim.load_state_dict(fold_state_dict({f"backbone.{k}": v for k, v in old.state_dict().items()}, old.plan))
    x = sample[1]
    with torch.no_grad():
        a, b, t = old(x), slim.eval().backbone(x), teacher.eval().backbone(x)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-5
    assert a.shape == (6, plan.slim[-1]) + t.shape[2:]
