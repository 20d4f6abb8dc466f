"""NanoTrack v2 as a config-built model: its parts against the ONNX pair OpenCV runs, our tracker against
cv2.TrackerNano, and the export back to that pair. The weights and the ONNX files are SiamTrackers' in
../shared/peers/nanotrackv2 (tests needing them skip when it is absent)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, SHARED, need_shared
from siamfc.config import ConfigError, to_dict
from siamfc.data.synthetic import render_sequence
from siamfc.errors import InputError
from siamfc.models.checkpoint import read_checkpoint
from siamfc.models.model_io import load_model
from siamfc.models.siamese import TRACKERS, build_model, model_config
from siamfc.models.siamesex import load_siamesex
from siamfc.tracking.factory import MODEL_TRACKERS, TrackerSpec, build_tracker
from siamfc.tracking.nano import NanoTracker, NanoTrackerConfig

CONFIG = REPO / "configs" / "nanotrack" / "NanoTrackV2.yaml"
PEER = SHARED / "peers" / "nanotrackv2"
WEIGHTS = PEER / "nanotrackv2.pth"
ONNX_PAIR = (PEER / "nanotrack_backbone_sim.onnx", PEER / "nanotrack_head_sim.onnx")
OPENCV_TRACK = {"window_influence": 0.455, "penalty_k": 0.055, "lr": 0.37}   # tracker_nano.cpp's constants


def relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def model():
    need_shared(WEIGHTS)
    return load_model(WEIGHTS, CONFIG).model


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], np.ndarray]:
    """30 frames of a synthetic sequence (RGB) and its first box, whole pixels as cv2's Rect takes it."""
    seq = render_sequence(np.random.SeedSequence(2), 30, 320, 240)
    return seq.frames, np.round(seq.boxes[0])


