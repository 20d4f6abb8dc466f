"""FD structure per step, the exact fold, and the compression table's counts."""
import pytest
import torch

from siamfc.compression.squeezes import init_hourglass
from siamfc.compression.transitions import carry_over, init_narrowed
from siamfc.models.backbone import FULL_WIDTHS, AlexNet, alexnet_layers, widths_from_rates
from siamfc.models.checkpoint import build_net
from siamfc.models.fd import FDChain, FDPlan
from siamfc.models.fold import fold_conv, fold_state_dict
from siamfc.models.stats import count_params, gflops

RATES = (0.3,) * 5
SLIM = widths_from_rates(RATES)
ALEX = alexnet_layers(FULL_WIDTHS)


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
    net = FDChain(FDPlan(ALEX, RATES, step))
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
    fd = build_net(plan=FDPlan(ALEX, RATES, 9, grouping))
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
    teacher = FDChain(FDPlan(ALEX, (0.5,), 0))
    randomize_bn(teacher)
    # odd step: the PCA hourglass keeps more signal than a random one
    pca = FDChain(FDPlan(ALEX, (0.5,), 1))
    carry_over(pca, teacher.state_dict())
    rand = FDChain(FDPlan(ALEX, (0.5,), 1))
    carry_over(rand, teacher.state_dict())
    init_hourglass(pca, teacher, 1, sample)
    with torch.no_grad():
        ref = teacher.eval()(sample)
        err_pca = float((pca.eval()(sample) - ref).norm() / ref.norm())
        err_rand = float((rand.eval()(sample) - ref).norm() / ref.norm())
    assert err_pca < 0.5 * err_rand
    # even step: the least-squares conv2 reproduces the old conv2 output far better than a fresh one
    fresh = FDChain(FDPlan(ALEX, (0.5,), 2))
    carry_over(fresh, pca.state_dict())
    fitted = FDChain(FDPlan(ALEX, (0.5,), 2))
    carry_over(fitted, pca.state_dict())
    residual = init_narrowed(fitted, pca, 1, sample)
    with torch.no_grad():
        want = pca.trace(sample)["conv2"]
        errors = [float((n.eval().trace(sample)["conv2"] - want).norm() / (want - want.mean()).norm())
                  for n in (fitted, fresh)]
    assert errors[0] < 0.5 * errors[1]
    assert residual < 0.9


# ---------------------------------------------------------------- FD for any chain

from siamfc.models.chain import ConvChain, Layer  # noqa: E402

CHAINS = {
    # three layers, odd widths, a padded and strided middle layer, BN on the last layer too
    "3-layer": (Layer(10, 3, 1, 1, 1, pool=(2, 2)), Layer(22, 3, 2, 1, 2), Layer(18, 3, 1, 0, 2, bn=True, relu=False)),
    # five layers of arbitrary widths, no BN on the first, groups 1 and 2
    "5-layer": (Layer(20, 5, 2, 0, 1, bn=False, pool=(3, 2)), Layer(32, 3, 1, 1, 2), Layer(40, 3, 1, 1, 1),
                Layer(24, 3, 1, 0, 2), Layer(16, 3, 1, 0, 2, bn=False, relu=False)),
}


@pytest.mark.parametrize("chain", CHAINS)
def test_plans_follow_the_chain_not_alexnet(chain):
    base = CHAINS[chain]
    n = len(base)
    plan = FDPlan(base, (0.5,), 0)
    assert plan.last_step == 2 * n - 1
    slim = plan.slim
    x = torch.rand(2, 3, 63, 63) * 255
    for step in range(plan.last_step + 1):
        net = FDChain(plan.at(step)).eval()
        names = {k.split(".")[0] for k, _ in net.named_parameters()}
        for i in range(1, n + 1):
            assert (f"squeeze{i}" in names) == (step >= 2 * i - 1)
            assert (f"combine{i}" in names) == (i < n and step == 2 * i - 1)
            if base[i - 1].bn:
                narrow = step >= (2 * i if i < n else 2 * i - 1)
                assert getattr(net, f"conv{i}")[1].num_features == (slim[i - 1] if narrow else base[i - 1].width)
        for i in range(1, n):
            assert getattr(net, f"conv{i + 1}")[0].in_channels == (slim[i - 1] if step >= 2 * i else base[i - 1].width)
        trainable = set(net.set_trainable(fine_tune=False))
        assert trainable
        if 0 < step < plan.last_step and step % 2 == 0:
            i = step // 2
            assert all(t.startswith((f"conv{i}.1.", f"conv{i + 1}.0.")) for t in trainable)
        if step == plan.last_step:
            assert any(t.startswith(f"squeeze{n}.") for t in trainable)
            assert all(t.startswith((f"squeeze{n}.", f"conv{n}.1.")) for t in trainable)
        with torch.no_grad():
            out = net(x)
        assert out.shape[1] == (slim[-1] if step == plan.last_step else base[-1].width)


