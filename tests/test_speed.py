"""The speed benchmark's tables: ours against the plain baseline of the same run."""
import pytest

from siamfc.data.sequences import otb_folder_sequence
from siamfc.evaluation.speed import markdown, profile_tracker, side_by_side, training_gflop_per_pair
from siamfc.models.checkpoint import random_net, save_checkpoint
from siamfc.tracking.factory import TrackerSpec
from siamfc.tracking.profile import PARTS, FrameProfile

from conftest import moving_patch_clip, write_otb_sequence


def row(tracker, backend, fps, latency):
    return {"tracker": tracker, "backend": backend, "params": 10, "mb": 0.1, "gflops": 0.7, "latency_ms": latency,
            "achieved_gflops": 3 * 0.7 / latency * 1e3, "fps": fps, "auc": 0.5, "precision": 0.7}


def test_the_side_by_side_table_divides_ours_by_the_plain_row_of_the_same_model():
    rows = [row("FD-0.3", "fp32", 30.0, 20.0), row("FD-0.3", "plain", 20.0, 40.0),
            row("FD-0.3", "auto -> fp32", 30.0, 20.0), row("full", "plain", 5.0, 150.0)]
    side = side_by_side(rows)
    assert list(side) == ["FD-0.3"]   # the full model has no auto row: no ratio is made up
    parts = {p: 0.1 for p in PARTS}
    profile = [{"tracker": "FD-0.3", "backend": b, "frames": f, **parts, "outside": o, "total": 9.0}
               for b, f, o in (("plain", "640x360", 2.5), ("plain", "1280x720", 4.0),
                               ("auto -> fp32", "640x360", 0.6), ("auto -> fp32", "1280x720", 0.9))]
    text = markdown({"cpu": "CPU X", "isa": "avx2", "threads": 2, "torch": "2", "rows": rows, "profile": profile,
                     "gemm_peak_gflops": {"fp32": 100.0, "bf16": 200.0, "int8": 400.0}})
    assert "| FD-0.3 | 20.0 | 30.0 (auto -> fp32) | 1.50x | 2.50 / 4.00; 0.60 / 0.90 |" in text
    assert "| FD-0.3 | auto -> fp32 | 1280x720 | " + " | ".join(["0.100"] * len(PARTS)) + " | **0.900** |" in text
    assert text.startswith("CPU X (avx2)")


@pytest.mark.parametrize("kind", ["siamfc", "plain"])
def test_the_profile_times_every_part_of_update_on_every_clip(tmp_path, kind):
    save_checkpoint(tmp_path / "net.pth", random_net(3))
    clips = {}
    for size, seed in (("320x240", 0), ("400x300", 1)):
        frames, boxes = moving_patch_clip(seed=seed, n=6, size=tuple(int(v) for v in size.split("x"))[::-1])
        write_otb_sequence(tmp_path / "clips", size, frames, boxes)
        clips[size] = otb_folder_sequence(str(tmp_path / "clips" / size))
    got = profile_tracker(TrackerSpec(kind, str(tmp_path / "net.pth")), clips)
    assert list(got) == ["320x240", "400x300"]
    for parts in got.values():
        assert set(parts) == {*PARTS, "outside", "total"}
        assert all(parts[p] > 0 for p in PARTS)
        assert parts["outside"] < parts["total"]


def test_a_profile_that_is_off_records_nothing():
    profile = FrameProfile()
    profile.start()
    profile.mark("crop")
    assert profile.times["crop"] == []
    with pytest.raises(ValueError, match="no profiled"):
        profile.medians_ms()
    profile.enabled = True
    for part in PARTS:
        profile.mark(part)
    assert set(profile.medians_ms()) == {*PARTS, "outside", "total"}


def test_a_training_pair_costs_three_forward_passes_of_both_images():
    # 3 x (exemplar 127 + search 239) of the full AlexNet, as the paper counts FLOPs
    assert 16.0 < training_gflop_per_pair() < 17.5


def test_a_share_of_the_gemm_peak_never_exceeds_one_the_peak_is_raised_instead(capsys):
    from siamfc.evaluation.speed import share_of_peak

    peaks = {"fp32": 100.0}
    assert share_of_peak(50.0, peaks, "fp32") == pytest.approx(0.5)
    assert share_of_peak(150.0, peaks, "fp32") == 1.0       # the run beat the reading: the reading was low
    assert peaks["fp32"] == 150.0 and "raised to 150" in capsys.readouterr().out
    assert share_of_peak(75.0, peaks, "fp32") == pytest.approx(0.5)   # later rows see the raised peak


def test_the_markdown_shows_no_share_above_100_percent():
    rows = [row("FD-0.3", "fp32", 30.0, 2.0)]   # 1,050 GFLOP/s against a peak read at 100
    text = markdown({"cpu": "CPU X", "isa": "avx2", "threads": 2, "torch": "2", "rows": rows, "profile": [],
                     "gemm_peak_gflops": {"fp32": 100.0}})
    shares = [int(s) for s in __import__("re").findall(r"\((\d+)%\)", text)]
    assert shares and max(shares) <= 100
