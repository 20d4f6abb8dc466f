"""The synthetic dataset, its labels, the crop job and the pair sampler."""
import filecmp
import os
from pathlib import Path

import numpy as np
import pytest

from siamfc.data import crop as crop_mod
from siamfc.data.crop import box_valid, cover_valid, crop_dataset
from siamfc.config import ConfigError
from siamfc.data.pairs import PairConfig, PairDataset
from siamfc.data.synthetic import SynthConfig, make_dataset, render_sequence
from conftest import synthetic_crops


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(str(root), SynthConfig(train_seqs=4, val_seqs=3, frames=16, val_frames=6, seed=3, workers=2))
    return root


def test_dataset_loads_in_got10k_classes(tiny_dataset):
    from got10k.datasets import GOT10k
    from got10k.experiments import ExperimentGOT10k

    train = GOT10k(str(tiny_dataset), subset="train", return_meta=True)
    frames, anno, meta = train[0]
    assert len(train) == 4 and len(frames) == 16 and anno.shape == (16, 4)
    assert set(meta) >= {"cover", "absence", "cut_by_image", "resolution"}
    assert meta["resolution"] == "(320, 240)"
    exp = ExperimentGOT10k(str(tiny_dataset), subset="val", result_dir=str(tiny_dataset / "r"),
                           report_dir=str(tiny_dataset / "p"))
    assert len(exp.dataset) == 3


def test_generation_is_deterministic(tmp_path):
    cfg = SynthConfig(train_seqs=1, val_seqs=1, frames=5, val_frames=3, seed=11, workers=1)
    make_dataset(str(tmp_path / "a"), cfg)
    make_dataset(str(tmp_path / "b"), cfg)
    cmp = filecmp.dircmp(tmp_path / "a" / "train", tmp_path / "b" / "train")
    seq = cmp.common_dirs[0]
    files = sorted(os.listdir(tmp_path / "a" / "train" / seq))
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a" / "train" / seq, tmp_path / "b" / "train" / seq,
                                               files, shallow=False)
    assert not mismatch and not errors and len(match) == len(files)


def test_a_val_stride_keeps_every_kth_frame_of_the_same_scene(tmp_path):
    """val_stride 2 with 3 frames is frames 1, 3, 5 of the 5-frame sequence the same seed renders."""
    make_dataset(str(tmp_path / "a"), SynthConfig(train_seqs=0, val_seqs=1, val_frames=5, seed=4, workers=1))
    make_dataset(str(tmp_path / "b"), SynthConfig(train_seqs=0, val_seqs=1, val_frames=3, val_stride=2, seed=4,
                                                  workers=1))
    a, b = (tmp_path / k / "val" / "GOT-10k_Val_000001" for k in "ab")
    assert len(list(b.glob("*.jpg"))) == 3
    np.testing.assert_array_equal(np.loadtxt(b / "groundtruth.txt", delimiter=","),
                                  np.loadtxt(a / "groundtruth.txt", delimiter=",")[::2])
    assert (b / "00000002.jpg").read_bytes() == (a / "00000003.jpg").read_bytes()


def test_labels_agree_with_what_is_drawn():
    seen_occluded = seen_absent = 0
    for i in range(24):
        r = render_sequence(np.random.SeedSequence([5, i]), 40, 320, 240, keep_masks=True)
        density = []
        for t, vis in enumerate(r.visible):
            x, y, w, h = r.boxes[t]
            x0, y0 = int(np.floor(x - 1)), int(np.floor(y - 1))
            x1, y1 = int(np.ceil(x - 1 + w)), int(np.ceil(y - 1 + h))
            mass = vis.sum()
            if r.absence[t]:
                seen_absent += 1
                assert r.cover[t] == 0
                continue
            # every visible target pixel lies inside the ground-truth box
            outside = mass - vis[max(y0, 0):y1, max(x0, 0):x1].sum()
            assert outside <= 1e-3 * mass + 1e-6, (i, t)
            if r.cover[t] == 8:
                assert not r.cut[t]
                ys, xs = np.nonzero(vis > 0.5)
                assert abs(xs.min() - (x - 1)) <= 1.5 and abs(ys.min() - (y - 1)) <= 1.5
                assert abs(xs.max() + 1 - (x - 1 + w)) <= 1.5 and abs(ys.max() + 1 - (y - 1 + h)) <= 1.5
                density.append(mass / (w * h))
        full = max(density) if density else None
        for t, vis in enumerate(r.visible):
            if full and not r.absence[t] and not r.cut[t]:
                x, y, w, h = r.boxes[t]
                if vis.sum() / (w * h) < 0.8 * full:   # clearly part-hidden by an occluder
                    assert r.cover[t] < 8, (i, t)
                    seen_occluded += 1
    assert seen_occluded > 0 and seen_absent > 0


