"""The compression driver: phases, selection, state file and resume."""
import json
import os
from pathlib import Path

import pytest
import torch

from siamfc.compression.driver import Compressor
from siamfc.compression.recipe import CompressConfig
from siamfc.data.crop import crop_dataset
from siamfc.errors import InputError
from siamfc.data.synthetic import SynthConfig, make_dataset
from siamfc.models.checkpoint import build_net, load_checkpoint, save_checkpoint
from siamfc.training.distill import LossWeights
from siamfc.training.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compress")
    make_dataset(str(root / "data"), SynthConfig(train_seqs=3, val_seqs=2, frames=10, val_frames=4, seed=8, workers=1))
    crop_dataset("got10k", str(root / "data"), str(root / "crops"))
    torch.manual_seed(0)
    save_checkpoint(root / "teacher.pth", build_net())
    return {"data": root / "data", "crops": root / "crops", "teacher": root / "teacher.pth"}


def tiny_cfg(data: Path, transition: str = "inherit") -> CompressConfig:
    step = TrainConfig(epochs=2, batch_size=2, num_workers=0, precision="fp32")
    step.pairs.pairs_per_seq = 1
    fine = TrainConfig(epochs=1, batch_size=2, num_workers=0, precision="fp32", initial_lr=1e-3)
    fine.pairs.pairs_per_seq = 1
    # the labelled-pairs path with trained steps (the recipe's random-region bank is tested in test_real_job)
    cfg = CompressConfig(rates=[0.5] * 5, transition=transition, candidates=2, sample_images=4, grouping="conv",
                         squeeze="pca", data="pairs", loss=LossWeights(), step=step, finetune=fine, last_step=2)
    cfg.select.root, cfg.select.workers = str(data), 1
    return cfg


