import json
from pathlib import Path

import numpy as np
import pytest

from siamfc.evaluation import evaluate
from siamfc.evaluation.summary import bootstrap_se
from siamfc.models.checkpoint import random_net, save_checkpoint
from siamfc.tracking.factory import TrackerSpec

from conftest import REAL, WEIGHTS, moving_patch_clip, need_shared, write_otb_sequence


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    for i in range(3):
        frames, boxes = moving_patch_clip(seed=i, n=12, step=(2.0 * i, 1.0))
        write_otb_sequence(root, f"clip{i}", frames, boxes, sep="," if i else " ")
    return root


def test_identity_on_folder_benchmark_writes_got10k_layout(bench, tmp_path):
    s = evaluate(TrackerSpec("identity"), "folder", str(bench), str(tmp_path))
    for key in ("mean_auc", "mean_precision", "mean_success_rate", "fps", "sequences"):
        assert key in s
    assert set(s["sequences"]) == {"clip0", "clip1", "clip2"}
    # clip0's target does not move horizontally much (dx=0): identity keeps high overlap there
    assert s["sequences"]["clip0"]["auc"] > s["sequences"]["clip2"]["auc"]
    assert (tmp_path / "results/folder/IdentityTracker/clip1.txt").exists()
    assert (tmp_path / "results/folder/IdentityTracker/times/clip1_time.txt").exists()
    for png in ("success_plots.png", "precision_plots.png"):
        assert (tmp_path / "reports/folder/IdentityTracker" / png).stat().st_size > 1000
    assert json.loads((tmp_path / "summary.json").read_text())["tracker"] == "IdentityTracker"


def test_parallel_workers_match_serial_and_resume_skips(bench, tmp_path):
    ckpt = tmp_path / "rand.pth"
    save_checkpoint(ckpt, random_net(3))
    one = evaluate(TrackerSpec("siamfc", str(ckpt)), "folder", str(bench), str(tmp_path / "a"), workers=1)
    two = evaluate(TrackerSpec("siamfc", str(ckpt)), "folder", str(bench), str(tmp_path / "b"), workers=2)
    for name in one["sequences"]:
        assert one["sequences"][name]["auc"] == pytest.approx(two["sequences"][name]["auc"])
    rec = tmp_path / "b/results/folder/rand/clip0.txt"
    stamp = rec.stat().st_mtime_ns
    evaluate(TrackerSpec("siamfc", str(ckpt)), "folder", str(bench), str(tmp_path / "b"), workers=2)
    assert rec.stat().st_mtime_ns == stamp


def test_bootstrap_se_shrinks_with_more_sequences():
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 1, 10)
    large = rng.uniform(0, 1, 1000)
    assert bootstrap_se(large, np.ones(1000)) < bootstrap_se(small, np.ones(10)) / 5


def test_release_weights_on_real_footage_match_reference_scores(tmp_path):
    need_shared(WEIGHTS / "FDSiamfc_30.pth", REAL / "Couple", REAL / "Man")
    s = evaluate(TrackerSpec("siamfc", str(WEIGHTS / "FDSiamfc_30.pth"), options={"crop": "resize"}), "folder",
                 str(REAL), str(tmp_path),
                 workers=2, only=["Couple", "Man"])
    ref = json.loads((REAL.parent / "reference_boxes/FDSiamfc_30/scores.json").read_text())
    for name in ("Couple", "Man"):
        assert s["sequences"][name]["auc"] == pytest.approx(ref[name]["auc"], abs=1e-6)
        assert s["sequences"][name]["precision"] == pytest.approx(ref[name]["prec"], abs=1e-6)


def test_the_summary_names_the_backend_auto_chose_and_why(bench, tmp_path, monkeypatch):
    from siamfc.tracking import backends

    ckpt = tmp_path / "rand.pth"
    save_checkpoint(ckpt, random_net(3))
    monkeypatch.setattr(backends, "auto_choice", lambda backbone, device=None: ("fp32", "the only one timed"))
    s = evaluate(TrackerSpec("siamfc", str(ckpt), "auto"), "folder", str(bench), str(tmp_path / "a"))
    assert s["backend"] == "auto -> fp32" and s["backend_why"] == "the only one timed"
    s = evaluate(TrackerSpec("siamfc", str(ckpt), "fp32"), "folder", str(bench), str(tmp_path / "b"))
    assert s["backend"] == "fp32"
    s = evaluate(TrackerSpec("identity", backend="auto"), "folder", str(bench), str(tmp_path / "c"))
    assert s["backend"] == "none"