@pytest.mark.parametrize("box,size,ok", [
    ((10, 10, 40, 30), (320, 240), True),
    ((10, 10, 19, 30), (320, 240), False),     # w < 20
    ((10, 10, 20, 20), (320, 240), True),      # exactly the minimum
    ((10, 10, 161, 60), (320, 240), False),    # w/W > 0.5
    ((10, 10, 160, 60), (320, 240), True),     # w/W = 0.5
    ((10, 10, 100, 24), (320, 240), False),    # aspect 4.17 > 4
    ((10, 10, 96, 24), (320, 240), True),      # aspect 4
    ((10, 10, 30, 501), (4000, 4000), False),  # h > 500
    ((10, 10, 30, 30), (4000, 4000), False),   # w/W < 0.01
    ((10, 10, np.nan, 30), (320, 240), False),
])
def test_validity_filter_cases(box, size, ok):
    assert box_valid(np.array(box, float), size) == ok


def test_cover_filter():
    # max 8 -> threshold max(1, 2.4): cover must be >= 3
    np.testing.assert_array_equal(cover_valid(np.array([8, 3, 2, 1, 0])), [True, True, False, False, False])
    # a sequence never above 3: threshold max(1, 0.9) = 1 -> cover >= 2
    np.testing.assert_array_equal(cover_valid(np.array([3, 2, 1])), [True, True, False])


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_interrupted_crop_resumes_to_identical_files(tiny_dataset, tmp_path, monkeypatch):
    full = tmp_path / "full"
    crop_dataset("got10k", str(tiny_dataset), str(full), workers=1)
    part = tmp_path / "part"
    real = crop_mod.crop_sequence
    calls = {"n": 0}

    def dying(seq, out_dir, cfg):
        calls["n"] += 1
        if calls["n"] == 3:   # killed half-way through the third sequence
            os.makedirs(out_dir + ".partial", exist_ok=True)
            Path(out_dir + ".partial", "00000001.jpg").write_bytes(b"half")
            raise KeyboardInterrupt
        return real(seq, out_dir, cfg)

    monkeypatch.setattr(crop_mod, "crop_sequence", dying)
    with pytest.raises(KeyboardInterrupt):
        crop_dataset("got10k", str(tiny_dataset), str(part), workers=1)
    assert not (part / "index.json").exists()
    monkeypatch.setattr(crop_mod, "crop_sequence", real)
    crop_dataset("got10k", str(tiny_dataset), str(part), workers=2)
    assert tree(part) == tree(full)


def test_corrupt_frame_is_marked_invalid_not_fatal(tiny_dataset, tmp_path):
    src = tmp_path / "src"
    import shutil
    shutil.copytree(tiny_dataset, src)
    seq = sorted((src / "train").iterdir())[0]
    (seq / "00000004.jpg").write_bytes(b"broken")
    index = crop_dataset("got10k", str(src), str(tmp_path / "crops"), workers=1)
    entry = next(s for s in index["sequences"] if s["name"] == seq.name)
    assert entry["valid"][3] == "0"
    assert any("00000004.jpg" in e for e in entry["errors"])
    assert len(index["sequences"]) == 4


def test_pairs_are_close_valid_frames_and_reproducible(tiny_dataset, tmp_path):
    crops = tmp_path / "crops"
    crop_dataset("got10k", str(tiny_dataset), str(crops), workers=1)
    ds = PairDataset(str(crops), PairConfig(pairs_per_seq=3, max_dist=5), seed=1)
    assert len(ds) == 12
    valid = {d: set(v.tolist()) for d, v in ds.sequences}
    for i in range(len(ds)):
        folder, z, x = ds.sample(i, np.random.default_rng([1, 0, i]))
        assert z in valid[folder] and x in valid[folder] and abs(z - x) <= 5
    z, x = ds[5]
    assert z.shape == (3, 127, 127) and x.shape == (3, 239, 239) and z.dtype == x.dtype
    z2, x2 = ds[5]
    assert (z == z2).all() and (x == x2).all()
    ds.epoch = 1
    assert not (ds[5][1] == x).all()
    # search_sz keeps the centre of the same jittered crop: the target stays where the labels put it
    ds.epoch = 0
    small = PairDataset(str(crops), PairConfig(pairs_per_seq=3, max_dist=5, search_sz=207), seed=1)
    zs, xs = small[5]
    assert (zs == z).all() and xs.shape == (3, 207, 207) and (xs == x[:, 16:223, 16:223]).all()
    with pytest.raises(ConfigError, match="search_sz"):
        PairConfig(search_sz=251)


def test_short_epochs_visit_every_sequence_in_turn(tmp_path):
    data = PairDataset(str(synthetic_crops(tmp_path, seed=2)), PairConfig(epoch_pairs=2))
    assert len(data) == 2
    seen = set()
    for epoch in range(3):
        data.epoch = epoch
        seen |= {data.sample(i, np.random.default_rng(i))[0] for i in range(len(data))}
    assert len(seen) == len(data.sequences) == 3