def test_killed_mid_phase_resumes_without_redoing_finished_phases(setup, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = []
    real = Trainer.train_epoch

    def counting(self, epoch):
        calls.append((os.path.basename(self.out_dir), epoch))
        if len(calls) == 5:           # phase 3 (step2), its second epoch
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", counting)
    with pytest.raises(KeyboardInterrupt):
        Compressor(tiny_cfg(setup["data"]), str(setup["teacher"]), str(setup["crops"]), str(out)).run()
    state = json.loads((out / "state.json").read_text())
    assert [p["name"] for p in state["phases"]] == ["step1", "finetune1"]
    stamps = {p["name"]: (out / p["selected"]).stat().st_mtime_ns for p in state["phases"]}
    calls.clear()
    final = Compressor(tiny_cfg(setup["data"]), str(setup["teacher"]), str(setup["crops"]), str(out)).run()
    # only step2's second epoch and finetune2's single epoch were trained again
    assert calls == [("03_step2", 2), ("04_finetune2", 1)]
    state = json.loads((out / "state.json").read_text())
    assert [p["name"] for p in state["phases"]] == ["step1", "finetune1", "step2", "finetune2"]
    for p in state["phases"][:2]:
        assert (out / p["selected"]).stat().st_mtime_ns == stamps[p["name"]]
    # each phase scored its starting network (epoch 0) and candidate epochs and kept the best
    step1 = state["phases"][0]
    assert [c["epoch"] for c in step1["candidates"]] == [0, 1, 2]
    assert step1["selected_epoch"] == max(step1["candidates"], key=lambda c: c["score"])["epoch"]
    assert "| step2 |" in (out / "compress_log.md").read_text()
    net = load_checkpoint(final).net
    assert net.backbone.plan.step == 2 and net.backbone.conv2[0].in_channels == 48


def test_step_phases_train_only_their_parameters(setup, tmp_path):
    cfg = tiny_cfg(setup["data"], transition="fresh")
    cfg.last_step = 1
    cfg.init_candidate = False   # what training changed, not whether selection kept it
    out = tmp_path / "fresh"
    compressor = Compressor(cfg, str(setup["teacher"]), str(setup["crops"]), str(out))
    compressor.run()
    state = json.loads((out / "state.json").read_text())
    assert all(n.startswith(("squeeze1.", "combine1.")) for n in state["phases"][0]["trainable"])
    step1 = load_checkpoint(out / state["phases"][0]["selected"]).net.state_dict()
    teacher = compressor.teacher_net().state_dict()   # the teacher as compression starts from it
    for k in ("backbone.conv1.0.weight", "backbone.conv3.0.weight", "backbone.conv2.1.weight"):
        torch.testing.assert_close(step1[k], teacher[k])   # frozen during the step
    fine = load_checkpoint(out / state["phases"][1]["selected"]).net.state_dict()
    assert not torch.equal(fine["backbone.conv3.0.weight"], teacher["backbone.conv3.0.weight"])


def test_a_slim_teacher_halves_and_folds_exactly(setup, tmp_path):
    """FD of an already compressed network: the release FD-0.3 widths halved give FD-0.15's."""
    from siamfc.compression.transform import transform
    from siamfc.models.stats import count_params

    torch.manual_seed(3)
    save_checkpoint(tmp_path / "slim30.pth", build_net((28, 76, 114, 114, 76)))
    cfg = tiny_cfg(setup["data"])
    cfg.rates, cfg.last_step = [0.5], 0
    cfg.step.epochs, cfg.finetune.epochs = 0, 1   # the default recipe's shape: closed-form steps, trained fine-tunes
    cfg.candidates = 1
    final = Compressor(cfg, str(tmp_path / "slim30.pth"), str(setup["crops"]), str(tmp_path / "run")).run()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(state["phases"]) == 18 and state["phases"][-1]["name"] == "finetune9"
    result = transform(final, str(tmp_path / "slim15.pth"))
    assert result["check"].worst < 1e-4
    slim = load_checkpoint(tmp_path / "slim15.pth").net.backbone
    assert slim.widths == (14, 38, 56, 56, 38) and count_params(slim) == 55_102


def test_rejects_an_fd_network_as_teacher_and_rates_that_do_not_fit(setup, tmp_path):
    from siamfc.models.backbone import alexnet_layers
    from siamfc.models.fd import FDPlan

    save_checkpoint(tmp_path / "fd.pth", build_net(plan=FDPlan(alexnet_layers(), (0.5,), 3)))
    with pytest.raises(InputError, match="not an FD network in mid-compression"):
        Compressor(tiny_cfg(setup["data"]), str(tmp_path / "fd.pth"), str(setup["crops"]), str(tmp_path / "x"))
    cfg = tiny_cfg(setup["data"])
    cfg.rates = [0.5, 0.5, 0.5]
    with pytest.raises(InputError, match=r"rates \[0.5, 0.5, 0.5\] do not fit its 5-layer chain"):
        Compressor(cfg, str(setup["teacher"]), str(setup["crops"]), str(tmp_path / "y"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_random_region_pairs_and_the_teacher_bank_train_without_a_label(setup, tmp_path):
    """data: frames: pairs cut anywhere in the frames (never from a held-out tail), the
    teacher's outputs computed once, and phases that train on them."""
    from siamfc.data.frames import FramePairConfig, cut_pairs, training_frames
    from siamfc.training.bank import TeacherBank

    crops = tmp_path / "crops"
    crop_dataset("got10k", str(setup["data"]), str(crops), hold_tail=0.3)
    frames = training_frames(str(crops))
    assert len(frames) == 3 and all(len(f) == 7 for f in frames)   # 10 frames, the last 3 held out
    fcfg = FramePairConfig(pairs=6, seed=1)
    z, x = cut_pairs(frames, fcfg)
    assert z.shape == (6, 3, 127, 127) and x.shape == (6, 3, 239, 239) and z.dtype == torch.uint8
    assert torch.equal(cut_pairs(frames, fcfg)[1], x)   # seeded: a resumed run cuts the same pairs
    teacher = load_checkpoint(setup["teacher"]).net
    bank = TeacherBank(z, x, teacher)
    with torch.no_grad():
        want = teacher.eval()(z[:2].float(), x[:2].float())
    torch.testing.assert_close(bank.targets(torch.tensor([0, 1]))[0], want)
    cfg = tiny_cfg(setup["data"])
    cfg.data, cfg.frames, cfg.last_step = "frames", fcfg, 1
    cfg.loss.track, cfg.loss.response, cfg.loss.features = 0.0, 1.0, 1.0
    out = tmp_path / "run"
    Compressor(cfg, str(setup["teacher"]), str(crops), str(out)).run()
    state = json.loads((out / "state.json").read_text())
    assert [len(p["pairs_per_s"]) for p in state["phases"]] == [2, 1]
    assert state["phases"][0]["arithmetic"]["gflop_per_pair"] > 0
    cfg.loss.track = 1.0
    with pytest.raises(InputError, match="CompressConfig.data"):
        cfg.check()


def test_the_loss_guard_stops_a_finite_divergence(tmp_path):
    from siamfc.training.trainer import TrainingDiverged

    trainer = Trainer.__new__(Trainer)
    trainer.cfg, trainer.history, trainer.out_dir = TrainConfig(guard=3.0), [], str(tmp_path)
    trainer.check_guard(1, [1.0] * 20)            # sets the starting level
    trainer.check_guard(1, [1.0] * 10 + [4.0] * 10)   # 2.5x: still allowed
    with pytest.raises(TrainingDiverged, match="rose from 1 to 6"):
        trainer.check_guard(1, [6.0] * 20)
    trainer.history = [{"loss": 10.0}]            # later epochs compare with the first epoch's mean
    trainer.check_guard(2, [25.0] * 20)
    off = Trainer.__new__(Trainer)
    off.cfg, off.history = TrainConfig(), []
    off.check_guard(1, [1e9] * 20)                # guard 0: off
