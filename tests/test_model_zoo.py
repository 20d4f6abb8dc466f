"""Config-built models end to end: SiameseX checkpoint forms, the tracker kind, model_info, box pairs,
the one trainer with its losses and SiamRPN++'s freezing, and a foreign checkpoint as bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, moving_patch_clip, synthetic_crops
from siamfc.data.box_pairs import BoxPairDataset
from siamfc.data.pairs import PairConfig
from siamfc.errors import InputError
from siamfc.models.backbone import init_weights
from siamfc.models.model_io import load_model, save_model
from siamfc.models.siamese import build_model, model_config
from siamfc.models.siamesex import load_siamesex
from siamfc.tracking.factory import TrackerSpec, build_tracker, check_tracker
from siamfc.training.model_trainer import FreezeConfig, ModelTrainConfig, ModelTrainer

from test_siamesex import config_path, reference

TINY_RPN = {"name": "TinyRPN", "backbone": {"name": "alexnet", "args": {"widths": [8, 16, 16, 16, 16]}},
            "head": {"name": "up_rpn", "args": {"in_channels": 16, "hidden": 16, "anchor_num": 5}},
            "input": "imagenet", "tracker": "rpn"}


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return synthetic_crops(tmp_path_factory.mktemp("zoo"), seed=5)


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_siamesex_state_dict_loads_with_model_prefix_and_without_num_batches_tracked():
    ref = reference()
    bare = ref.state_dict("SiamRPN")
    demo = {"model." + k: v for k, v in bare.items() if not k.endswith("num_batches_tracked")}
    z, x = ref.inputs()
    outs = []
    for state in (bare, demo):
        model = build_model(model_config(config_path("SiamRPN"))).eval()
        load_siamesex(model, state)
        with torch.no_grad():
            outs.append(model(z, x))
    assert torch.equal(outs[0]["cls"], outs[1]["cls"]) and torch.equal(outs[0]["loc"], outs[1]["loc"])


def test_a_siamesex_checkpoint_tracks_through_the_model_kind(tmp_path):
    ref = reference()
    weights = tmp_path / "siamrpn.pth"
    torch.save({"model." + k: v for k, v in ref.state_dict("SiamRPN").items()}, weights)
    spec = TrackerSpec.parse(f"model:{config_path('SiamRPN')},{weights}")
    check_tracker(spec)
    frames, boxes = moving_patch_clip(n=4)
    tracker = build_tracker(spec)
    tracker.init(frames[0], boxes[0])
    out = np.array([tracker.update(f) for f in frames[1:]])
    assert out.shape == (3, 4) and np.isfinite(out).all() and (out[:, 2:] > 0).all()


def test_our_model_checkpoint_rebuilds_itself_and_tracks_by_path(tmp_path):
    model = build_model(model_config(config_path("SiamFCRes22")))
    save_model(tmp_path / "res22.pth", model, track={"window_influence": 0.3})
    loaded = load_model(tmp_path / "res22.pth")
    assert loaded.model.cfg.name == "SiamFCRes22" and loaded.meta["track"] == {"window_influence": 0.3}
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    tracker = build_tracker(TrackerSpec.parse(str(tmp_path / "res22.pth"), options={}))
    assert tracker.cfg.window_influence == 0.3 and tracker.cfg.response_sz == 17
    frames, boxes = moving_patch_clip(n=3)
    tracker.init(frames[0], boxes[0])
    assert np.isfinite(tracker.update(frames[1])).all()


def test_a_foreign_checkpoint_is_one_line_and_exit_2(tmp_path):
    weights = tmp_path / "fc.pth"
    torch.save(build_model(model_config(config_path("SiamFC"))).state_dict(), weights)
    with pytest.raises(InputError, match="not a SiameseX SiamRPN checkpoint"):
        load_model(weights, config_path("SiamRPN"))
    done = run_tool("tools/evaluate.py", "--checkpoint", f"model:{config_path('SiamRPN')},{weights}",
                    "--benchmark", "folder", "--root", str(tmp_path), "--out", str(tmp_path / "eval"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "fc.pth" in done.stderr


def test_model_info_json_gives_parameters_per_part_gflops_and_outputs():
    done = run_tool("tools/model_info.py", "--config", str(config_path("SiamRPNPP")), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    p = info["params"]
    assert p["total"] == 53_950_624 == p["backbone"] + p["neck"] + p["head"] and p["neck"] > 0
    assert info["outputs"] == {"cls": [1, 10, 25, 25], "loc": [1, 20, 25, 25]} and info["gflops"] > 50


def test_box_pairs_put_the_box_on_the_target(crops):
    data = BoxPairDataset(str(crops), PairConfig(max_stretch=0.0, max_shift=20), seed=1)
    index = {s["dir"]: s for s in data.index["sequences"]}
    for i in range(4):
        z, x, box = data[i]
        assert z.shape == (3, 127, 127) and x.shape == (3, 255, 255)
        rng = np.random.default_rng([data.seed, data.epoch, i])
        folder, _, frame = data.sample(i, rng)
        assert box[2:].tolist() == pytest.approx(index[folder]["size"][frame], abs=0.01)   # no stretch: same size
        assert np.abs(box[:2].numpy() - 127).max() <= 20                                  # shifted at most 20 px


def tiny_rpn_config(**train) -> ModelTrainConfig:
    cfg = ModelTrainConfig(loss="rpn", epochs=2, batch_size=2, num_workers=0, precision="fp32",
                           keep_checkpoints=0, clip_grad=5.0, initial_lr=5e-3, ultimate_lr=1e-3, **train)
    cfg.pairs.pairs_per_seq = 4
    return cfg


def test_rpn_training_loss_falls_and_its_checkpoint_tracks(crops, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_config(TINY_RPN))
    init_weights(model)
    trainer = ModelTrainer(model, tiny_rpn_config(), str(crops), str(tmp_path))
    batch = _batch(trainer)        # one batch learnt: its loss must fall
    losses = [trainer.step(*batch) for _ in range(20)]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]
    trainer.fit()
    trainer.save_final(str(tmp_path / "model.pth"))
    tracker = build_tracker(TrackerSpec.parse(str(tmp_path / "model.pth"), options={}))
    frames, boxes = moving_patch_clip(n=3)
    tracker.init(frames[0], boxes[0])
    assert np.isfinite(tracker.update(frames[1])).all()


def _batch(trainer: ModelTrainer):
    z, x, box = zip(*[trainer.dataset[i] for i in range(2)])
    return torch.stack(z), torch.stack(x), torch.stack(box)


def test_frozen_backbone_keeps_weights_and_bn_statistics_until_its_stages_unfreeze(crops, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_config(TINY_RPN))
    init_weights(model)
    cfg = tiny_rpn_config(freeze=FreezeConfig(unfreeze_epoch=2, stages=["conv5"], backbone_lr_scale=0.1))
    trainer = ModelTrainer(model, cfg, str(crops), str(tmp_path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train_epoch(1)
    after1 = {k: v.clone() for k, v in model.state_dict().items()}
    backbone = [k for k in before if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    assert all(torch.equal(before[k], after1[k]) for k in backbone)          # BN running stats included
    assert not torch.equal(before["head.search_cls.weight"], after1["head.search_cls.weight"])
    trainer.train_epoch(2)
    after2 = model.state_dict()
    assert not torch.equal(after1["backbone.conv5.0.weight"], after2["backbone.conv5.0.weight"])
    assert torch.equal(after1["backbone.conv1.0.weight"], after2["backbone.conv1.0.weight"])
    assert torch.equal(after1["backbone.conv4.1.running_mean"], after2["backbone.conv4.1.running_mean"])
    lrs = [g["lr"] for g in trainer.optimizer.param_groups]
    assert lrs[1] == pytest.approx(0.1 * lrs[0])


def test_zoo_job_trains_within_its_budget_evaluates_and_reports(tmp_path):
    import yaml

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "TinyRPN.yaml").write_text(yaml.safe_dump({
        "model": TINY_RPN, "train": {"loss": "rpn", "precision": "fp32", "clip_grad": 5.0, "initial_lr": 5e-3},
        "track": {"window_influence": 0.4}}))
    job_yaml = tmp_path / "zoo.yaml"
    job_yaml.write_text(yaml.safe_dump({
        "job": "zoo",
        "zoo": {"out": str(tmp_path / "run"), "models": ["TinyRPN"], "configs": str(configs), "budget_s": 4,
                "epochs": 2, "batch_size": 2, "eval_workers": 1, "fps_frames": 3,
                "train": {"TinyRPN": {"clip_grad": 3.0, "rpn": {"negatives": 0}}}},   # laid over its train section
        "data": {"train_seqs": 3, "frames": 10, "val_seqs": 3, "val_frames": 5, "workers": 1}}))
    done = run_tool("tools/run_pipeline.py", "--config", str(job_yaml))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    row = report["models"][0]
    assert row["model"] == "TinyRPN" and row["pairs"] >= 2 * 3 and 0 <= row["ao"] <= 1
    assert row["x_identity"] == pytest.approx(row["ao"] / report["identity_ao"])
    budget = json.loads((tmp_path / "run" / "models" / "TinyRPN" / "budget.json").read_text())
    assert budget["train"]["epochs"] == 2 and budget["pairs"] == row["pairs"]
    assert budget["train"]["clip_grad"] == 3.0 and budget["train"]["initial_lr"] == 5e-3
    assert budget["train"]["rpn"] == {"positives": 16, "negatives": 0}
    assert "| TinyRPN |" in (tmp_path / "run" / "REPORT.md").read_text()


def test_a_local_torchvision_resnet50_file_initialises_the_siamrpnpp_backbone(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from siamfc.models.model_io import load_backbone_weights

    torch.manual_seed(0)
    weights = tmp_path / "resnet50.pth"
    source = torchvision.models.resnet50(weights=None).state_dict()   # no download: random weights
    torch.save(source, weights)
    model = build_model(model_config(config_path("SiamRPNPP")))
    kept = load_backbone_weights(model, weights)
    # pysot's layer2-4 shortcuts are 3x3 where torchvision's are 1x1: those alone keep their init
    assert kept == [f"layer{i}.0.downsample.0.weight" for i in (2, 3, 4)]
    own = model.backbone.state_dict()
    assert torch.equal(own["layer3.5.conv2.weight"], source["layer3.5.conv2.weight"])
    assert torch.equal(own["layer1.0.downsample.0.weight"], source["layer1.0.downsample.0.weight"])
    with pytest.raises(InputError, match="not a resnet50 state dict"):
        load_backbone_weights(build_model(model_config(config_path("SiamRPNPP"))), _save(tmp_path, {"fc.weight": torch.zeros(2)}))


def _save(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "other.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("name", ["SiamRPN", "SiamFCRes22"])
def test_onnx_export_of_a_config_model_matches_pytorch(tmp_path, name):
    # the tool compares ONNX Runtime with PyTorch on each graph and exits 2 above 1e-4
    done = run_tool("tools/export_onnx.py", "--checkpoint", f"model:configs/siamesex/{name}.yaml",
                    "--out", str(tmp_path / name))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "head.onnx" in done.stdout and "worst relative difference" in done.stdout
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["head.onnx", "search.onnx", "template.onnx"]
    import onnxruntime as ort

    search = ort.InferenceSession(str(tmp_path / name / "search.onnx"))
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 255, 255)).astype(np.float32)
    assert search.run(None, {"image": x})[0].shape[0] == 3       # one graph serves any number of scales


def test_a_trained_models_checkpoint_initialises_another_models_backbone(tmp_path):
    from siamfc.models.model_io import load_backbone_weights

    siamfc = build_model(model_config(config_path("SiamFC")))
    init_weights(siamfc)
    save_model(tmp_path / "siamfc.pth", siamfc)
    rpn = build_model(model_config(config_path("SiamRPN")))
    assert load_backbone_weights(rpn, tmp_path / "siamfc.pth") == []
    for k, v in siamfc.backbone.state_dict().items():
        assert torch.equal(rpn.backbone.state_dict()[k], v), k
