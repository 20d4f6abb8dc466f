"""Closed-form FD cuts of NanoTrack v2 (siamfc/compression/nano_*.py): couplings from torch-pruning's graph,
channel choice and refit aimed at the teacher, and the cut pair inside cv2.TrackerNano. The tests with
SiamTrackers' weights skip, saying why, without ../shared/peers. Inputs are tiny: eight calibration pairs cut
from a synthetic clip, one thread (a second only waits on batches this small)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from conftest import REPO, SHARED, moving_patch_clip, need_shared, write_otb_sequence, write_video_sequence
from siamfc.compression.least_squares import greedy_keep
from siamfc.compression.nano_calibration import tracking_pairs
from siamfc.compression.nano_depth import apply_drops, by_tower
from siamfc.compression.nano_fit import distill_nano, kept_channels
from siamfc.compression.end_to_end import (FinetuneConfig, distill_loss, finetune, heldout_loss, outputs,
                                          param_groups)
from siamfc.compression.nano_widths import cut_like, dependency_graph, internal_widths, narrow
from siamfc.config import ConfigError
from siamfc.data.sequences import otb_folder_sequence
from siamfc.errors import InputError
from siamfc.jobs.nano_sweep import Sweep, _extra_row, run_sweep
from siamfc.files import write_json
from siamfc.jobs.nanotrack import make_job
from siamfc.jobs.nano_select import make_job as make_select_job
from siamfc.models.checkpoint import build_net
from siamfc.models.model_io import load_model
from siamfc.models.parts.mobilenetv3 import SqueezeExcite
from siamfc.tracking.nano import NanoTracker
from siamfc.tracking.ops import torch_threads

CONFIG = REPO / "configs" / "nanotrack" / "NanoTrackV2.yaml"
PEERS = SHARED / "peers"
WEIGHTS = PEERS / "nanotrackv2" / "nanotrackv2.pth"


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def random_pair(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 127, 127, generator=gen) * 255, torch.rand(1, 3, 255, 255, generator=gen) * 255


# ---------------------------------------------------------------- no ../shared needed

def test_kept_channels_round_to_multiples_of_eight_and_keep_all_at_one():
    assert [kept_channels(72, r) for r in (1.0, 0.75, 0.5, 0.35, 0.01)] == [72, 56, 40, 24, 8]
    assert kept_channels(240, 0.5) == 120 and kept_channels(8, 0.3) == 8


def test_folding_a_blocks_project_conv_into_the_next_expand_conv_is_exact_and_removes_a_layer():
    from siamfc.models.parts.mobilenetv3 import MobileNetV3Small
    torch.manual_seed(0)
    net = MobileNetV3Small().eval()
    for m in net.modules():   # BN statistics that are not the identity, so the fold has a shift to carry
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-1, 1)
    folded = copy.deepcopy(net)
    assert folded.fold_for_inference() == ["features.1"]   # the only block whose output is read once, by a 1x1
    assert folded.fold_for_inference() == []
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in n.modules()) for n in (net, folded)]
    assert convs[1] == convs[0] - 1
    x = torch.randn(2, 3, 127, 127)
    with torch.no_grad():
        assert relative(folded(x), net(x)) < 1e-5


def test_the_heads_two_branches_run_as_one_give_the_same_maps_in_half_the_layers():
    from siamfc.models.parts.nanohead import NanoHead
    from siamfc.models.parts.nanohead_fused import FusedNanoHead, fusable
    torch.manual_seed(0)
    head = NanoHead().eval()
    for m in head.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-1, 1)
    fused = FusedNanoHead(head).eval()
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in n.modules()) for n in (head, fused)]
    assert convs == [34, 17]   # every pair of convs is one
    zf, xf = torch.randn(2, 48, 8, 8), torch.randn(2, 48, 16, 16)
    with torch.no_grad():
        want, (cls, loc) = head.respond(head.prepare(zf), xf), fused(zf, xf)
    assert cls.shape == (2, 2, 16, 16) and loc.shape == (2, 4, 16, 16)
    assert relative(cls, want["cls"]) < 1e-5 and relative(loc, want["loc"]) < 1e-5
    head.loc_tower[5] = torch.nn.Conv2d(96, 88, 1, bias=False)   # branches no longer alike: refused
    assert not fusable(head)
    with pytest.raises(ValueError, match="cannot run as one"):
        FusedNanoHead(head)


def test_greedy_selection_finds_the_channels_the_target_is_made_of():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(500, 6)))
    t = 2 * x[:, 1:2] - x[:, 4:5] + 0.5
    phi = torch.cat([x, torch.ones(500, 1, dtype=x.dtype)], 1)
    assert greedy_keep(phi.T @ phi, phi.T @ t, 2).tolist() == [1, 4]


def test_the_sweep_refuses_to_calibrate_on_the_scored_sequences(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "splits.json").write_text('{"train": ["a"], "val": ["a"]}')
    with pytest.raises(InputError, match="rates"):
        run_sweep(Sweep(out=str(tmp_path / "out"), rates=(0.0,), root=str(tmp_path)))
    with pytest.raises(InputError, match="no sequence list 'test'"):
        run_sweep(Sweep(out=str(tmp_path / "out"), root=str(tmp_path), split="test"))
    with pytest.raises(InputError, match="calibrating on the sequences the sweep scores"):
        run_sweep(Sweep(out=str(tmp_path / "out"), root=str(tmp_path), sequences=("a",),
                        calibration=(f"folder:{tmp_path}:train",)))


def test_the_nanotrack_job_checks_its_sets_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="nanotrack.weights: .*missing.pth: file not found"):
        make_job("c.yaml", {"job": "nanotrack", "nanotrack": {"weights": str(tmp_path / "missing.pth")}})
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    with pytest.raises(ConfigError, match="nanotrack.selection"):
        make_job("c.yaml", {"job": "nanotrack", "nanotrack": {"weights": str(weights), "selection": ["folder"]}})
    (tmp_path / "splits.json").write_text('{"train": ["a", "b"], "val": ["b"]}')
    job = make_job("c.yaml", {"job": "nanotrack", "nanotrack": {
        "out": str(tmp_path / "out"), "weights": str(weights), "training": [f"folder:{tmp_path}:train"],
        "selection": [f"folder:{tmp_path}:val"], "holdout": []}})
    with pytest.raises(InputError, match="holds selection sequences"):
        job.teacher()
    assert not (tmp_path / "out").exists()


def test_holdout_moves_whole_source_videos_from_training_to_selection(tmp_path):
    frames, boxes = moving_patch_clip(seed=3, n=3)
    for root, names in (("train", ("cam_part1", "cam_part2", "street")), ("select", ("lake",))):
        for name in names:
            write_otb_sequence(tmp_path / root, name, frames, boxes)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    sets = {"out": str(tmp_path / "out"), "weights": str(weights), "training": [f"folder:{tmp_path / 'train'}"],
            "selection": [f"folder:{tmp_path / 'select'}"]}
    job = make_job("c.yaml", {"job": "nanotrack", "nanotrack": {**sets, "holdout": ["cam"]}})
    assert job.sets("training") == [("folder", str(tmp_path / "train"), ["street"])]
    assert job.sets("selection") == [("folder", str(tmp_path / "select"), None),
                                     ("folder", str(tmp_path / "train"), ["cam_part1", "cam_part2"])]
    assert [q.name for q in job.sequences("selection")] == ["lake", "cam_part1", "cam_part2"]
    with pytest.raises(InputError, match="nanotrack.holdout: street_view: no such source video"):
        make_job("c.yaml", {"job": "nanotrack", "nanotrack": {**sets, "holdout": ["street_view"]}}).sets("training")
    assert not (tmp_path / "out").exists()
    for name in ("dock_part1", "field"):   # label-free footage: videos without a box file
        write_video_sequence(tmp_path / "raw", name, frames, None)
    raw = make_job("c.yaml", {"job": "nanotrack", "nanotrack": {
        **sets, "training": [f"folder:{tmp_path / 'raw'}"], "holdout": ["dock"], "label_free": True}})
    assert raw.given_sets()["training"] == [("folder", str(tmp_path / "raw"), ["field"])]
    assert raw.given_sets()["selection"][1] == ("folder", str(tmp_path / "raw"), ["dock_part1"])


def test_a_narrower_siamfc_is_distilled_by_its_score_map_alone():
    torch.manual_seed(0)
    teacher, student = build_net().eval(), build_net(widths=(28, 76, 114, 114, 76)).eval()
    rng = np.random.default_rng(0)
    z, x = rng.integers(0, 256, (2, 127, 127, 3), np.uint8), rng.integers(0, 256, (2, 255, 255, 3), np.uint8)
    cfg = FinetuneConfig()
    with torch.no_grad():
        want, got = outputs(teacher, z, x), outputs(student, z, x)
    assert want["score"].shape == got["score"].shape == (2, 1, 17, 17)
    terms = distill_loss(got, want, cfg)
    assert set(terms) == {"score", "total"} and float(terms["total"]) > 0
    assert float(distill_loss(want, want, cfg)["total"]) == 0.0
    kl = FinetuneConfig(score=0.0, features=0.0, score_kl=1.0)
    shifted = {**want, "score": want["score"] + 3.0}   # the peak stays where it was: no KL
    assert float(distill_loss(shifted, want, kl)["total"]) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(got, want, kl)["score_kl"]) > 0 and set(distill_loss(got, want, kl)) == {
        "score", "score_kl", "total"}


def test_a_relative_lr_steps_every_tensor_by_the_same_share_of_its_own_size():
    torch.manual_seed(0)
    net = build_net(widths=(28, 76, 114, 114, 76))
    with torch.no_grad():
        net.backbone.conv1[0].weight.mul_(1e-3)   # SiamFC_VID-like: conv1 at raw-pixel scale
    assert [g["lr"] for g in param_groups(net, FinetuneConfig(lr=1e-4))] == [1e-4]
    groups = param_groups(net, FinetuneConfig(relative_lr=1e-2))
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    for g in groups:
        (p,) = g["params"]
        rms = float(p.detach().square().mean().sqrt())
        if rms > 0:
            assert g["lr"] == pytest.approx(1e-2 * rms)
        else:   # a zero tensor (a fresh BN's shift) takes its module's weight's size
            assert g["lr"] > 0
    lrs = {id(g["params"][0]): g["lr"] for g in groups}
    assert lrs[id(net.backbone.conv1[0].weight)] < lrs[id(net.backbone.conv2[0].weight)] / 100
    opt = torch.optim.Adam(groups)
    before = net.backbone.conv1[0].weight.detach().clone()
    net.backbone.conv1[0].weight.grad = torch.randn_like(before)
    opt.step()   # Adam's first step moves each weight by its lr
    change = (net.backbone.conv1[0].weight.detach() - before).abs().max() / before.square().mean().sqrt()
    assert float(change) == pytest.approx(1e-2, rel=1e-3)


# ---------------------------------------------------------------- SiamTrackers' weights

@pytest.fixture(scope="module")
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def teacher(one_thread):
    need_shared(PEERS, WEIGHTS)
    return load_model(WEIGHTS, CONFIG).model.eval()


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    frames, boxes = moving_patch_clip(seed=3, n=12)
    seq = otb_folder_sequence(str(write_otb_sequence(tmp_path_factory.mktemp("clip"), "patch", frames, boxes)))
    return tracking_pairs([seq], 8, seed=0)


@pytest.fixture(scope="module")
def cut(teacher, crops):
    return distill_nano(teacher, 0.5, *crops, progress=False)[:2]


def test_keeping_every_channel_gives_back_the_teacher(teacher, crops):
    student, fits, drops = distill_nano(teacher, 1.0, *crops, progress=False)
    assert drops == []
    assert len(fits) == 19 and all(f.kept == f.size for f in fits)
    z, x = random_pair()
    with torch.no_grad():
        want, got = teacher(z, x), student(z, x)
    assert relative(got["cls"], want["cls"]) < 1e-4 and relative(got["loc"], want["loc"]) < 1e-4


def test_the_cut_keeps_coupled_widths_equal_and_runs_at_both_crop_sizes(cut, teacher):
    student, fits = cut
    kept = {f.producer: f.kept for f in fits}
    assert all(f.kept == kept_channels(f.size, 0.5) < f.size for f in fits)
    for i in range(2, 9):
        conv, old = student.backbone.features[i].conv, teacher.backbone.features[i].conv
        k = kept[f"backbone.features.{i}.conv.0"]
        assert conv[0].out_channels == conv[1].num_features == conv[3].groups == conv[3].out_channels == k
        assert conv[4].num_features == conv[7].in_channels == k
        assert conv[0].in_channels == old[0].in_channels and conv[7].out_channels == old[7].out_channels
        if isinstance(conv[5], SqueezeExcite):
            fc = conv[5].fc
            assert fc[0].in_features == fc[2].out_features == k and fc[0].out_features == old[5].fc[0].out_features
    for branch in ("cls", "loc"):
        tower = getattr(student.head, f"{branch}_tower")
        assert tower[0].out_channels == tower[1].in_channels == 64   # the correlation's channels stay
        for j in range(6):
            k = kept[f"head.{branch}_tower.{4 * j + 1}"]
            reader = tower[4 * j + 5] if j < 5 else getattr(student.head, f"{branch}_pred")
            assert tower[4 * j + 1].out_channels == tower[4 * j + 2].num_features == reader.in_channels == k
            if j < 5:
                assert tower[4 * j + 4].groups == tower[4 * j + 4].out_channels == k
    z, x = random_pair()
    with torch.no_grad():
        fz, fx = student.embed(z), student.embed(x)
        out = student.head.respond(student.head.prepare(fz), fx)
    assert fz.shape == (1, 48, 8, 8) and fx.shape == (1, 48, 16, 16)
    assert out["cls"].shape == (1, 2, 16, 16) and out["loc"].shape == (1, 4, 16, 16)


def test_the_refit_brings_every_block_and_the_head_closer_to_the_teacher_than_the_cut_alone(cut, teacher, crops):
    student, fits = cut
    plain = copy.deepcopy(teacher)
    graph = dependency_graph(plain)
    keep = {f.producer: torch.tensor(f.keep) for f in fits}
    for w in internal_widths(plain, graph):
        if w.producer in keep:
            narrow(graph, plain, w, keep[w.producer])
    z = student.normalise(torch.from_numpy(crops[0]).permute(0, 3, 1, 2).float())
    x = student.normalise(torch.from_numpy(crops[1]).permute(0, 3, 1, 2).float())

    def blocks(net: torch.nn.Module) -> list[torch.Tensor]:
        out, h = [], x
        for block in net.backbone.features:
            h = block(h)
            out.append(h)
        return out + [net(z, x)["cls"], net(z, x)["loc"]]

    with torch.no_grad():
        want, fitted, dropped = blocks(teacher), blocks(student), blocks(plain)
    for i in [*range(2, 9), 9, 10]:   # the seven cut blocks, then cls and loc
        assert (fitted[i] - want[i]).norm() < 0.8 * (dropped[i] - want[i]).norm(), i


def test_the_cut_pair_exports_and_tracks_a_clip_inside_cv2_trackernano(cut, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from siamfc.deploy.nano_onnx import export_nano
    from siamfc.tracking.factory import TrackerSpec, build_tracker

    done = export_nano(cut[0], str(tmp_path))
    assert max(done.worst.values()) < 1e-4, done.worst
    tracker = build_tracker(TrackerSpec.parse(f"nanotrack:{tmp_path}"))
    assert tracker.files == (done.paths["backbone"], done.paths["head"])
    frames, boxes = moving_patch_clip(seed=1, n=20)
    tracker.init(frames[0], boxes[0])
    got = np.array([boxes[0]] + [tracker.update(f) for f in frames[1:]])
    lo, hi = np.maximum(got[:, :2], boxes[:, :2]), np.minimum(got[:, :2] + got[:, 2:], boxes[:, :2] + boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    iou = inter / (np.prod(got[:, 2:], axis=1) + np.prod(boxes[:, 2:], axis=1) - inter)
    assert iou.mean() > 0.5, iou


def test_a_saved_cut_is_rebuilt_exactly_from_its_kept_channels(cut, teacher):
    student, fits = cut
    rebuilt = cut_like(teacher, {f.producer: f.keep for f in fits})
    rebuilt.load_state_dict(student.state_dict())
    z, x = random_pair(2)
    with torch.no_grad():
        want, got = student(z, x), rebuilt(z, x)
    assert relative(got["cls"], want["cls"]) < 1e-6 and relative(got["loc"], want["loc"]) < 1e-6


def test_distillation_lowers_the_held_out_loss_keeps_the_best_epoch_and_resumes(cut, teacher, crops, tmp_path):
    cfg = FinetuneConfig(epochs=1, pairs=16, batch=4, lr=3e-4, flip=0.0, photometric=0.0)
    with torch.no_grad():
        same = outputs(teacher, crops[0][:2], crops[1][:2])
    terms = distill_loss(same, same, cfg)
    assert set(terms) == {"score", "features", "box", "total"} and float(terms["total"]) == 0.0
    student = copy.deepcopy(cut[0])
    before = heldout_loss(student, teacher, crops, cfg)
    first = finetune(student, teacher, lambda epoch, n: crops, crops, cfg, str(tmp_path), progress=False)
    cfg.epochs = 3
    resumed = finetune(student, teacher, lambda epoch, n: crops, crops, cfg, str(tmp_path), progress=False)
    assert resumed["history"][:2] == first["history"] and len(resumed["history"]) == 4   # epoch 0: the start
    assert resumed["history"][0]["heldout"] == pytest.approx(before) and resumed["best"] < before
    assert heldout_loss(student, teacher, crops, cfg) == pytest.approx(resumed["best"], rel=1e-5)


def test_the_trackers_response_peaks_on_the_target_it_was_given(teacher):
    frames, boxes = moving_patch_clip(seed=5, n=2)
    tracker = NanoTracker(teacher)
    tracker.init(frames[0], boxes[0])
    score = tracker.response(frames[0])
    assert score.shape == (16, 16) and 0 <= score.min() and score.max() <= 1
    peak = np.unravel_index(int(score.argmax()), score.shape)
    assert max(abs(peak[0] - 8), abs(peak[1] - 8)) <= 1 and score.max() > 0.5


def test_the_label_free_job_trains_and_selects_on_the_teachers_own_tracks(teacher, tmp_path):
    for role, seed in (("train", 7), ("select", 8)):   # footage without a single box: video files alone
        frames, boxes = moving_patch_clip(seed=seed, n=12)
        write_video_sequence(tmp_path / role, "clip", frames, None)
    job = make_job("c.yaml", {"job": "nanotrack", "nanotrack": {
        "out": str(tmp_path / "out"), "weights": str(WEIGHTS), "label_free": True,
        "training": [f"folder:{tmp_path / 'train'}"], "selection": [f"folder:{tmp_path / 'select'}"],
        "holdout": []},
        "pseudo": {"clip_len": 12, "candidates": 4, "min_frames": 4}})
    job.run_stage("labels", log=lambda m: None)
    assert job.result("labels")["label_free"]
    for role in ("training", "selection"):
        (seq,) = job.sequences(role)
        assert len(seq.frames) >= 4 and np.isfinite(seq.boxes).all()


def test_the_keep_ratio_rule_takes_the_smallest_within_tolerance_else_the_most_accurate(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    job = make_select_job("c.yaml", {"job": "nanotrack_select",
                                     "choose": {"rates": [0.5, 0.6, 0.7], "tolerance": 0.01},
                                     "nanotrack": {"out": str(tmp_path / "out"), "weights": str(weights)}})
    for diffs, want, within in (((-0.02, -0.005, 0.01), 0.6, True), ((-0.05, -0.02, -0.03), 0.6, False),
                                ((0.0, 0.02, -0.01), 0.5, True)):
        rows = [{"rate": r, "drop": 0, "auc": 0.6 + d, "auc_diff": d} for r, d in zip((0.5, 0.6, 0.7), diffs)]
        write_json(job.marker("candidates"), {"rows": rows})
        assert job.stage_choose() == {"rule": "tolerance", "rate": want, "drop": 0, "within_tolerance": within,
                                      "tolerance": 0.01}
    for bad in ([], [0.5, 0.5], [1.5], [0.551, 0.554]):   # the last two would share rate_0.55
        with pytest.raises(ConfigError, match="choose.rates"):
            make_select_job("c.yaml", {"job": "nanotrack_select", "choose": {"rates": bad},
                                       "nanotrack": {"out": str(tmp_path / "out"), "weights": str(weights)}})
    with pytest.raises(ConfigError, match="nanotrack.rate: the candidates' keep-ratios are choose.rates"):
        make_select_job("c.yaml", {"job": "nanotrack_select", "nanotrack": {"rate": 0.5, "weights": str(weights)}})
    with pytest.raises(ConfigError, match="nanotrack.drop: the candidates' dropped layers are choose.drops"):
        make_select_job("c.yaml", {"job": "nanotrack_select", "nanotrack": {"drop": 1, "weights": str(weights)}})
    for bad in ({"drops": []}, {"drops": [-1]}, {"drops": [0, 6]}, {"rule": "fastest"}, {"min_speedup": 0}):
        with pytest.raises(ConfigError, match="choose"):
            make_select_job("c.yaml", {"job": "nanotrack_select", "choose": bad,
                                       "nanotrack": {"out": str(tmp_path / "out"), "weights": str(weights)}})
    write_json(job.marker("fit"), {})   # a single-rate nanotrack run left in the same folder
    with pytest.raises(InputError, match="holds another job's stages \\(fit\\)"):
        job.run(log=lambda m: None)


def test_the_speed_rule_takes_the_most_accurate_fast_enough_cut_else_the_fastest(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    job = make_select_job("c.yaml", {"job": "nanotrack_select", "choose": {
        "rates": [0.6, 0.7], "drops": [0, 2], "rule": "speed", "min_speedup": 1.35},
        "nanotrack": {"out": str(tmp_path / "out"), "weights": str(weights)}})
    assert job.choose.candidates() == [(0.6, 0), (0.6, 2), (0.7, 0), (0.7, 2)]
    assert job.candidate(0.7, 2).out.endswith("rate_0.70_drop2") and job.candidate(0.7, 2).cfg.nanotrack.drop == 2
    for speed, auc, want, met in (((1.30, 1.40, 1.20, 1.36), (0.60, 0.58, 0.62, 0.59), (0.7, 2), True),
                                  ((1.30, 1.34, 1.20, 1.33), (0.60, 0.58, 0.62, 0.59), (0.6, 2), False)):
        rows = [{"rate": r, "drop": d, "speedup": v, "auc": a}
                for (r, d), v, a in zip(job.choose.candidates(), speed, auc)]
        write_json(job.marker("candidates"), {"rows": rows})
        assert job.stage_choose() == {"rule": "speed", "rate": want[0], "drop": want[1], "fast_enough": met,
                                      "min_speedup": 1.35}


def test_dropped_tower_layers_are_refit_a_saved_cut_rebuilds_and_the_pair_exports(teacher, crops, tmp_path):
    student, fits, drops = distill_nano(teacher, 0.5, *crops, progress=False, drop=2)
    assert [d.tower for d in drops] == ["head.cls_tower"] * 2 + ["head.loc_tower"] * 2
    assert all(0 < d.error < 1 for d in drops) and len({(d.tower, d.layer) for d in drops}) == 4
    for tower, layers in by_tower(drops).items():
        seq = student.get_submodule(tower)
        for layer in layers:   # every module of a dropped layer is gone, the others stay
            assert all(isinstance(seq[i], torch.nn.Identity) for i in range(4 * layer, 4 * layer + 4))
        assert sum(isinstance(m, torch.nn.Conv2d) for m in seq) == 2 * (6 - 2)
    assert len(fits) == 7 + 2 * (6 - 2)   # the expansions, then each tower's widths: a drop merges two
    rebuilt = cut_like(teacher, {f.producer: f.keep for f in fits}, by_tower(drops))
    rebuilt.load_state_dict(student.state_dict())   # strict: the same modules, names and shapes
    z, x = random_pair()
    with torch.no_grad():
        a, b = rebuilt(z, x), student(z, x)
    assert torch.equal(a["cls"], b["cls"]) and torch.equal(a["loc"], b["loc"])
    pytest.importorskip("onnxruntime")
    from siamfc.deploy.nano_onnx import export_nano
    done = export_nano(student, str(tmp_path))   # identities leave no node; OpenCV and ONNX Runtime agree
    assert {"head cls (OpenCV dnn)", "head loc (OpenCV dnn)"} <= set(done.worst)
    assert max(done.worst.values()) < 1e-4 and done.folded == ["features.1"] and done.fused, done
    # nothing else cut: the refit drops sit nearer the teacher than the same drops left as they are
    refit, _, same = distill_nano(teacher, 1.0, *crops, progress=False, drop=2)
    plain = copy.deepcopy(teacher)
    apply_drops(plain, by_tower(same))
    zc = teacher.normalise(torch.from_numpy(crops[0]).permute(0, 3, 1, 2).float())
    xc = teacher.normalise(torch.from_numpy(crops[1]).permute(0, 3, 1, 2).float())
    with torch.no_grad():
        want, near, far = (net.head.respond(net.head.prepare(net.embed(zc)), net.embed(xc))
                           for net in (teacher, refit, plain))
    for key in ("cls", "loc"):
        assert relative(near[key], want[key]) < relative(far[key], want[key])


def test_the_job_runs_end_to_end_resumes_and_scores_every_selection_set_pooled(teacher, tmp_path):
    need_shared(PEERS / "nanotrackv2" / "nanotrack_backbone_sim.onnx")
    for root, names, seed in (("train", ("cam_part1", "street"), 3), ("select", ("lake",), 4)):
        for name in names:
            frames, boxes = moving_patch_clip(seed=seed, n=6)
            write_otb_sequence(tmp_path / root, name, frames, boxes)
    out = tmp_path / "out"
    data = {"job": "nanotrack_select", "choose": {"rates": [0.5]}, "nanotrack": {
        "out": str(out), "weights": str(WEIGHTS), "threads": 1, "speed_rounds": 1,
        "fit_pairs": 16, "heldout_pairs": 16, "training": [f"folder:{tmp_path / 'train'}"],
        "selection": [f"folder:{tmp_path / 'select'}"], "holdout": ["cam"]},
        "finetune": {"epochs": 1, "pairs": 16, "batch": 8}}
    job = make_select_job("c.yaml", data)
    job.candidate(0.5).run(log=lambda m: None, until="finetune")   # as if killed after the distillation
    first = job.candidate(0.5).result("finetune")
    job.run(log=lambda m: None)
    cand = job.candidate(0.5)
    assert cand.result("finetune") == first   # kept, not redone
    ev = cand.result("evaluate")
    assert ev["sequences"] == 2 and ev["frames"] == 12 and len(ev["selection"]) == 2
    for name in ("NanoTrackV2", "NanoTrackV2-FD"):   # one folder a set, both sets scored
        for i in (0, 1):
            assert (out / "rate_0.50" / "eval" / name / f"set{i}" / "summary.json").is_file()
        assert 0 <= ev["trackers"][name]["auc"] <= 1
    assert "2 sequences, 12 frames" in (out / "rate_0.50" / "REPORT.md").read_text()
    for name in ("backbone.onnx", "head.onnx"):   # the chosen pair where cv2.TrackerNano reads it
        assert (out / name).read_bytes() == (out / "rate_0.50" / name).read_bytes()
    report = json.loads((out / "report.json").read_text())
    assert report["chosen"]["rate"] == 0.5 and report["sequences"] == 2 and (out / "selection.png").stat().st_size
    assert cand.sets("training") == [("folder", str(tmp_path / "train"), ["street"])]   # cam_part1 selects
    name, row = _extra_row(Sweep(out=str(tmp_path / "sweep")), str(out))   # nanotrack-sweep --extra reads it
    assert row["rate"] == 0.5 and row["macs"] == cand.result("export")["macs"]
    job.redo_from("candidates")
    assert not (out / "rate_0.50").exists() and not (out / "backbone.onnx").exists()
