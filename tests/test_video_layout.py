"""Video sequences as a dataset layout: NAME/video.mp4 + NAME/groundtruth.txt, read by every reader."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamfc.compression.pseudo import frame_folders
from siamfc.data import video
from siamfc.data.sequences import OTBFolder, list_otb_folder, otb_folder_sequence, read_frame
from siamfc.errors import InputError
from siamfc.evaluation import evaluate
from siamfc.tracking.factory import TrackerSpec

from conftest import moving_patch_clip, write_otb_sequence, write_video_sequence


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(video, "CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def decoded(path: Path) -> list[np.ndarray]:
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))


def test_a_video_sequence_gives_the_decoders_pixels_and_decodes_once(tmp_path, cache):
    frames, boxes = moving_patch_clip(n=12)
    seq_dir = write_video_sequence(tmp_path / "root", "clip", frames, boxes)
    seq = otb_folder_sequence(str(seq_dir))
    assert len(seq.frames) == 12 and seq.gt_file.endswith("groundtruth.txt")
    for path, want in zip(seq.frames, decoded(seq_dir / "video.mp4")):
        assert np.array_equal(read_frame(path), want)     # lossless cache of the decoder's output
    stamp = os.stat(seq.frames[0]).st_mtime_ns
    assert otb_folder_sequence(str(seq_dir)).frames == seq.frames and os.stat(seq.frames[0]).st_mtime_ns == stamp
    assert len(list((cache / "video_frames").iterdir())) == 1


def test_video_and_image_folders_list_together_and_train_and_evaluate(tmp_path):
    frames, boxes = moving_patch_clip(n=10)
    root = tmp_path / "root"
    write_video_sequence(root, "a_video", frames, boxes)
    write_otb_sequence(root, "b_images", frames, boxes)
    assert [os.path.basename(d) for d in list_otb_folder(str(root))] == ["a_video", "b_images"]
    data = OTBFolder(str(root))
    assert len(data[0][0]) == len(data[1][0]) == 10
    s = evaluate(TrackerSpec("identity"), "folder", str(root), str(tmp_path / "out"))
    assert set(s["sequences"]) == {"a_video", "b_images"}


def test_the_label_free_path_takes_videos_without_ground_truth(tmp_path):
    frames, _ = moving_patch_clip(n=8)
    root = tmp_path / "root"
    write_video_sequence(root, "unlabelled", frames, None)
    folders = frame_folders(str(root))
    assert folders["unlabelled"].endswith("video.mp4")


def test_a_frame_box_count_mismatch_names_both_files(tmp_path):
    frames, boxes = moving_patch_clip(n=10)
    seq_dir = write_video_sequence(tmp_path, "short", frames, boxes[:7])
    with pytest.raises(InputError, match=r"groundtruth.txt: 7 boxes but 10 frames in .*video.mp4"):
        otb_folder_sequence(str(seq_dir))


def test_an_undecodable_video_is_one_clear_error_and_leaves_no_cache(tmp_path, cache):
    seq_dir = tmp_path / "broken"
    seq_dir.mkdir()
    (seq_dir / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    (seq_dir / "groundtruth.txt").write_text("1,1,5,5\n")
    with pytest.raises(InputError, match=r"video.mp4: video will not decode"):
        otb_folder_sequence(str(seq_dir))
    assert not (cache / "video_frames").exists() or not any((cache / "video_frames").iterdir())


def test_the_demo_reads_a_video_sequence_folder_and_its_first_box(tmp_path):
    from siamfc.tracking.video import open_source

    frames, boxes = moving_patch_clip(n=5)
    src = open_source(str(write_video_sequence(tmp_path, "clip", frames, boxes)))
    assert len(list(src.frames)) == 5 and np.allclose(src.init_box, boxes[0], atol=0.01)


def test_an_absent_target_after_the_first_frame_is_scored_not_failed(tmp_path):
    frames, boxes = moving_patch_clip(n=10)
    boxes = boxes.copy()
    boxes[4:6] = np.nan    # users' footage marks an absent target so (extra_real does)
    root = tmp_path / "root"
    write_video_sequence(root, "gone", frames, boxes)
    s = evaluate(TrackerSpec("identity"), "folder", str(root), str(tmp_path / "out"))
    assert list(s["sequences"]) == ["gone"] and not s["failed"]
