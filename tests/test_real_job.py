"""The real-footage job's pieces on tiny data: the split by source video, label-free
pseudo boxes that read no ground truth, and the release weights as teachers."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import WEIGHTS, moving_patch_clip, need_shared, write_otb_sequence
from siamfc.compression.pseudo import PseudoConfig, pseudo_label
from siamfc.config import ConfigError
from siamfc.data.crop import crop_dataset
from siamfc.data.sequences import otb_folder_sequence, source_video
from siamfc.errors import InputError
from siamfc.jobs import load_job
from siamfc.models.checkpoint import build_net, save_checkpoint
from siamfc.tracking.factory import TrackerSpec


def write_got10k(root: Path, names: list[str], n: int = 12) -> None:
    """A GOT-10k-layout training root of moving-patch clips."""
    import cv2

    train = root / "train"
    for k, name in enumerate(names):
        frames, boxes = moving_patch_clip(seed=k, n=n)
        seq = train / name
        seq.mkdir(parents=True)
        for i, f in enumerate(frames):
            cv2.imwrite(str(seq / f"{i + 1:08d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        (seq / "groundtruth.txt").write_text("".join(",".join(f"{v:.1f}" for v in b) + "\n" for b in boxes))
        (seq / "meta_info.ini").write_text("[METAINFO]\nobject_class: patch\nanno_fps: 10Hz\n")
        for label, value in (("absence", 0), ("cover", 8), ("cut_by_image", 0)):
            (seq / f"{label}.label").write_text(f"{value}\n" * n)
    (train / "list.txt").write_text("\n".join(names) + "\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Training and test footage and three tiny teachers, laid out as ../shared is."""
    root = tmp_path_factory.mktemp("shared")
    write_got10k(root / "data" / "train_real", ["vidA_part1", "vidA_part2", "vidB", "vidC_part1"])
    frames, boxes = moving_patch_clip(seed=9, n=10)
    write_otb_sequence(root / "data" / "real", "Test1", frames, boxes)
    (root / "weights").mkdir()
    torch.manual_seed(0)
    for name, widths in (("FDSiamfc_30", (28, 76, 114, 114, 76)), ("FDSiamfc_15", (14, 38, 56, 56, 38)),
                         ("SiamFC_VID", (96, 256, 384, 384, 256))):
        save_checkpoint(root / "weights" / f"{name}.pth", build_net(widths))
    return {"shared": root}


def real_config(tmp_path: Path, shared: Path, **real) -> Path:
    cfg = {"job": "real", "real": {"out": str(tmp_path / "run"), "shared": str(shared), **real}}
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_source_video_groups_the_parts_of_one_video():
    assert source_video("tld_carchase_part3") == source_video("tld_carchase_part12") == "tld_carchase"
    assert source_video("otb_Toy") == "otb_Toy"


def test_split_holds_out_whole_source_videos(world, tmp_path):
    job = load_job(str(real_config(tmp_path, world["shared"], holdout=["vidA"])))
    job.stage_split()
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(split["select"]) == ["vidA_part1", "vidA_part2"]
    assert sorted(split["train"]) == ["vidB", "vidC_part1"]
    assert not set(split["train"]) & set(split["select"])


def test_unknown_holdout_video_and_missing_footage_are_one_line_errors(world, tmp_path):
    job = load_job(str(real_config(tmp_path, world["shared"], holdout=["vidZ"])))
    with pytest.raises(ConfigError, match=r"real.holdout: vidZ: no such source video .*videos: vidA, vidB, vidC"):
        job.stage_split()
    with pytest.raises(InputError, match="training footage folder not found"):
        load_job(str(real_config(tmp_path, tmp_path / "nowhere")))


