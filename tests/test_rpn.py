"""Anchors, RPN targets and losses, and the anchor-based tracker on a hand-made model."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from got10k.utils.metrics import rect_iou

from siamfc.geometry import context_size, square, to_center
from siamfc.models.anchors import anchor_sizes, decode, encode, iou, make_anchors, split_cls, split_loc
from siamfc.tracking import rpn
from siamfc.tracking.rpn import RPNTracker, RPNTrackerConfig
from siamfc.training.losses import logistic_labels, rpn_cls_loss, rpn_loc_loss, rpn_loss, soft_margin_loss
from siamfc.training.rpn_targets import anchor_targets

from conftest import moving_patch_clip, textured

RATIOS, SCALES, STRIDE = [0.33, 0.5, 1.0, 2.0, 3.0], [8.0], 8
A = len(RATIOS)


# --- anchors -------------------------------------------------------------------------------------------------------

def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.concatenate([rng.uniform(-50, 300, (n, 2)), rng.uniform(2, 200, (n, 2))], 1)


def test_encode_decode_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    boxes, anchors = random_boxes(rng, 500), random_boxes(rng, 500)
    np.testing.assert_allclose(decode(encode(boxes, anchors), anchors), boxes, rtol=1e-5, atol=1e-5)
    tb, ta = torch.from_numpy(boxes), torch.from_numpy(anchors)
    back = decode(encode(tb, ta), ta)
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), boxes, rtol=1e-5, atol=1e-5)
    # float32 as the tracker and the loss use them
    b32, a32 = boxes.astype(np.float32), anchors.astype(np.float32)
    np.testing.assert_allclose(decode(encode(b32, a32), a32), b32, rtol=1e-5, atol=1e-4)


def test_encoding_is_the_published_parametrisation():
    anchor = np.array([10.0, 20.0, 40.0, 80.0])
    box = np.array([30.0, 0.0, 80.0, 40.0])
    np.testing.assert_allclose(encode(box, anchor), [0.5, -0.25, np.log(2), np.log(0.5)])


def test_anchor_sizes_follow_ratio_scale_and_stride():
    wh = anchor_sizes(RATIOS, SCALES, STRIDE)
    # pysot's and SiameseX's whole-pixel base sizes, times the scale
    np.testing.assert_array_equal(wh, [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]])
    np.testing.assert_allclose(wh[:, 1] / wh[:, 0], RATIOS, rtol=0.1)           # ratio is h / w
    np.testing.assert_allclose(wh.prod(1), (STRIDE * 8) ** 2, rtol=0.25)
    two = anchor_sizes([1.0], [4.0, 8.0], STRIDE)                                # ratio-major, then scale
    np.testing.assert_array_equal(two, [[32, 32], [64, 64]])


@pytest.mark.parametrize("side", [17, 25, 18])
def test_anchor_grid_is_centred_on_the_search_image(side):
    anchors = make_anchors(RATIOS, SCALES, STRIDE, side, 255)
    assert anchors.shape == (A, side, side, 4)
    centre = (255 - 1) / 2
    # the map's middle (a cell for odd sides, between two for even) is the image centre
    np.testing.assert_allclose(anchors[..., 0].mean(), centre)
    np.testing.assert_allclose(anchors[:, 0, 0, :2] + anchors[:, -1, -1, :2], 2 * centre)
    if side % 2:
        np.testing.assert_array_equal(anchors[:, side // 2, side // 2, :2], centre)
    np.testing.assert_array_equal(np.diff(anchors[..., 0], axis=2), STRIDE)    # x along columns
    np.testing.assert_array_equal(np.diff(anchors[..., 1], axis=1), STRIDE)    # y along rows
    np.testing.assert_array_equal(anchors[:, 3, 5, 2:], anchor_sizes(RATIOS, SCALES, STRIDE))


def test_channel_layout_is_class_major_then_anchor():
    n, s = 2, 3
    cls = torch.arange(n * 2 * A * s * s, dtype=torch.float32).view(n, 2 * A, s, s)
    loc = torch.arange(n * 4 * A * s * s, dtype=torch.float32).view(n, 4 * A, s, s)
    for k in range(2):
        for a in range(A):
            assert torch.equal(split_cls(cls, A)[:, a, :, :, k], cls[:, k * A + a])
    for c in range(4):
        for a in range(A):
            assert torch.equal(split_loc(loc, A)[:, a, :, :, c], loc[:, c * A + a])


def test_iou_of_anchors_with_a_box():
    anchors = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [100, 0, 10, 10], [0, 0, 20, 20]], np.float32)
    np.testing.assert_allclose(iou(anchors, np.array([0, 0, 10, 10])), [1, 50 / 150, 0, 0.25])


# --- targets and losses ---------------------------------------------------------------------------------------------

def test_targets_obey_thresholds_and_sample_sizes():
    anchors = make_anchors(RATIOS, SCALES, STRIDE, 17, 255)
    rng = np.random.default_rng(0)
    for box in ([127, 127, 64, 64], [140, 100, 70, 50], [110, 150, 40, 90], [127, 127, 300, 300]):
        overlap = iou(anchors, np.array(box, float))
        for max_pos, total in ((16, 64), (3, 10)):
            t = anchor_targets(anchors, np.array(box, np.float32), rng, total=total, max_pos=max_pos)
            pos, neg = t.cls == 1, t.cls == 0
            assert pos.sum() == min(max_pos, (overlap >= 0.6).sum())
            assert neg.sum() == min(total - max_pos, (overlap <= 0.3).sum())
            assert (overlap[pos] >= 0.6).all() and (overlap[neg] <= 0.3).all()
            assert ((t.cls == -1) | pos | neg).all()
            np.testing.assert_allclose(t.iou, overlap, rtol=1e-6)
            if pos.any():
                np.testing.assert_allclose(t.loc_weight.sum(), 1, rtol=1e-5)
                assert (t.loc_weight[~pos] == 0).all()
                np.testing.assert_allclose(decode(t.loc[pos], anchors[pos]),
                                           np.broadcast_to(box, (pos.sum(), 4)), rtol=1e-4)
    # the 13 ratio-1 anchors within two cells overlap a centred 64 x 64 box by >= 0.6; 3 are kept
    t = anchor_targets(anchors, np.array([127, 127, 64, 64]), rng, max_pos=3)
    assert (t.cls == 1).sum() == 3 and (t.cls[2] == 1).sum() == 3


def _targets(seed: int):
    anchors = make_anchors(RATIOS, SCALES, STRIDE, 17, 255)
    rng = np.random.default_rng(seed)
    boxes = [[127, 127, 64, 64], [150, 110, 60, 80]]
    return [anchor_targets(anchors, np.array(b, np.float32), rng) for b in boxes]


def test_rpn_loss_is_finite_and_falls_towards_the_targets():
    torch.manual_seed(0)
    targets = _targets(0)
    labels = torch.from_numpy(np.stack([t.cls for t in targets]))
    deltas = torch.from_numpy(np.stack([t.loc for t in targets]))
    weights = torch.from_numpy(np.stack([t.loc_weight for t in targets]))
    cls = torch.randn(2, 2 * A, 17, 17)
    loc = torch.randn(2, 4 * A, 17, 17)
    # the logits that point the right way: target up on positives, down on negatives
    toward = torch.zeros(2, A, 17, 17, 2)
    toward[..., 1] = labels.eq(1).float() - labels.eq(0).float()
    toward = toward.permute(0, 4, 1, 2, 3).reshape(2, 2 * A, 17, 17)
    exact = deltas.permute(0, 4, 1, 2, 3).reshape(2, 4 * A, 17, 17)
    cls_losses = [float(rpn_cls_loss(cls + s * toward, labels)) for s in (0, 1, 2, 4, 8)]
    loc_losses = [float(rpn_loc_loss(loc * (1 - s) + exact * s, deltas, weights)) for s in (0, 0.5, 0.9, 1)]
    assert np.isfinite(cls_losses).all() and np.isfinite(loc_losses).all()
    assert all(a > b for a, b in zip(cls_losses, cls_losses[1:])), cls_losses
    assert all(a > b for a, b in zip(loc_losses, loc_losses[1:])), loc_losses
    assert loc_losses[-1] == 0
    smooth = rpn_loc_loss(loc, deltas, weights, beta=1.0)
    assert 0 < float(smooth) < loc_losses[0]

    # the combined loss trains: a few SGD steps on free logits lower it
    cls_p, loc_p = cls.clone().requires_grad_(), loc.clone().requires_grad_()
    opt = torch.optim.SGD([cls_p, loc_p], lr=1.0)
    losses = []
    for _ in range(5):
        loss = rpn_loss(cls_p, loc_p, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and all(a > b for a, b in zip(losses, losses[1:])), losses


def test_rpn_cls_loss_ignores_unsampled_anchors_and_handles_no_positives():
    labels = torch.full((1, A, 5, 5), -1, dtype=torch.long)
    labels[0, 0, 0, 0] = 0
    cls = torch.zeros(1, 2 * A, 5, 5)
    base = rpn_cls_loss(cls, labels)                  # negatives only: half of log 2
    np.testing.assert_allclose(float(base), 0.5 * np.log(2), rtol=1e-6)
    cls[0, A + 1, 2, 2] = 50.0                        # an ignored anchor changes nothing
    assert float(rpn_cls_loss(cls, labels)) == float(base)


def test_soft_margin_loss():
    labels = logistic_labels(17, 16, 16, 8)           # SiameseX's map: +1 within two cells (L1), -1 elsewhere
    assert int((labels == 1).sum()) == 13 and set(labels.unique().tolist()) == {0.0, 1.0}
    signs = labels * 2 - 1
    losses = [float(soft_margin_loss(s * signs, labels)) for s in (-1, 0, 1, 3)]
    assert np.isfinite(losses).all() and all(a > b for a, b in zip(losses, losses[1:])), losses
    np.testing.assert_allclose(losses[1], np.log(2), rtol=1e-6)
    total = soft_margin_loss(torch.zeros(2, 1, 17, 17), labels, reduction="sum")
    np.testing.assert_allclose(float(total), 2 * 17 * 17 * np.log(2), rtol=1e-6)
    band = logistic_labels(17, 8, 24, 8)               # 0.5 cells are not counted
    r = torch.zeros(1, 1, 17, 17)
    r[band.expand_as(r) == 0.5] = 100.0
    np.testing.assert_allclose(float(soft_margin_loss(r, band)), np.log(2), rtol=1e-6)


# --- the tracker on a hand-made model --------------------------------------------------------------------------------

class CorrelationHead:
    """cls: the cosine similarity of the exemplar's features with each search window, the
    same for every anchor (background logit 0); loc: zero (every box is its anchor) or,
    given ``size`` (w, h in search-crop pixels), the deltas that give every anchor that size."""

    def __init__(self, size: tuple[float, float] | None, gain: float, bias: float) -> None:
        self.size, self.gain, self.bias = size, gain, bias

    def prepare(self, fz: torch.Tensor) -> torch.Tensor:
        return fz / fz.norm()

    def respond(self, kernel: torch.Tensor, fx: torch.Tensor) -> dict[str, torch.Tensor]:
        corr = F.conv2d(fx, kernel)
        energy = F.conv2d(fx.pow(2).sum(1, keepdim=True), torch.ones_like(kernel[:, :1]))
        logit = self.gain * (corr / energy.clamp_min(1e-12).sqrt() - self.bias)
        n, _, s, _ = corr.shape
        cls = torch.cat([torch.zeros(n, A, s, s), logit.expand(n, A, s, s)], 1)
        loc = torch.zeros(n, 4 * A, s, s)
        if self.size is not None:
            wh = torch.from_numpy(anchor_sizes(RATIOS, SCALES, STRIDE))
            loc[:, 2 * A:3 * A] = torch.log(self.size[0] / wh[:, 0])[None, :, None, None]
            loc[:, 3 * A:] = torch.log(self.size[1] / wh[:, 1])[None, :, None, None]
        return {"cls": cls, "loc": loc}


class CorrelationModel(nn.Module):
    """A SiamModel stand-in that needs no training: fixed random 8 x 8 filters at stride
    8 (127 -> 15, 255 -> 31 cells, a 17 x 17 map) and a correlation head."""

    def __init__(self, size: tuple[float, float] | None = None, gain: float = 8.0, bias: float = 0.5) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(exemplar_sz=127, instance_sz=255, stride=STRIDE, anchor_ratios=RATIOS,
                                   anchor_scales=SCALES, input="raw")
        filters = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        # zero-mean filters see texture, not brightness: the smooth background then
        # barely answers and the textured target dominates the correlation
        self.register_buffer("filters", filters - filters.mean((2, 3), keepdim=True))
        self.head = CorrelationHead(size, gain, bias)

    def normalise(self, img: torch.Tensor) -> torch.Tensor:
        return (img - 128) / 64

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        return F.conv2d(img, self.filters, stride=8)


def crop_side(box: np.ndarray) -> int:
    """The side, in frame pixels, of the search square the tracker cuts around ``box``."""
    y0, _, y1, _ = square(np.zeros(2), context_size(to_center(box)[1], 0.5) * 255 / 127)
    return y1 - y0


def crop_size(box: np.ndarray) -> np.ndarray:
    """``box``'s (w, h) in the tracker's 255-px search crop."""
    return box[2:] * 255 / crop_side(box)


def track(model: nn.Module, frames: list[np.ndarray], first: np.ndarray) -> np.ndarray:
    tracker = RPNTracker(model)
    tracker.init(frames[0], first)
    return np.array([first] + [tracker.update(f) for f in frames[1:]])


def centre_errors(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.hypot(*(boxes[:, :2] + boxes[:, 2:] / 2 - gt[:, :2] - gt[:, 2:] / 2).T)


def test_tracker_follows_a_moving_patch_with_anchor_boxes():
    """loc zero: every box is its anchor, so the centre snaps to the search crop's 8-px grid."""
    frames, gt = moving_patch_clip()
    boxes = track(CorrelationModel(), frames, gt[0])
    ious, errors = rect_iou(boxes, gt), centre_errors(boxes, gt)
    stride_px = STRIDE * crop_side(gt[0]) / 255                         # one stride of the crop, in frame pixels
    assert ious.min() > 0.5, ious
    # within half a stride on average and under one at worst: a grid shifted by half
    # a stride (SiameseX's Python 3 anchors) or a crop off by a few pixels breaks this
    assert errors.mean() < 0.5 * stride_px and errors.max() < 0.9 * stride_px, (errors, stride_px)
    assert rect_iou(np.repeat(gt[:1], len(gt), 0), gt)[-1] == 0               # standing still would fail


