"""ONNX export and the ONNX Runtime backend, and the demo's annotated video."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from siamfc.deploy.onnx import check_export, export_backbone
from siamfc.errors import InputError
from siamfc.models.checkpoint import build_net, save_checkpoint
from siamfc.tracking.factory import TrackerSpec, build_tracker, check_tracker

from conftest import REPO, moving_patch_clip, write_otb_sequence


@pytest.mark.parametrize("widths", [(96, 256, 384, 384, 256), (14, 38, 56, 56, 38)])
def test_export_has_dynamic_shapes_and_matches_pytorch(tmp_path, widths):
    torch.manual_seed(0)
    backbone = build_net(widths).backbone.eval()
    path = tmp_path / "backbone.onnx"
    export_backbone(backbone, str(path))
    crops = torch.rand(2, 3, 255, 255) * 255
    check = check_export(str(path), backbone, crops)   # runs onnx.checker too
    assert check.worst < 1e-4


def test_onnxruntime_tracker_follows_the_pytorch_tracker(tmp_path):
    torch.manual_seed(1)
    net = build_net((28, 76, 114, 114, 76))
    ckpt = tmp_path / "slim.pth"
    save_checkpoint(ckpt, net)
    onnx_path = tmp_path / "slim.onnx"
    export_backbone(net.backbone, str(onnx_path))
    frames, gt = moving_patch_clip(n=15)
    boxes = {}
    for name, spec in (("torch", TrackerSpec.parse(str(ckpt))),
                       ("ort-file", TrackerSpec.parse(str(onnx_path), backend="onnxruntime")),
                       ("ort-export", TrackerSpec.parse(str(ckpt), backend="onnxruntime"))):
        tracker = build_tracker(spec)
        tracker.init(frames[0], gt[0])
        boxes[name] = np.array([tracker.update(f) for f in frames[1:]])
    np.testing.assert_allclose(boxes["ort-file"], boxes["torch"], atol=1e-3)
    np.testing.assert_allclose(boxes["ort-export"], boxes["torch"], atol=1e-3)


def test_onnx_file_needs_the_onnxruntime_backend(tmp_path):
    path = tmp_path / "b.onnx"
    export_backbone(build_net((14, 38, 56, 56, 38)).backbone, str(path))
    with pytest.raises(InputError, match="onnxruntime"):
        check_tracker(TrackerSpec.parse(str(path), backend="fp32"))


def test_demo_writes_a_playable_annotated_mp4(tmp_path):
    frames, gt = moving_patch_clip(n=12)
    seq = write_otb_sequence(tmp_path, "clip", frames, gt)
    torch.manual_seed(0)
    ckpt = tmp_path / "slim.pth"
    save_checkpoint(ckpt, build_net((28, 76, 114, 114, 76)))
    out = tmp_path / "out.mp4"
    # fp32 named: auto's race (tested in test_backends) would time every backend for these fresh weights first
    r = subprocess.run([sys.executable, "tools/demo.py", "--checkpoint", str(ckpt), "--source", str(seq),
                        "--save", str(out), "--backend", "fp32"], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr
    assert "mean FPS" in r.stdout
    cap = cv2.VideoCapture(str(out))
    count, first = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        first = frame if first is None else first
        count += 1
    assert count == 12 and first.shape[:2] == (240, 320)
    # the red box (BGR 0,0,255) is drawn where the target starts
    x, y, w, h = gt[0].astype(int)
    edge = first[y - 1, x:x + w].astype(int)
    assert ((edge[:, 2] > 150) & (edge[:, 0] < 110)).mean() > 0.5


@pytest.mark.parametrize("config", ["SiamRPN", "SiamFCRes22"])
def test_demo_runs_a_siamesex_model_by_config(tmp_path, config):
    frames, gt = moving_patch_clip(n=6)
    seq = write_otb_sequence(tmp_path, "clip", frames, gt)
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "tools/demo.py", "--checkpoint", f"model:configs/siamesex/{config}.yaml",
                        "--source", str(seq), "--save", str(out)], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr
    assert "mean FPS" in r.stdout and config in r.stdout
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_demo_without_box_or_display_says_how_to_give_one(tmp_path):
    frames, _ = moving_patch_clip(n=3)
    img_dir = tmp_path / "frames"
    img_dir.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(img_dir / f"{i:04d}.jpg"), f)
    ckpt = tmp_path / "slim.pth"
    save_checkpoint(ckpt, build_net((14, 38, 56, 56, 38)))
    r = subprocess.run([sys.executable, "tools/demo.py", "--checkpoint", str(ckpt), "--source", str(img_dir)],
                       cwd=REPO, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--init x,y,w,h" in r.stderr and str(img_dir) in r.stderr