@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("grouping", ["conv", "aligned"])
def test_any_chain_folds_exactly(chain, grouping):
    base = CHAINS[chain]
    torch.manual_seed(4)
    plan = FDPlan(base, (0.5,), FDPlan.last_step_of(base), grouping)
    fd = build_net(plan=plan)
    randomize_bn(fd)
    slim = build_net(layers=plan.slim_layers)
    slim.load_state_dict(fold_state_dict(fd.state_dict(), plan))
    assert isinstance(slim.backbone, ConvChain) and slim.backbone.widths == plan.slim
    x = torch.rand(3, 3, 63, 63) * 255
    with torch.no_grad():
        a, b = fd.eval().backbone(x), slim.eval().backbone(x)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-5


def test_halving_the_release_fd30_widths_gives_fd15():
    plan = FDPlan(alexnet_layers((28, 76, 114, 114, 76)), (0.5,), 9)
    assert plan.slim == (14, 38, 56, 56, 38)
    torch.manual_seed(5)
    fd = build_net(plan=plan)
    randomize_bn(fd)
    slim = build_net(plan.slim)
    slim.load_state_dict(fold_state_dict(fd.state_dict(), plan))
    assert count_params(slim.backbone) == 55_102
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255
    with torch.no_grad():
        ra, rb = fd.eval()(z, x), slim.eval()(z, x)
    assert float((ra - rb).abs().max() / ra.abs().max()) < 1e-5


def test_a_rate_that_leaves_a_width_outside_its_groups_is_refused():
    FDPlan((Layer(8, 3, groups=1), Layer(6, 3, groups=2)), (0.5,), 0)        # 4 and 2 channels fit
    with pytest.raises(ValueError, match="conv2 width 0"):
        FDPlan((Layer(8, 3), Layer(6, 3, groups=2)), (0.25,), 0)    # 6 * 0.25 leaves no channel
    with pytest.raises(ValueError, match="2 squeeze rates for a chain of 3"):
        FDPlan(CHAINS["3-layer"], (0.5, 0.5), 0)


# ---------------------------------------------------------------- a teacher with folded BN

def fold_bn_into_convs(net: torch.nn.Module) -> None:
    """Make every BN the identity by folding it into the conv before it (as SiamFC_VID.pth is)."""
    for block in (m for m in net.modules() if isinstance(m, torch.nn.Sequential)):
        if len(block) > 1 and isinstance(block[1], torch.nn.BatchNorm2d):
            conv, bn = block[0], block[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
                bn.running_mean.zero_()
                bn.running_var.fill_(1)
                bn.weight.fill_(1)
                bn.bias.zero_()


def test_identity_bn_teacher_keeps_its_function_and_trains_sanely():
    from siamfc.models.batchnorm import identity_bns, reexpress_identity_bns

    torch.manual_seed(6)
    net = build_net((28, 76, 114, 114, 76))
    randomize_bn(net)
    sample = torch.rand(8, 3, 127, 127) * 255
    with torch.no_grad():
        want = net.eval().backbone(sample)
    fold_bn_into_convs(net)
    assert identity_bns(net.backbone) == ["conv1.1", "conv2.1", "conv3.1", "conv4.1"]
    import copy

    with torch.no_grad():
        folded = net.eval().backbone(sample)
        # in train mode, identity BN normalises with batch statistics: the function changes at once
        naive = copy.deepcopy(net.backbone).train()(sample)
    assert float((folded - want).abs().max() / want.abs().max()) < 1e-4
    naive_err = float((naive - folded).norm() / folded.norm())
    changed = reexpress_identity_bns(net.backbone, sample)
    assert changed == ["conv1.1", "conv2.1", "conv3.1", "conv4.1"] and identity_bns(net.backbone) == []
    with torch.no_grad():
        again = net.eval().backbone(sample)
        trained_mode = net.backbone.train()(sample)
    assert float((again - folded).abs().max() / folded.abs().max()) < 1e-4
    assert float((trained_mode - folded).norm() / folded.norm()) < 0.1 * naive_err