def test_tracker_decodes_regressed_sizes():
    """loc gives every anchor the target's true size in the crop: decoding, the size
    penalty and the smoothing must then keep the box's size exactly."""
    frames, gt = moving_patch_clip()
    boxes = track(CorrelationModel(tuple(crop_size(gt[0]))), frames, gt[0])
    ious, errors = rect_iou(boxes, gt), centre_errors(boxes, gt)
    np.testing.assert_allclose(boxes[:, 2:], gt[:, 2:], rtol=1e-4)
    assert ious.min() > 0.75, ious
    assert errors.mean() < 3 and errors.max() < 5, errors


def jump(dx: int, dy: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Two frames: a 63-px textured square whose box (63.5 px, centre on a pixel) makes the
    search crop exactly 255 px (scale 1), then the square moved by ``dx``, ``dy``."""
    rng = np.random.default_rng(1)
    background = (textured(rng, 320, 400, 32) * 0.6).astype(np.uint8)
    patch = textured(rng, 63, 63, 4)
    frames = []
    for r, c in ((120, 150), (120 + dy, 150 + dx)):
        frame = background.copy()
        frame[r:r + 63, c:c + 63] = patch
        frames.append(frame)
    box = np.array([150.75, 120.75, 63.5, 63.5])
    assert context_size(to_center(box)[1], 0.5) == 127
    return frames, box


def jump_errors(jumps: list[tuple[int, int]]) -> np.ndarray:
    errors = []
    for dx, dy in jumps:
        frames, box = jump(dx, dy)
        tracker = RPNTracker(CorrelationModel())
        tracker.init(frames[0], box)
        errors.append(to_center(tracker.update(frames[1]))[0] - to_center(box)[0] - [dy, dx])
    return np.array(errors)


JUMPS = [(0, 0), (16, -8), (-24, 8), (8, 32), (-40, -16)]


def test_tracker_lands_exactly_on_jumps_of_whole_strides():
    """Jumps of whole strides at scale 1 put the target on an anchor: anchor placement,
    the cell order and the crop's geometry must all be exact to land on it."""
    np.testing.assert_allclose(jump_errors(JUMPS), 0, atol=1e-6)


def test_the_jump_test_sees_siamesex_python3_anchor_shift(monkeypatch):
    def shifted(*args):
        return make_anchors(*args) - np.array([STRIDE / 2, STRIDE / 2, 0, 0], np.float32)

    monkeypatch.setattr(rpn, "make_anchors", shifted)
    np.testing.assert_allclose(jump_errors(JUMPS[:2]), -STRIDE / 2, atol=1e-6)


def test_flat_scores_leave_the_target_where_it_was():
    """Every anchor scoring alike, the cosine window alone picks the cell: its peak must be
    the map's centre, so the target stays put whatever the frames show (it only snaps to
    the centre of the pixel square the crop was cut from: this box's centre is on a half pixel)."""
    frames, gt = moving_patch_clip(n=5)
    centres = np.array([to_center(b)[0] for b in track(CorrelationModel(gain=0.0), frames, gt[0])])
    assert np.abs(centres - centres[0]).max() <= 0.5, centres


class Recorder(CorrelationModel):
    def normalise(self, img: torch.Tensor) -> torch.Tensor:
        self.seen = img
        return super().normalise(img)


def test_tracker_crops_rgb_and_checks_its_inputs():
    frame = np.empty((200, 300, 3), np.uint8)
    frame[:] = (200, 100, 50)
    model = Recorder()
    tracker = RPNTracker(model)
    tracker.init(frame, np.array([100, 80, 40, 30]))
    assert model.seen.shape == (1, 3, 127, 127)
    np.testing.assert_array_equal(model.seen[0, :, 60, 60], [200, 100, 50])    # RGB in, as the frame
    np.testing.assert_array_equal(model.seen[0, :, 0, 0], [200, 100, 50])      # padding: the mean colour
    box = tracker.update(frame)
    assert model.seen.shape == (1, 3, 255, 255) and np.isfinite(box).all()

    with pytest.raises(Exception, match="positive size"):
        tracker.init(frame, np.array([10, 10, 0, 5]))
    model.cfg.anchor_ratios = [1.0, 2.0]
    tracker = RPNTracker(model)
    tracker.init(frame, np.array([100, 80, 40, 30]))
    with pytest.raises(ValueError, match="2 anchors need 4 and 8"):
        tracker.update(frame)


def test_wild_deltas_keep_the_box_finite():
    """An untrained head's huge size deltas must not overflow into a NaN state."""
    frames, gt = moving_patch_clip(n=3)
    model = CorrelationModel()
    respond = model.head.respond

    def wild(kernel, fx):
        out = respond(kernel, fx)
        out["loc"][:, 2 * A:3 * A] = 1e4
        out["loc"][:, 3 * A:] = -1e4
        return out

    model.head.respond = wild
    boxes = track(model, frames, gt[0])
    assert np.isfinite(boxes).all() and (boxes[1:, 2:] >= 10).all() and (boxes[1:, 2:] <= [320, 240]).all()


def test_tracker_config():
    cfg = RPNTrackerConfig()
    assert (cfg.penalty_k, cfg.window_influence, cfg.lr, cfg.context) == (0.055, 0.42, 0.295, 0.5)
    tracker = RPNTracker(CorrelationModel(), cfg)
    assert (tracker.exemplar_sz, tracker.instance_sz) == (127, 255)
    assert RPNTracker(CorrelationModel(), RPNTrackerConfig(instance_sz=287)).instance_sz == 287
    from siamfc.config import ConfigError
    with pytest.raises(ConfigError, match="instance_sz"):
        RPNTrackerConfig(exemplar_sz=127, instance_sz=100)
    with pytest.raises(ConfigError, match="window_influence"):
        RPNTrackerConfig(window_influence=1.5)


def test_tracker_tracks_files(tmp_path):
    import cv2
    frames, gt = moving_patch_clip(n=6)
    paths = []
    for i, f in enumerate(frames):
        paths.append(str(tmp_path / f"{i:04d}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    boxes, times = RPNTracker(CorrelationModel()).track(paths, gt[0])
    assert boxes.shape == (6, 4) and times.shape == (6,)
    assert rect_iou(boxes, gt).min() > 0.5
