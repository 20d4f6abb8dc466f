"""Every kind of bad input ends with one line naming the file, never a deep traceback."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from siamfc.data.sequences import otb_folder_sequence, parse_boxes, read_frame
from siamfc.errors import InputError

from conftest import REPO, moving_patch_clip, write_otb_sequence


@pytest.fixture
def seq_dir(tmp_path):
    frames, boxes = moving_patch_clip(n=6)
    return write_otb_sequence(tmp_path / "bench", "clip", frames, boxes)


def one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg


def test_missing_frame(tmp_path):
    with pytest.raises(InputError) as err:
        read_frame(str(tmp_path / "0001.jpg"))
    one_line(err, "0001.jpg", "missing")


def test_corrupt_frame(tmp_path):
    path = tmp_path / "0001.jpg"
    path.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(InputError) as err:
        read_frame(str(path))
    one_line(err, "0001.jpg", "corrupt")


@pytest.mark.parametrize("text,needle", [
    ("1,2,3\n", "expected 4 values"),
    ("1,2,3,4,5\n", "expected 4 values"),
    ("1,2,a,4\n", "non-numeric"),
    ("nan,2,3,4\n", "NaN"),
    ("1,2,0,4\n", "zero or negative size"),
    ("1,2,5,-4\n", "zero or negative size"),
    ("1,2,3,4\n1,2,nan,4\n", ":2: NaN"),
    ("", "empty"),
])
def test_malformed_ground_truth(tmp_path, text, needle):
    gt = tmp_path / "groundtruth_rect.txt"
    gt.write_text(text)
    with pytest.raises(InputError) as err:
        parse_boxes(str(gt))
    one_line(err, "groundtruth_rect.txt", needle)


def test_whitespace_separated_ground_truth(tmp_path):
    gt = tmp_path / "groundtruth_rect.txt"
    gt.write_text("1 2 3 4\n5\t6\t7\t8\n")
    np.testing.assert_array_equal(parse_boxes(str(gt)), [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_nan_after_first_frame_allowed_where_benchmark_marks_absence(tmp_path):
    gt = tmp_path / "groundtruth.txt"
    gt.write_text("1,2,3,4\nNaN,NaN,NaN,NaN\n")
    assert np.isnan(parse_boxes(str(gt), allow_missing=True)[1]).all()


def test_frames_and_ground_truth_lengths_differ(seq_dir):
    with open(seq_dir / "groundtruth_rect.txt", "a") as f:
        f.write("1,1,5,5\n")
    with pytest.raises(InputError) as err:
        otb_folder_sequence(str(seq_dir))
    one_line(err, "groundtruth_rect.txt", "7 boxes but 6 frames")


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)


def test_cli_reports_mismatched_checkpoint_in_one_line(tmp_path, seq_dir):
    torch.save({"backbone.conv1.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "odd.pth")
    r = run_tool("tools/evaluate.py", "--checkpoint", str(tmp_path / "odd.pth"), "--benchmark", "folder",
                 "--root", str(seq_dir.parent), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "odd.pth" in lines[0], r.stderr


def test_cli_wrong_root_path(tmp_path):
    r = run_tool("tools/evaluate.py", "--checkpoint", "identity", "--benchmark", "folder",
                 "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "nowhere: no such folder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_one_bad_sequence_does_not_stop_the_benchmark(tmp_path):
    root = tmp_path / "bench"
    for i in range(3):
        frames, boxes = moving_patch_clip(seed=i, n=5)
        write_otb_sequence(root, f"seq{i}", frames, boxes)
    (root / "seq1" / "img" / "0003.jpg").write_bytes(b"garbage")         # corrupt frame
    (root / "seq2" / "groundtruth_rect.txt").write_text("1,2,3\n" * 5)   # malformed truth
    r = run_tool("tools/evaluate.py", "--checkpoint", "identity", "--benchmark", "folder",
                 "--root", str(root), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["sequences"]) == ["seq0"]
    assert "0003.jpg: frame is unreadable or corrupt" in summary["failed"]["seq1"]
    assert "groundtruth_rect.txt:1: expected 4 values" in summary["failed"]["seq2"]
