"""`make real` survives a kill in every stage: killed inside stage k, a re-run skips the stages before it,
picks stage k up again and goes on; after one kill in each stage the job ends with the whole report."""
import contextlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import moving_patch_clip, write_otb_sequence
from siamfc import files
from siamfc.jobs import load_job
from siamfc.jobs.real import RealJob
from siamfc.models.checkpoint import build_net, load_checkpoint, save_checkpoint
from test_real_job import write_got10k

# small teachers: the resume logic, not the networks' size, is what is tested (a full-width one triples the time)
TEACHERS = {"FDSiamfc_30": (14, 38, 56, 56, 38), "FDSiamfc_15": (8, 20, 28, 28, 20), "SiamFC_VID": (14, 38, 56, 56, 38)}
TINY = {"rates": [0.5], "sample_images": 4, "frames": {"pairs": 8}, "finetune": {"epochs": 0}, "select": {"workers": 1}}


class Killed(Exception):
    """Stands in for a kill; pytest treats a real KeyboardInterrupt as the user's."""


def tiny_real(root: Path) -> Path:
    shared = root / "shared"
    write_got10k(shared / "data" / "train_real", ["vidA_part1", "vidA_part2", "vidB", "vidC_part1"])
    frames, boxes = moving_patch_clip(seed=9, n=10)
    write_otb_sequence(shared / "data" / "real", "Test1", frames, boxes)
    extra = root / "extra"   # a second selection set, pooled with the held-out video by the experiments with boxes
    write_otb_sequence(extra, "Ex1", *moving_patch_clip(seed=11, n=8))
    (extra / "splits.json").write_text('{"val": ["Ex1"]}')
    (shared / "weights").mkdir()
    torch.manual_seed(0)
    for name, widths in TEACHERS.items():
        save_checkpoint(shared / "weights" / f"{name}.pth", build_net(widths))
    cfg = {"job": "real",
           "real": {"out": str(root / "run"), "shared": str(shared), "holdout": ["vidB"], "workers": 1,
                    "fps_frames": 3, "overlay_sequence": "Test1", "polish_footage": [], "polish_selection": [],
                    "select_extra": [f"folder:{extra}:val"],
                    "heldout_pairs": 16, "pseudo": {"clip_len": 6, "candidates": 4, "min_frames": 3}},
           "halve": TINY, "label_free": TINY, "full": TINY, "polish": {"epochs": 1, "pairs": 16, "batch": 8}}
    path = root / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_killed_in_every_stage_the_real_job_resumes_there_and_ends_whole(tmp_path, monkeypatch):
    config = tiny_real(tmp_path)
    real_atomic = files.atomic_path
    armed = {"stage": None, "writes": 0}

    @contextlib.contextmanager
    def killing(path):
        """Dies at the stage's second atomic write (part of its work is on disk), or at its marker
        (all of its work done, not yet marked) when the stage writes only that."""
        if armed["stage"]:
            armed["writes"] += 1
            if armed["writes"] == 2 or Path(path).name == f"{armed['stage']}.json":
                armed["stage"] = None
                raise Killed(str(path))
        with real_atomic(path) as tmp:
            yield tmp

    monkeypatch.setattr(files, "atomic_path", killing)
    for k, stage in enumerate(RealJob.STAGES):
        lines = []

        def log(line: str, stage=stage) -> None:
            lines.append(line)
            if line == f"== {stage}":
                armed.update(stage=stage, writes=0)

        with pytest.raises(Killed):
            load_job(str(config)).run(log=log)
        started = [line[3:] for line in lines if not line.endswith(("skipped",)) and ": done" not in line]
        skipped = [line[3:].split(":")[0] for line in lines if line.endswith("already complete, skipped")]
        # the stage killed last time is picked up again first, and everything before it is skipped
        again = list(RealJob.STAGES[k - 1:k])
        assert skipped == list(RealJob.STAGES[:max(k - 1, 0)]) and started == again + [stage], (stage, lines)
        assert not (tmp_path / "run" / "stages" / f"{stage}.json").exists()

    lines = []
    load_job(str(config)).run(log=lines.append)
    assert lines[:len(RealJob.STAGES) - 1] == [f"== {s}: already complete, skipped" for s in RealJob.STAGES[:-1]]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(report) >= {"models", "phases", "per_sequence", "fold_error", "polish", "pseudo", "split",
                           "stage_seconds", "halve_checkpoint", "full_checkpoint", "elapsed_s"}
    assert set(report["stage_seconds"]) == set(RealJob.STAGES)
    for name in ("halve", "label_free", "full"):
        slim = load_checkpoint(tmp_path / "run" / name / "slim.pth").net.backbone
        assert slim.widths == (6, 18, 28, 28, 18), name   # halved, even where two groups split the next conv
    assert max(report["fold_error"].values()) <= 1e-4
    for name, sets in (("halve", 2), ("full", 2), ("label_free", 1)):   # label-free reads no box: its clips alone
        for phase in json.loads((tmp_path / "run" / name / "state.json").read_text())["phases"]:
            for cand in phase["candidates"]:
                assert len(cand.get("sets", [cand["auc"]])) == sets, (name, cand)
                if sets == 2:   # one sequence each: the pooled AUC is their mean
                    assert cand["auc"] == pytest.approx(sum(cand["sets"]) / 2)
    extra = tmp_path / "extra"
    assert report["select_extra"] == [f"folder:{extra}:val"]
    assert f"also on folder:{extra}:val, pooled" in (tmp_path / "run" / "REPORT.md").read_text()
