"""Video files as frame sequences: ``NAME/video.mp4`` beside ``NAME/groundtruth.txt``.

Every reader of the project (crops, training, compression, evaluation, the label-free
path) takes frame paths, and got10k's scoring reads results, not pixels. So a video is
decoded once, on first use, into a cache folder of PNG frames (lossless: exactly the
pixels the decoder gave) keyed by the file's path, size and modification time, and
its frames are those paths from then on. Decoding a 640x360 video costs about as much
as tracking it once; every later read is a plain image read.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import cv2

from ..errors import InputError
from ..system import CACHE_DIR

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
VIDEO_NAMES = tuple(f"video{ext}" for ext in VIDEO_EXTENSIONS)   # what a sequence folder may hold
_DONE = "frames.done"   # the frame count


def is_video(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def sequence_video(seq_dir: str) -> str | None:
    """The sequence folder's ``video.<ext>``, if it has one."""
    for name in VIDEO_NAMES:
        if os.path.isfile(os.path.join(seq_dir, name)):
            return os.path.join(seq_dir, name)
    return None


def cache_folder(path: str, cache_dir: str | None = None) -> str:
    st = os.stat(path)
    key = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return os.path.join(cache_dir or CACHE_DIR, "video_frames", key)


def video_frames(path: str, cache_dir: str | None = None) -> list[str]:
    """The frames of the video at ``path`` as image paths (decoded into the cache on first use)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: video not found")
    folder = cache_folder(path, cache_dir)
    if not os.path.isfile(os.path.join(folder, _DONE)):
        try:
            _decode(path, folder)
        except OSError as e:
            raise InputError(f"{path}: cannot cache its decoded frames in {folder} ({e.strerror or e})") from None
    with open(os.path.join(folder, _DONE)) as f:
        count = int(f.read())
    return [os.path.join(folder, f"{i:08d}.png") for i in range(1, count + 1)]


def _decode(path: str, folder: str) -> None:
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".", dir=os.path.dirname(folder))
    try:
        cap = cv2.VideoCapture(path)
        count = 0
        try:
            while cap.isOpened():
                ok, frame = cap.read()
                if not ok:
                    break
                count += 1
                if not cv2.imwrite(os.path.join(tmp, f"{count:08d}.png"), frame, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                    raise OSError(f"frame {count} could not be written (disk full?)")
        finally:
            cap.release()
        if count == 0:
            raise InputError(f"{path}: video will not decode (no frame could be read)")
        with open(os.path.join(tmp, _DONE), "w") as f:
            f.write(str(count))
        if os.path.isdir(folder) and not os.path.isfile(os.path.join(folder, _DONE)):
            shutil.rmtree(folder)   # not ours to race for: only a crash mid-rename leaves a folder without it
        os.replace(tmp, folder)   # the cache folder appears whole or not at all
    except OSError:
        if not os.path.isfile(os.path.join(folder, _DONE)):   # else another process decoded it first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
