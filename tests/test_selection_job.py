"""The selection job: every tracker on every set, mean AUCs, and paired differences with their s.e."""
import json

import numpy as np
import pytest
import yaml

from siamfc.data import video
from siamfc.errors import InputError
from siamfc.evaluation.summary import bootstrap_se, paired_difference
from siamfc.jobs import load_job

from conftest import moving_patch_clip, write_otb_sequence, write_video_sequence


def test_a_paired_difference_removes_what_both_trackers_share():
    rng = np.random.default_rng(0)
    hard = rng.uniform(0.2, 0.8, 30)                  # how hard each sequence is, for both trackers
    a = {f"s{i}": v + 0.02 for i, v in enumerate(hard)}
    b = {f"s{i}": v for i, v in enumerate(hard)}
    diff, se = paired_difference(a, b)
    assert diff == pytest.approx(0.02) and se == pytest.approx(0.0, abs=1e-12)
    noisy = {k: v + rng.normal(0, 0.01) for k, v in a.items()}
    diff, se = paired_difference(noisy, b)
    assert 0 < se < bootstrap_se(np.array(list(b.values())), np.ones(30)) / 5
    assert paired_difference({"x": 1.0, "only_a": 0.0}, {"x": 0.5})[0] == pytest.approx(0.5)


def test_the_selection_job_ranks_trackers_on_each_set_and_pooled(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "CACHE_DIR", str(tmp_path / "cache"))
    videos, folders = tmp_path / "videos", tmp_path / "otb"
    for i in range(3):
        frames, boxes = moving_patch_clip(seed=i, n=8, step=(4.0, 3.0))
        write_video_sequence(videos, f"v{i}", frames, boxes)
        write_otb_sequence(folders, f"o{i}", frames, boxes)
    (videos / "splits.json").write_text(json.dumps({"val": ["v0", "v2"], "train": ["v1"]}))
    cfg = tmp_path / "selection.yaml"
    cfg.write_text(yaml.safe_dump({"job": "selection", "selection": {
        "out": str(tmp_path / "run"), "workers": 1, "samples": 200,
        "trackers": {"random": "random", "identity": "identity"},
        "sets": [{"name": "vids", "root": str(videos), "split_file": "splits.json", "split": "val"},
                 {"name": "folders", "root": str(folders), "sequences": ["o1"]}]}}, sort_keys=False))
    load_job(str(cfg)).run(log=lambda _: None)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert list(report["sets"]) == ["vids", "folders", "pooled"]
    assert [report["sets"][k]["sequences"] for k in report["sets"]] == [2, 1, 3]
    pooled = report["sets"]["pooled"]
    (d,) = pooled["differences"]
    assert (d["a"], d["b"]) == ("random", "identity")
    assert d["diff"] == pytest.approx(pooled["mean_auc"]["random"] - pooled["mean_auc"]["identity"])
    assert d["paired_se"] >= 0
    assert "| random - identity |" in (tmp_path / "run" / "REPORT.md").read_text()


def test_a_missing_split_is_one_clear_error(tmp_path):
    (tmp_path / "root").mkdir()
    cfg = tmp_path / "selection.yaml"
    cfg.write_text(yaml.safe_dump({"job": "selection", "selection": {
        "trackers": {"identity": "identity"},
        "sets": [{"name": "x", "root": str(tmp_path / "root"), "split_file": "splits.json", "split": "val"}]}}))
    with pytest.raises(InputError, match=r"splits.json: no sequence list 'val'"):
        load_job(str(cfg))


def test_sets_must_be_a_list_of_sections(tmp_path):
    cfg = tmp_path / "selection.yaml"
    cfg.write_text(yaml.safe_dump({"job": "selection", "selection": {
        "trackers": {"identity": "identity"}, "sets": {"name": "x", "root": str(tmp_path)}}}))
    with pytest.raises(Exception, match=r"selection.sets: expected a list of SequenceSet sections"):
        load_job(str(cfg))
