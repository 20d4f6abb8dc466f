"""NanoTrack and VitTrack as OpenCV runs them: tracker kinds in the factory, rows in the benchmark."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siamfc.errors import InputError
from siamfc.evaluation.speed import peer_row
from siamfc.tracking.factory import TrackerSpec, backend_label, build_tracker, check_tracker, resolve_backend
from siamfc.tracking.peers import PEERS, files_under, onnx_parameters, peer_files
from siamfc.tracking.siamfc import run_tracker

from conftest import SHARED, moving_patch_clip, need_shared, write_otb_sequence

PEERS_ROOT = SHARED / "peers"


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    return inter / (np.prod(a[:, 2:], axis=1) + np.prod(b[:, 2:], axis=1) - inter)


@pytest.mark.parametrize("kind", list(PEERS))
def test_a_peer_follows_a_moving_patch_through_opencv(kind, tmp_path):
    arg = files_under(kind, str(PEERS_ROOT))
    need_shared(*map(Path, arg.split(",")))
    frames, boxes = moving_patch_clip(n=20)
    seq = write_otb_sequence(tmp_path, "patch", frames, boxes)
    spec = TrackerSpec.parse(f"{kind}:{arg}")
    assert spec.kind == kind
    check_tracker(spec)
    resolved, why = resolve_backend(TrackerSpec(kind, arg, backend="auto"))
    assert backend_label(resolved, "auto") == "opencv-dnn" and "opencv" in why
    out, times = run_tracker(build_tracker(spec), sorted(str(p) for p in (seq / "img").iterdir()), boxes[0])
    assert np.all(np.isfinite(out)) and np.all(out[:, 2:] > 0)
    assert iou(out[1:], boxes[1:]).mean() > 0.5      # it tracks, and our 1-based boxes reach it unshifted
    assert np.all(times[1:] > 0)


def test_the_peer_files_are_named_or_found_and_a_missing_or_corrupt_one_is_one_line(tmp_path):
    with pytest.raises(InputError, match="nanotrack_backbone_sim.onnx: NanoTrackV2's ONNX file is missing"):
        peer_files("nanotrack", str(tmp_path))
    with pytest.raises(InputError, match="expected 2 ONNX file"):
        peer_files("nanotrack", str(tmp_path / "a.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(InputError) as e:
        check_tracker(TrackerSpec.parse(f"vittrack:{bad}"))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_the_benchmark_skips_a_peer_whose_files_are_absent_saying_why(tmp_path, capsys):
    assert peer_row("vittrack", str(tmp_path), str(tmp_path), str(tmp_path / "out"), 1, None) is None
    assert "skipped VitTrack" in capsys.readouterr().out


def test_a_peer_row_counts_the_onnx_weights_and_scores_the_same_frames(tmp_path):
    need_shared(PEERS_ROOT / "nanotrackv2" / "nanotrack_head_sim.onnx")
    frames, boxes = moving_patch_clip(n=12)
    write_otb_sequence(tmp_path / "seqs", "patch", frames, boxes)
    row = peer_row("nanotrack", str(PEERS_ROOT), str(tmp_path / "seqs"), str(tmp_path / "out"), 1, None)
    files = peer_files("nanotrack", files_under("nanotrack", str(PEERS_ROOT)))
    assert row.params == onnx_parameters(files) and row.params > 100_000
    assert row.backend == "opencv-dnn" and 0.0 < row.auc <= 1.0 and row.fps > 0
