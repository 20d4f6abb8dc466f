import pytest
import torch

from siamfc.models.backbone import FULL_WIDTHS, AlexNet, widths_from_rates
from siamfc.models.checkpoint import build_net


@pytest.mark.parametrize("rate,widths", [
    (1.0, FULL_WIDTHS),
    (0.3, (28, 76, 114, 114, 76)),
    (0.15, (14, 38, 56, 56, 38)),
])
def test_width_rule(rate, widths):
    assert widths_from_rates([rate] * 5) == widths


@pytest.mark.parametrize("widths", [FULL_WIDTHS, (28, 76, 114, 114, 76), (14, 38, 56, 56, 38)])
def test_output_shapes(widths):
    net = build_net(widths).eval()
    z, x = torch.rand(1, 3, 127, 127), torch.rand(3, 3, 255, 255)
    with torch.no_grad():
        fz, fx = net.backbone(z), net.backbone(x)
        assert fz.shape == (1, widths[4], 6, 6)
        assert fx.shape == (3, widths[4], 22, 22)
        assert net(z, x).shape == (3, 1, 17, 17)
        # A batch of pairs correlates pair-wise.
        assert net(z.expand(3, -1, -1, -1), x).shape == (3, 1, 17, 17)


def test_groups_and_state_dict_layout():
    net = build_net((28, 76, 114, 114, 76))
    sd = net.state_dict()
    assert sd["backbone.conv2.0.weight"].shape == (76, 14, 5, 5)       # groups=2
    assert sd["backbone.conv3.0.weight"].shape == (114, 76, 3, 3)      # groups=1
    assert "backbone.conv5.1.weight" not in sd                          # no BN after conv5
    assert sd["backbone.conv1.1.running_var"].shape == (28,)


def test_widths_must_fit_groups():
    with pytest.raises(ValueError):
        AlexNet((27, 76, 114, 114, 76))


def test_fast_correlation_matches_the_head():
    from siamfc.models.head import XCorrHead
    from siamfc.tracking.ops import Correlator

    torch.manual_seed(0)
    z, x = torch.randn(1, 76, 6, 6), torch.randn(3, 76, 22, 22)
    want = XCorrHead(1.0)(z, x)[:, 0].numpy()
    got = Correlator(z.numpy())(x.numpy())
    assert got.shape == (3, 17, 17)
    assert float(abs(got - want).max() / abs(want).max()) < 1e-5


def test_the_gemm_upsampling_equals_opencvs_bicubic_resize():
    import cv2
    import numpy as np

    from siamfc.tracking.ops import Upsampler

    maps = np.random.default_rng(0).normal(0, 50, (3, 17, 17)).astype(np.float32)
    got = Upsampler(3, 17, 16)(maps)
    want = np.stack([cv2.resize(m, (272, 272), interpolation=cv2.INTER_CUBIC) for m in maps])
    assert got.shape == (3, 272, 272)
    assert float(abs(got - want).max() / abs(want).max()) < 1e-6
    assert [m.argmax() for m in got] == [m.argmax() for m in want]
