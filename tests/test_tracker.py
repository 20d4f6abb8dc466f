import numpy as np
import pytest
import torch

from got10k.utils.metrics import rect_iou

from siamfc.config import TrackerConfig
from siamfc.errors import InputError
from siamfc.models.checkpoint import random_net
from siamfc.tracking.factory import TrackerSpec, build_tracker
from siamfc.tracking.backends import make_runner
from siamfc.tracking.siamfc import SiamFCTracker

from conftest import REAL, REFERENCE, WEIGHTS, moving_patch_clip, need_shared


def test_release_weights_follow_a_moving_textured_patch(release_30):
    frames, gt = moving_patch_clip(n=40)
    tracker = build_tracker(TrackerSpec("siamfc", str(release_30)))
    tracker.init(frames[0], gt[0])
    boxes = np.array([gt[0]] + [tracker.update(f) for f in frames[1:]])
    ious = rect_iou(boxes, gt)
    assert ious.min() > 0.5, ious
    # The target moved ~140 px; a tracker that stood still would have lost it.
    assert rect_iou(np.repeat(gt[:1], len(gt), 0), gt)[-1] == 0


@pytest.mark.parametrize("weights", ["FDSiamfc_30", "FDSiamfc_15"])
@pytest.mark.parametrize("seq", ["Crossing", "Football1", "S0601"])
def test_frame_by_frame_parity_with_public_implementation(weights, seq):
    need_shared(WEIGHTS / f"{weights}.pth", REAL / seq, REFERENCE / weights / f"{seq}.txt")
    from siamfc.data.sequences import otb_folder_sequence
    s = otb_folder_sequence(str(REAL / seq))
    # The resize crop is the public code's, pixel for pixel; the default warp differs by a grey level.
    tracker = build_tracker(TrackerSpec("siamfc", str(WEIGHTS / f"{weights}.pth"), options={"crop": "resize"}))
    boxes, times = tracker.track(s.frames, s.boxes[0])
    ref = np.loadtxt(REFERENCE / weights / f"{seq}.txt", delimiter=",")
    assert boxes.shape == ref.shape
    np.testing.assert_allclose(boxes, ref, atol=0.01)
    assert (times[1:] > 0).all()


@pytest.mark.parametrize("box", [[10, 10, 0, 20], [10, 10, 20, -1], [np.nan, 1, 2, 3]])
def test_invalid_initial_box_is_rejected(box):
    tracker = SiamFCTracker(make_runner(random_net().backbone, "fp32"), TrackerConfig())
    with pytest.raises(InputError, match="initial box"):
        tracker.init(np.zeros((100, 100, 3), np.uint8), np.array(box, float))


def test_target_near_the_border_stays_finite():
    frames, gt = moving_patch_clip(n=8, step=(-8.0, -9.0))
    tracker = SiamFCTracker(make_runner(random_net().backbone, "fp32"), TrackerConfig())
    tracker.init(frames[0], gt[0])
    for f in frames[1:]:
        assert np.isfinite(tracker.update(f)).all()


def test_the_plain_baseline_tracks_exactly_as_ours_does(tmp_path):
    """The benchmark's baseline (padded frame, eager NCHW, conv2d correlation) is the
    same algorithm: its boxes equal ours on a clip that leaves the frame."""
    from siamfc.models.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "net.pth", random_net(3))
    frames, gt = moving_patch_clip(seed=2, n=20, step=(9.0, 7.0))
    spec = TrackerSpec.parse(f"plain:{tmp_path / 'net.pth'}")
    assert spec.kind == "plain"
    runs = {}
    for kind in ("plain", "siamfc"):
        tracker = build_tracker(TrackerSpec(kind, str(tmp_path / "net.pth"), options={"crop": "resize"}))
        tracker.init(frames[0], gt[0])
        runs[kind] = np.array([tracker.update(f) for f in frames[1:]])
    assert np.abs(runs["siamfc"] - gt[0]).max() > 1   # it moved: the comparison is not vacuous
    np.testing.assert_allclose(runs["plain"], runs["siamfc"], atol=1e-3)


@pytest.mark.parametrize("shares_pool", [True, False])
def test_the_trackers_own_gemms_leave_a_foreign_backbones_cores_alone(shares_pool):
    """With a backbone outside PyTorch's pool, the correlation and upsampling GEMMs run on
    the calling thread (PyTorch's idle threads would spin through the next backbone run)."""
    torch_runner = make_runner(random_net().backbone, "fp32")

    class Runner:
        torch_threads = shares_pool

        def __call__(self, crops):
            return torch_runner(crops)

    tracker = SiamFCTracker(Runner(), TrackerConfig())
    frames, gt = moving_patch_clip(n=3)
    tracker.init(frames[0], gt[0])
    seen = []
    upsample = tracker._upsample
    tracker._upsample = lambda maps: seen.append(torch.get_num_threads()) or upsample(maps)
    before = torch.get_num_threads()
    torch.set_num_threads(2)   # so that "one thread" differs from the pool's count
    try:
        tracker.update(frames[1])
        assert seen == [2 if shares_pool else 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
