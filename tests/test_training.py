"""Training: losses, exact resume after an interruption, and a 2-process torchrun."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamfc.errors import InputError
from siamfc.models.checkpoint import load_checkpoint
from siamfc.training import trainer as trainer_mod
from siamfc.training.losses import balanced_loss, logistic_labels
from siamfc.training.trainer import TrainConfig, train_siamfc

from conftest import REPO, synthetic_crops


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return synthetic_crops(tmp_path_factory.mktemp("train"), seed=4)


def small_cfg(epochs: int = 3) -> TrainConfig:
    cfg = TrainConfig(epochs=epochs, batch_size=2, num_workers=0, keep_checkpoints=0, precision="fp32")
    cfg.pairs.pairs_per_seq = 2
    return cfg


def test_labels_and_balanced_loss():
    labels = logistic_labels(15, 16, 0, 8)
    assert labels.shape == (1, 1, 15, 15)
    assert labels.sum() == 13                # L1 ball of radius 2 around the centre
    assert labels[0, 0, 7, 7] == 1 and labels[0, 0, 7, 10] == 0
    perfect = torch.where(labels > 0, 20.0, -20.0).expand(4, 1, 15, 15)
    assert balanced_loss(perfect, labels) < 1e-6
    assert balanced_loss(-perfect, labels) > 10
    # positives and negatives weigh the same in total: an all-zero map costs log(2)
    assert balanced_loss(torch.zeros(2, 1, 15, 15), labels) == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_resume_after_interruption_reaches_the_same_weights(crops, tmp_path, monkeypatch):
    straight = train_siamfc(small_cfg(), str(crops), str(tmp_path / "straight"))
    real = trainer_mod.Trainer.train_epoch

    def killed_at_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", killed_at_3)
    with pytest.raises(KeyboardInterrupt):
        train_siamfc(small_cfg(), str(crops), str(tmp_path / "resumed"))
    assert sorted(os.listdir(tmp_path / "resumed" / "checkpoints")) == ["epoch_001.pth", "epoch_002.pth"]
    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", real)
    with pytest.raises(InputError, match="resume"):
        train_siamfc(small_cfg(), str(crops), str(tmp_path / "resumed"), resume=False)
    resumed = train_siamfc(small_cfg(), str(crops), str(tmp_path / "resumed"), resume=True)
    a, b = load_checkpoint(straight).net.state_dict(), load_checkpoint(resumed).net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    log = (tmp_path / "resumed" / "train_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3"]


def test_epoch_checkpoint_holds_the_full_training_state(crops, tmp_path):
    train_siamfc(small_cfg(1), str(crops), str(tmp_path / "run"))
    obj = torch.load(tmp_path / "run" / "checkpoints" / "epoch_001.pth", weights_only=True)
    assert {"state_dict", "meta", "optimizer", "scheduler", "rng"} <= set(obj)
    assert obj["meta"]["epoch"] == 1 and obj["optimizer"]["state"]
    # and the same file loads straight into the tracker
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_001.pth").net.backbone.widths[0] == 96


def test_heldout_scores_in_the_log_are_those_of_the_saved_epoch(crops, tmp_path):
    from dataclasses import replace
    from siamfc.data.pairs import PairConfig
    from siamfc.training.heldout import HeldOutPairs

    cfg = replace(small_cfg(1), heldout=str(crops), heldout_pairs=6, pairs=PairConfig(search_sz=175))
    train_siamfc(cfg, str(crops), str(tmp_path / "run"))
    header, row = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    logged = dict(zip(header.split(","), map(float, row.split(","))))
    again = HeldOutPairs(str(crops), 6).score(load_checkpoint(tmp_path / "run" / "model.pth").net)
    assert logged["heldout_loss"] == pytest.approx(again["heldout_loss"], rel=1e-4)
    assert logged["heldout_peak"] == pytest.approx(again["heldout_peak"], rel=1e-4) and 0 <= again["heldout_peak"] <= 1


def test_two_process_torchrun_trains_one_epoch(crops, tmp_path):
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("train:\n  epochs: 1\n  batch_size: 2\n  num_workers: 0\n  precision: fp32\n"
                   "  pairs: {pairs_per_seq: 2}\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29517", "tools/train_siamfc.py", "--config", str(cfg),
                        "--data", str(crops), "--out", str(tmp_path / "ddp"), "--device", "cpu"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "ddp" / "train_log.csv").read_text().splitlines()
    assert len(log) == 2
    # 6 pairs over 2 ranks with batch 2 and drop_last: each rank takes one batch -> 4 pairs
    assert (tmp_path / "ddp" / "model.pth").exists()
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "epoch_001.pth", weights_only=True)
    assert ckpt["meta"]["history"][0]["pairs_per_s"] > 0


def test_a_relative_lr_gives_every_tensor_its_own_lr_and_the_schedule_scales_them_alike(crops, tmp_path):
    from dataclasses import replace
    from siamfc.models.checkpoint import build_net

    torch.manual_seed(0)
    net = build_net()
    with torch.no_grad():
        net.backbone.conv1[0].weight.mul_(1e-3)
    cfg = replace(small_cfg(2), optimizer="adam", relative_lr=1e-2, ultimate_lr=1e-3)
    trainer = trainer_mod.Trainer(net, cfg, str(crops), str(tmp_path))
    groups = trainer.optimizer.param_groups
    assert sum(len(g["params"]) for g in groups) == len([p for p in net.parameters() if p.requires_grad])
    for g in groups:
        rms = float(g["params"][0].detach().square().mean().sqrt())
        assert g["lr"] == pytest.approx(1e-2 * rms) if rms else g["lr"] > 0
    first = [g["lr"] for g in groups]
    trainer.optimizer.step()   # no gradients: nothing moves, but the scheduler's order is kept
    trainer.scheduler.step()
    # initial_lr -> ultimate_lr over the epochs: the same factor for every tensor
    assert [g["lr"] / f for g, f in zip(groups, first)] == pytest.approx([trainer_mod.lr_factor(cfg)(1)] * len(groups))
    assert trainer_mod.lr_factor(cfg)(1) < 1
