"""The main job end to end at a tiny size: every stage, the report, and a skipping re-run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO

TINY = """
pipeline: {{out: {out}, select_seqs: 1, select_frames: 3, eval_workers: 1, eval_backend: onnxruntime, fps_frames: 6,
           shared: {shared}}}
data: {{train_seqs: 3, val_seqs: 3, frames: 12, val_frames: 4, workers: 1}}
train: {{epochs: 1, batch_size: 2, num_workers: 0, pairs: {{pairs_per_seq: 1}}}}
compress:                 # the default recipe (closed-form steps, distilled fine-tunes) at a tiny budget
  sample_images: 4
  frames: {{pairs: 8}}
  finetune: {{epochs: 1, batch_size: 2}}
  select: {{workers: 1, score_single: false}}   # steps (one candidate) go untracked, fine-tunes are chosen
  diagnose: {{pairs: 4}}    # each phase against the teacher on 4 pairs of the cropped selection split
track: {{instance_sz: 207, response_sz: 11, window_influence: 0.0}}   # the quickstart's tracker
"""


def run_pipeline(cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/run_pipeline.py", "--config", str(cfg)], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)


def test_tiny_pipeline_killed_in_compression_resumes_there_reports_and_reruns_nothing(tmp_path, monkeypatch):
    """One tiny run for three properties (the run is the slow part): killed in the 3rd fine-tune (phase 6), it
    resumes there; the finished run's report is whole; a re-run from the command line recomputes nothing."""
    from siamfc.jobs.quickstart import Pipeline, load_config
    from siamfc.training.trainer import Trainer

    out = tmp_path / "run"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.format(out=out, shared=tmp_path / "no-shared"))
    calls, killed = [], []
    real = Trainer.train_epoch

    class Killed(Exception):
        """Stands in for a kill; pytest treats a real KeyboardInterrupt as the user's."""

    def counting(self, epoch):
        calls.append(os.path.basename(self.out_dir))
        if len(calls) == 1 + 3 and not killed:     # the teacher's epoch, then the 3rd fine-tune (steps only fit)
            killed.append(True)
            raise Killed
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", counting)
    with pytest.raises(Killed):
        Pipeline(load_config(str(cfg))).run(log=lambda _: None)
    stages = sorted(p.stem for p in (out / "stages").glob("*.json"))
    assert stages == ["crop", "data", "teacher"]
    calls.clear()
    Pipeline(load_config(str(cfg))).run(log=lambda _: None)
    # the teacher and the 2 finished fine-tunes are not trained again; phase 6 onwards is
    assert calls[0] == "06_finetune3" and len(calls) == 9 - 2

    report = json.loads((out / "report.json").read_text())
    for key in ("teacher_ao", "slim_ao", "identity_ao", "random_ao", "teacher_params", "slim_params",
                "slim_gflops", "elapsed_s", "precision", "layout", "recipe"):
        assert key in report, key
    assert report["teacher_params"] == 2_336_320
    assert report["slim_params"] == 213_282 and 0.68 < report["slim_gflops"] < 0.71
    assert 0 <= report["slim_ao"] <= 1 and report["elapsed_s"] > 0
    assert len(report["phases"]) == 18
    steps, tunes = report["phases"][0::2], report["phases"][1::2]
    assert all(p["auc"] is None and p["name"].startswith("step") for p in steps)
    assert all(p["auc"] is not None and 0 <= p["auc"] <= 1 for p in tunes)
    # every phase is still measured: against the teacher on the cropped selection split
    assert all(-1 <= p["diagnosis"]["response_correlation"] <= 1 for p in report["phases"])
    assert report["precision"] in ("fp32", "bf16") and report["layout"]["layout"] == "channels-last"
    assert report["recipe"]["transition"] == "inherit" and report["recipe"]["step_epochs"] == 0
    check_baselines_gates_and_times(report)
    # eval_backend runs every network of the val split, and each summary names it
    assert {k: v["backend"] for k, v in report["val"].items()} == {
        k: "none" if k == "identity" else "onnxruntime" for k in report["val"]}

    assert report["track"] == {"instance_sz": 207, "response_sz": 11, "window_influence": 0.0}
    md = (out / "REPORT.md").read_text()
    for needle in ("tracking with instance_sz = 207, window_influence = 0.0, response_sz = 11.", "## Compression",
                   "| SiamFC teacher |", "| FD slim", "## Accuracy on the synthetic val split",
                   "| IdentityTracker |", "| SiamFC-random-seed0 |", "| SiamFC-random-seed2 |", "| FDSiamFC-slim |",
                   "![overlay](overlay.gif)", "| finetune9 |", "## Stage times", "| compress | selection |",
                   "| gate | value | bar | passed |", "backend that ran", "### AO by target motion",
                   "| teacher / SiamFC-random-seed1 |"):
        assert needle in md, needle
    for png in report["plots"]:
        assert (out / png).stat().st_size > 1000 and f"]({png})" in md
    assert len(report["plots"]) == 3   # success, precision (OTB style) and GOT-10k success
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == 3 * 4

    # A re-run recomputes nothing: every stage is skipped and no file is rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = run_pipeline(cfg)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already complete, skipped") == 7
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


def check_baselines_gates_and_times(report: dict) -> None:
    """The random-init seeds, every tracker's s.e., the gates and where the time went."""
    assert list(report["random_ao_seeds"]) == ["0", "1", "2"]
    assert report["random_ao"] == pytest.approx(sum(report["random_ao_seeds"].values()) / 3)
    assert set(report["ao_se"]) == {"teacher", "slim", "identity", "random-seed0", "random-seed1", "random-seed2"}
    gates = {g["gate"]: g for g in report["gates"]}
    assert gates["teacher AO >= 1.5x random init seed 2"]["value"] == pytest.approx(
        report["teacher_ao"] / report["random_ao_seeds"]["2"])
    assert len(gates) == 2 + 3 + 6
    motion = report["ao_by_motion"]
    assert set(motion["ao"]) == set(report["ao_se"]) and sum(motion["sequences"]) == 3
    assert all(len(v) == 4 for v in motion["ao"].values()) and motion["edges"] == sorted(motion["edges"])
    inside = report["inside_seconds"]
    assert set(inside["compress"]) == {"train", "data loading", "selection", "fits and transitions"}
    assert inside["compress"]["selection"] > 0 and inside["teacher"]["train"] > 0
    assert set(inside["evaluate (tracking)"]) == set(report["ao_se"])