def test_pseudo_labels_come_from_the_teacher_alone(world, tmp_path):
    """Label-free data: the footage has no ground-truth file at all, and the teacher's
    clips are valid OTB-layout training data that the crop job reads."""
    frames, _ = moving_patch_clip(seed=4, n=24)
    footage = tmp_path / "footage" / "clip1" / "img"
    footage.mkdir(parents=True)
    import cv2
    for i, f in enumerate(frames):
        cv2.imwrite(str(footage / f"{i + 1:04d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    teacher = TrackerSpec("siamfc", str(world["shared"] / "weights" / "FDSiamfc_30.pth"))
    cfg = PseudoConfig(clip_len=12, candidates=4, min_score=0.0, min_frames=4)
    summary = pseudo_label(teacher, str(tmp_path / "footage"), str(tmp_path / "pseudo"), cfg)
    assert summary["clips"] == 2 and summary["frames"] == 24
    seq = otb_folder_sequence(str(tmp_path / "pseudo" / "clip1_c01"))
    assert len(seq.frames) == 12 and seq.boxes.shape == (12, 4)
    h, w = frames[0].shape[:2]
    assert np.all(seq.boxes[:, 2:] > 0) and np.all(seq.boxes[:, 0] + seq.boxes[:, 2] <= w + 1)
    index = crop_dataset("otb", str(tmp_path / "pseudo"), str(tmp_path / "crops"))
    assert len(index["sequences"]) == 2
    again = pseudo_label(teacher, str(tmp_path / "footage"), str(tmp_path / "pseudo"), cfg)
    assert again["clips"] == 2   # resumable: finished clips are kept


@pytest.mark.parametrize("name, widths", [("FDSiamfc_30.pth", (28, 76, 114, 114, 76)),
                                          ("SiamFC_VID.pth", (96, 256, 384, 384, 256))])
def test_the_shared_weights_load_as_teachers(name, widths, tmp_path):
    """Bare release state dicts (no metadata, BN eps 1e-6) and the folded-BN teacher
    plan the widths the issue names."""
    from siamfc.compression.driver import Compressor
    from siamfc.compression.recipe import CompressConfig

    need_shared(WEIGHTS / name)
    cfg = CompressConfig(rates=[0.5] if "30" in name else [0.3])
    cfg.select.root = str(tmp_path)
    c = Compressor(cfg, str(WEIGHTS / name), str(tmp_path), str(tmp_path / "run"))
    assert tuple(layer.width for layer in c.base) == widths
    expected = (14, 38, 56, 56, 38) if "30" in name else (28, 76, 114, 114, 76)
    assert c.final.slim == expected and c.last_step == 9


def test_training_tails_are_kept_out_of_training_and_tracked_for_selection(world, tmp_path):
    """The last ``real.tail`` of every training sequence: invalid in the crop index (no
    pair can use it) and, cut at the same frame, a selection sequence of its own."""
    from siamfc.data.pairs import PairConfig, PairDataset
    from siamfc.data.sequences import tail_cut
    from siamfc.evaluation.benchmarks import load_benchmark

    root = str(world["shared"] / "data" / "train_real")
    index = crop_dataset("got10k", root, str(tmp_path / "crops"), only=["vidB"], hold_tail=0.25)
    entry = index["sequences"][0]
    cut = tail_cut(12, 0.25)
    assert cut == 9 and entry["held_out_from"] == cut
    assert entry["valid"][cut:] == "000" and "1" in entry["valid"][:cut]
    ds = PairDataset(str(tmp_path / "crops"), PairConfig(pairs_per_seq=40))
    frames = {f for i in range(len(ds)) for f in ds.sample(i, np.random.default_rng(i))[1:]}
    assert max(frames) < cut
    whole = load_benchmark("got10k-train", root, only=["vidB"]).sequences[0]
    tail = load_benchmark("got10k-train", root, only=["vidB"], tails=0.25).sequences[0]
    assert tail.name == "vidB_tail" and tail.frames == whole.frames[cut:]
    np.testing.assert_array_equal(tail.boxes, whole.boxes[cut:])


def test_ablation_overrides_are_checked_like_the_config(world, tmp_path):
    from test_bad_input_matrix import call_tool

    cfg = real_config(tmp_path, world["shared"])
    bad = call_tool("ablate_real.py", "--config", str(cfg), "--experiment", "halve", "--name", "x",
                    "--out", str(tmp_path / "abl"), "halve.targets=sideways")
    assert bad.code == 2 and "halve.targets" in bad.err and "Traceback" not in bad.err
    bad = call_tool("ablate_real.py", "--config", str(cfg), "--experiment", "halve", "--name", "x",
                    "--out", str(tmp_path / "abl"), "halve.targets")
    assert bad.code == 2 and "KEY=VALUE" in bad.err
    assert not (tmp_path / "abl").exists()


def test_the_real_job_reads_training_footage_as_video_folders(world, tmp_path, monkeypatch):
    """train_root may be sequence folders of videos: split, crops and the selection benchmark follow."""
    from conftest import write_video_sequence
    from siamfc.data import video

    monkeypatch.setattr(video, "CACHE_DIR", str(tmp_path / "cache"))
    videos = tmp_path / "videos"
    for k, name in enumerate(["vidA_part1", "vidA_part2", "vidB"]):
        frames, boxes = moving_patch_clip(seed=k, n=8)
        write_video_sequence(videos, name, frames, boxes)
    job = load_job(str(real_config(tmp_path, world["shared"], holdout=["vidA"], train_root=str(videos))))
    assert job.layout == "otb"
    job.stage_split()
    assert sorted(json.loads((tmp_path / "run" / "split.json").read_text())["select"]) == ["vidA_part1",
                                                                                         "vidA_part2"]
    assert job.stage_crop()["sequences"] == 1
    assert job.compressor("halve", str(tmp_path / "c")).cfg.select.benchmark == "folder"


def test_the_final_distillation_polishes_every_network_and_evaluation_tracks_it(world, tmp_path):
    extra = tmp_path / "extra"
    for k, name in enumerate(("a", "b", "pa", "pb")):
        frames, boxes = moving_patch_clip(seed=20 + k, n=12)
        write_otb_sequence(extra if len(name) == 1 else tmp_path / "run" / "pseudo" / ("train" if name == "pa"
                                                                                      else "select"),
                           name, frames, boxes)
    (extra / "splits.json").write_text('{"train": ["a"], "val": ["b"]}')
    path = real_config(tmp_path, world["shared"], holdout=["vidB"], polish_footage=[f"folder:{extra}:train"],
                       polish_selection=[f"folder:{extra}:val"], heldout_pairs=16)
    cfg = yaml.safe_load(path.read_text())
    cfg["polish"] = {"epochs": 1, "pairs": 16, "batch": 8}
    path.write_text(yaml.safe_dump(cfg))
    job = load_job(str(path))
    job.run_stage("split", log=lambda m: None)
    torch.manual_seed(1)
    for name, widths in (("halve", (14, 38, 56, 56, 38)), ("label_free", (14, 38, 56, 56, 38)),
                         ("full", (28, 76, 114, 114, 76))):
        save_checkpoint(Path(job.path(name, "slim.pth")), build_net(widths))
    train, held = job.polish_sets("halve")
    assert {s.name for s in train} >= {"a", "vidA_part1"} and {s.name for s in held} == {"b", "vidB"}
    assert [s.name for s in job.polish_sets("label_free")[0]] == ["pa"]
    job.run_stage("polish", log=lambda m: None)
    for name in ("halve", "label_free", "full"):
        state = job.result("polish")["experiments"][name]
        assert [h["epoch"] for h in state["history"]] == [0, 1]
        assert job.network(name) == job.path(name, "polished.pth") and Path(job.path(f"polish_{name}.png")).is_file()
        assert job.trackers()[name].checkpoint == job.network(name)
    job.cfg.real.polish_experiments = ["full"]   # the others are then reported as compressed
    assert job.network("halve") == job.path("halve", "slim.pth") and job.network("full") == job.path("full",
                                                                                                     "polished.pth")
    cfg["real"]["polish_experiments"] = ["ful"]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="polish_experiments"):
        load_job(str(path))
