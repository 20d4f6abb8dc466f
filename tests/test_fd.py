"""FD structure per step, the exact fold, and the compression table's counts."""
import pytest
import torch

from siamfc.compression.transitions import carry_over, init_hourglass, init_narrowed
from siamfc.models.backbone import FULL_WIDTHS, AlexNet, widths_from_rates
from siamfc.models.checkpoint import build_net
from siamfc.models.fd import FDAlexNet, FDPlan
from siamfc.models.fold import fold_conv, fold_state_dict
from siamfc.models.net import SiamNet
from siamfc.models.stats import count_params, gflops

RATES = (0.3,) * 5
SLIM = widths_from_rates(RATES)


def randomize_bn(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("step", range(10))
def test_structure_and_trainable_parameters(step):
    net = FDAlexNet(FDPlan(RATES, step))
    names = {n.split(".")[0] for n, _ in net.named_parameters()}
    for i in range(1, 6):
        assert (f"squeeze{i}" in names) == (step >= 2 * i - 1)
        assert (f"combine{i}" in names) == (i < 5 and step == 2 * i - 1)
    for i in range(1, 5):   # BN_i and conv_{i+1} narrow from step 2i on
        want = SLIM[i - 1] if step >= 2 * i else FULL_WIDTHS[i - 1]
        assert getattr(net, f"conv{i}")[1].num_features == want
        assert getattr(net, f"conv{i + 1}")[0].in_channels == want
    trainable = set(net.set_trainable(fine_tune=False))
    if step == 0:
        assert trainable == {n for n, _ in net.named_parameters()}
    elif step % 2:
        i = (step + 1) // 2
        assert trainable and all(n.startswith((f"squeeze{i}.", f"combine{i}.")) for n in trainable)
        assert any(n.startswith(f"squeeze{i}.") for n in trainable)
    else:
        i = step // 2
        assert trainable == {f"conv{i}.1.weight", f"conv{i}.1.bias", f"conv{i + 1}.0.weight", f"conv{i + 1}.0.bias"}
    assert set(net.set_trainable(fine_tune=True)) == {n for n, _ in net.named_parameters()}
    out = net.eval()(torch.rand(2, 3, 127, 127))
    assert out.shape == (2, SLIM[4] if step == 9 else 256, 6, 6)


@pytest.mark.parametrize("groups,s_groups", [(1, 1), (2, 2), (1, 2)])
def test_fold_is_exact_for_grouped_convs(groups, s_groups):
    torch.manual_seed(groups * 10 + s_groups)
    conv = torch.nn.Conv2d(16, 24, 3, groups=groups).double()
    squeeze = torch.nn.Conv2d(24, 8, 1, groups=s_groups).double()
    w, b = fold_conv(conv.weight, conv.bias, groups, squeeze.weight, squeeze.bias, s_groups)
    x = torch.randn(2, 16, 9, 9, dtype=torch.float64)
    want = squeeze(conv(x))
    got = torch.nn.functional.conv2d(x, w, b, groups=groups)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fold_rejects_mixing_across_conv_groups():
    conv = torch.nn.Conv2d(16, 24, 3, groups=2)
    squeeze = torch.nn.Conv2d(24, 8, 1, groups=1)
    with pytest.raises(ValueError):
        fold_conv(conv.weight, conv.bias, 2, squeeze.weight, squeeze.bias, 1)


@pytest.mark.parametrize("grouping", ["conv", "aligned"])
def test_folded_slim_network_matches_fd_network(grouping):
    torch.manual_seed(1)
    fd = build_net(plan=FDPlan(RATES, 9, grouping))
    randomize_bn(fd)
    fd.eval()
    slim = build_net(SLIM)
    slim.load_state_dict(fold_state_dict(fd.state_dict(), fd.backbone.plan))
    slim.eval()
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(3, 3, 255, 255) * 255
    with torch.no_grad():
        for layer in range(1, 6):  # every layer's output, not just the last
            a, b = fd.backbone.trace(x)[f"block{layer}"], x
            for i in range(1, layer + 1):
                b = getattr(slim.backbone, f"conv{i}")(b)
            assert float((a - b).abs().max() / a.abs().max()) < 1e-5
        ra, rb = fd(z, x), slim(z, x)
    assert ra.shape == rb.shape == (3, 1, 17, 17)
    assert float((ra - rb).abs().max() / ra.abs().max()) < 1e-5


def test_parameter_counts_and_flops_match_the_paper():
    counts = {r: count_params(AlexNet(widths_from_rates([r] * 5))) for r in (0.3, 0.15)}
    assert counts == {0.3: 213_282, 0.15: 55_102}
    for rate, paper in ((1.0, 5.453), (0.3, 0.699), (0.15, 0.255)):
        assert gflops(AlexNet(widths_from_rates([rate] * 5))) == pytest.approx(paper, rel=0.02)


def test_inherit_initialisation_starts_close_to_the_previous_step():
    torch.manual_seed(0)
    sample = torch.rand(6, 3, 127, 127) * 255
    teacher = FDAlexNet(FDPlan((0.5,) * 5, 0))
    randomize_bn(teacher)
    # odd step: the PCA hourglass keeps more signal than a random one
    pca = FDAlexNet(FDPlan((0.5,) * 5, 1))
    carry_over(pca, teacher.state_dict())
    rand = FDAlexNet(FDPlan((0.5,) * 5, 1))
    carry_over(rand, teacher.state_dict())
    init_hourglass(pca, teacher, 1, sample)
    with torch.no_grad():
        ref = teacher.eval()(sample)
        err_pca = float((pca.eval()(sample) - ref).norm() / ref.norm())
        err_rand = float((rand.eval()(sample) - ref).norm() / ref.norm())
    assert err_pca < 0.5 * err_rand
    # even step: the least-squares conv2 reproduces the old conv2 output far better than a fresh one
    fresh = FDAlexNet(FDPlan((0.5,) * 5, 2))
    carry_over(fresh, pca.state_dict())
    fitted = FDAlexNet(FDPlan((0.5,) * 5, 2))
    carry_over(fitted, pca.state_dict())
    residual = init_narrowed(fitted, pca, 1, sample)
    with torch.no_grad():
        want = pca.trace(sample)["conv2"]
        errors = [float((n.eval().trace(sample)["conv2"] - want).norm() / (want - want.mean()).norm())
                  for n in (fitted, fresh)]
    assert errors[0] < 0.5 * errors[1]
    assert residual < 0.9