def opencv_boxes(frames: list[np.ndarray], box: np.ndarray, backbone: str, head: str) -> np.ndarray:
    """cv2.TrackerNano's boxes, 1-based like ours (it takes and gives 0-based whole-pixel Rects of BGR frames)."""
    if not hasattr(cv2, "TrackerNano"):
        pytest.skip(f"OpenCV {cv2.__version__} has no TrackerNano")
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = backbone, head
    tracker = cv2.TrackerNano_create(params)
    tracker.init(cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR), tuple(int(v) for v in (box[0] - 1, box[1] - 1, *box[2:])))
    out = [box]
    for frame in frames[1:]:
        _, (x, y, w, h) = tracker.update(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        out.append([x + 1, y + 1, w, h])
    return np.array(out, float)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    return inter / (np.prod(a[:, 2:], axis=1) + np.prod(b[:, 2:], axis=1) - inter)


# ---------------------------------------------------------------- no ../shared needed

def test_the_parts_give_nanotracks_shapes_and_the_registry_covers_every_tracker_name():
    net = build_model(model_config(CONFIG)).eval()
    with torch.no_grad():
        fz, fx = net.embed(torch.rand(1, 3, 127, 127) * 255), net.embed(torch.rand(1, 3, 255, 255) * 255)
        out = net.head.respond(net.head.prepare(fz), fx)
    assert fz.shape == (1, 48, 8, 8) and fx.shape == (1, 48, 16, 16) and net.backbone.stride == 16
    assert out["cls"].shape == (1, 2, 16, 16) and out["loc"].shape == (1, 4, 16, 16) and (out["loc"] > 0).all()
    assert set(MODEL_TRACKERS) == set(TRACKERS)
    with pytest.raises(ConfigError, match="tracker"):
        model_config({**to_dict(model_config(CONFIG)), "tracker": "nope"})


def test_raw_bgr_input_swaps_the_channels_and_raw_keeps_them():
    net = build_model(model_config(CONFIG))
    img = torch.arange(3.0).view(1, 3, 1, 1)
    assert torch.equal(net.normalise(img), img)
    net.cfg.input = "raw_bgr"
    assert net.normalise(img).flatten().tolist() == [2.0, 1.0, 0.0]


# ---------------------------------------------------------------- SiamTrackers' weights and ONNX pair

def test_the_checkpoint_loads_strictly_but_for_the_neck_tracking_never_runs(model):
    state = read_checkpoint(WEIGHTS)["state_dict"]   # a pysot snapshot: epoch, state_dict, optimizer
    assert sum(k.startswith("neck.") for k in state) == 6 and model.neck is None
    fresh = build_model(model.cfg)
    with pytest.raises(InputError, match="unexpected"):
        load_siamesex(fresh, {**state, "ban_head.extra.weight": torch.zeros(1)})
    del state["ban_head.cls_pred.0.bias"]
    with pytest.raises(InputError, match="missing head.cls_pred.bias"):
        load_siamesex(fresh, state)


def test_backbone_and_head_match_the_onnx_pair(model):
    ort = pytest.importorskip("onnxruntime")
    need_shared(*ONNX_PAIR)
    gen = torch.Generator().manual_seed(0)
    z, x = torch.rand(1, 3, 127, 127, generator=gen) * 255, torch.rand(1, 3, 255, 255, generator=gen) * 255
    with torch.no_grad():
        fz, fx = model.backbone(z), model.backbone(x)
        out = model.head.respond(model.head.prepare(fz), fx)
    backbone = ort.InferenceSession(str(ONNX_PAIR[0]), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(ONNX_PAIR[1]), providers=["CPUExecutionProvider"])
    assert relative(backbone.run(None, {"input": x.numpy()})[0], fx.numpy()) < 1e-4
    exemplar = cv2.dnn.readNet(str(ONNX_PAIR[0]))   # the graph says 255; OpenCV runs it at 127 as well
    exemplar.setInput(z.numpy())
    assert relative(exemplar.forward(), fz.numpy()) < 1e-4
    cls, loc = head.run(None, {"input1": fz.numpy(), "input2": fx.numpy()})
    assert relative(cls, out["cls"].numpy()) < 1e-4 and relative(loc, out["loc"].numpy()) < 1e-4


def test_the_tracker_spec_builds_a_nano_tracker_with_the_configs_track_section():
    need_shared(WEIGHTS)
    tracker = build_tracker(TrackerSpec.parse(f"model:{CONFIG},{WEIGHTS}", options={"lr": 0.3}))
    assert isinstance(tracker, NanoTracker) and tracker.name == "NanoTrackV2"
    assert tracker.cfg == NanoTrackerConfig(**{**OPENCV_TRACK, "lr": 0.3}, whole_pixels=True)   # the config's, lr overridden


def test_our_tracker_gives_cv2_trackernanos_boxes(model, clip):
    """With OpenCV's constants and its integer Rect, our boxes are OpenCV's (all 29 frames of 348 measured over
    12 sequences); the fractional boxes behind them have IoU 0.92-0.97 with OpenCV's whole-pixel ones."""
    need_shared(*ONNX_PAIR)
    frames, box = clip
    want = opencv_boxes(frames, box, *map(str, ONNX_PAIR))
    tracker = NanoTracker(model, NanoTrackerConfig(**OPENCV_TRACK, whole_pixels=True))
    tracker.init(frames[0], box)
    got = np.array([box] + [tracker.update(f) for f in frames[1:]])
    assert iou(got, want)[1:].mean() > 0.99
    assert (got == want).all(axis=1).mean() > 0.9


def test_the_export_is_the_pair_cv2_trackernano_loads_and_tracks_alike(model, clip, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    need_shared(*ONNX_PAIR)
    from siamfc.deploy.nano_onnx import export_nano

    done = export_nano(model, str(tmp_path))
    assert max(done.worst.values()) < 1e-4, done.worst

    def signature(path: str) -> list:
        graph = onnx.load(path).graph
        return [[(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in vs]
                for vs in (graph.input, graph.output)]

    for ours, theirs in zip((done.paths["backbone"], done.paths["head"]), ONNX_PAIR):
        assert signature(ours) == signature(str(theirs))
    frames, box = clip
    ours = opencv_boxes(frames, box, done.paths["backbone"], done.paths["head"])
    assert np.array_equal(ours, opencv_boxes(frames, box, *map(str, ONNX_PAIR)))
