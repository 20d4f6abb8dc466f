import pytest
import torch

from siamfc.errors import InputError
from siamfc.models.checkpoint import build_net, load_checkpoint, save_checkpoint


def test_release_checkpoint_loads_with_inferred_widths(release_30):
    loaded = load_checkpoint(release_30)
    assert loaded.net.backbone.widths == (28, 76, 114, 114, 76)
    raw = torch.load(release_30, map_location="cpu")
    got = loaded.net.state_dict()
    for k, v in raw.items():
        torch.testing.assert_close(got[k], v.cpu())
    assert sum(p.numel() for p in loaded.net.parameters()) == 213_282


def test_bare_and_wrapped_state_dicts_round_trip(tmp_path):
    net = build_net((14, 38, 56, 56, 38))
    save_checkpoint(tmp_path / "ours.pth", net, epoch=3)
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, tmp_path / "ddp.pth")
    x = torch.rand(1, 3, 127, 127)
    with torch.no_grad():
        want = net.eval().backbone(x)
        for name in ("ours.pth", "ddp.pth"):
            loaded = load_checkpoint(tmp_path / name)
            torch.testing.assert_close(loaded.net.backbone(x), want)
    assert load_checkpoint(tmp_path / "ours.pth").meta["epoch"] == 3


def test_mismatched_checkpoint_lists_keys_and_shapes(tmp_path):
    sd = build_net().state_dict()
    sd["backbone.conv3.0.weight"] = torch.zeros(384, 100, 3, 3)
    del sd["backbone.conv4.1.running_mean"]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(InputError) as err:
        load_checkpoint(tmp_path / "bad.pth")
    msg = str(err.value)
    assert "bad.pth" in msg and "\n" not in msg
    assert "backbone.conv3.0.weight has (384, 100, 3, 3), expected (384, 256, 3, 3)" in msg
    assert "missing backbone.conv4.1.running_mean" in msg


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unreadable_or_missing_checkpoint(tmp_path, content):
    path = tmp_path / "x.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match="x.pth"):
        load_checkpoint(path)


def test_non_alexnet_state_dict(tmp_path):
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match=r"other.pth.*missing backbone.conv1.0.weight"):
        load_checkpoint(tmp_path / "other.pth")
