"""The real VOT toolkit (its own venv) runs our tracker over TraX; ours must beat a static box.

The toolkit lives in .venv-vot (`make vot-venv`, part of `make test`). Its exit code
says nothing about tracker errors, so the verdict comes from the analysis JSON.
"""
import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamfc.deploy.vot import read_analysis, write_workspace
from siamfc.models.checkpoint import build_net, save_checkpoint

from conftest import REPO, moving_patch_clip

VOT = REPO / ".venv-vot" / "bin" / "vot"


def test_vot_toolkit_scores_our_tracker_above_a_static_one(tmp_path):
    if not VOT.exists():
        pytest.skip(f"{VOT} is missing: run `make vot-venv` (vot-toolkit 0.7.4 in its own venv)")
    # A seeded slim network, so the test needs nothing from ../shared: on these
    # clips (a distinct patch moving over a smooth background) any SiamFC follows.
    torch.manual_seed(0)
    ckpt = tmp_path / "slim.pth"
    save_checkpoint(ckpt, build_net((28, 76, 114, 114, 76)))
    seqs = []
    for i in range(2):   # every tracker is a TraX process a sequence and anchor: two clips keep it short
        frames, boxes = moving_patch_clip(seed=i, n=30, step=(3.0 - i, 2.0 + i))
        seqs.append((f"clip{i}", frames, boxes))
    ws = tmp_path / "workspace"
    # a SiameseX model by config (fresh weights: the run, not its accuracy, is what is checked); every tracker is a
    # TraX process a sequence and anchor, so one config model stands for the family (the demo test runs others)
    models = {"siamrpn": "model:configs/siamesex/SiamRPN.yaml"}
    cwd = os.getcwd()
    os.chdir(REPO)   # the config paths are relative to the checkout, as a user would type them
    try:
        write_workspace(str(ws), seqs, {"fdsiamfc": str(ckpt), "static": "identity", **models}, sys.executable,
                        str(REPO / "tools"))
    finally:
        os.chdir(cwd)
    env = dict(os.environ, PYTHONPATH="")
    run = subprocess.run([str(VOT), "evaluate", "--workspace", str(ws), "fdsiamfc", "static", *models],
                         capture_output=True, text=True, timeout=900, env=env)
    assert "Evaluation concluded successfuly" in run.stdout + run.stderr, run.stdout[-2000:] + run.stderr[-2000:]
    subprocess.run([str(VOT), "analysis", "--workspace", str(ws), "--format", "json", "fdsiamfc", "static", *models],
                   capture_output=True, text=True, timeout=600, env=env)
    reports = sorted(glob.glob(str(ws / "analysis" / "*.json")))
    assert reports, "vot analysis wrote no JSON"
    scores = read_analysis(reports[-1])
    assert scores["fdsiamfc"]["accuracy"] > scores["static"]["accuracy"] + 0.2, scores
    assert scores["fdsiamfc"]["eao"] > scores["static"]["eao"], scores
    def runs(name: str) -> list[str]:   # the toolkit's trajectories, one file a sequence and anchor
        return sorted(os.path.relpath(p, ws / "results" / name)
                      for p in glob.glob(str(ws / "results" / name / "baseline" / "*" / "*.bin")))

    for name in models:   # each model ran every sequence from every anchor, as ours did, and was scored
        assert runs(name) == runs("fdsiamfc") and len(runs(name)) >= 2, name
        assert 0 <= scores[name]["accuracy"] <= 1, scores
    assert not glob.glob(str(ws / "logs" / "*.log")) or all(
        "Traceback" not in Path(p).read_text() for p in glob.glob(str(ws / "logs" / "*.log")))
