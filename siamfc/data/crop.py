"""Pre-crop training videos to 255x255 instance regions plus one metadata index.

Each frame is cut around its target with SiamFC's context (0.5) and scaled so the
exemplar region would be 127 px, the rest filled with the frame's mean colour,
and written as JPEG. Training then reads small crops instead of whole frames.

A sequence is written under a temporary folder and renamed when its crops and
its ``meta.json`` are complete, so an interrupted run loses only the sequences
in flight and a re-run skips finished ones. ``index.json`` is rebuilt last, from
the finished sequences, in a fixed order: the same input gives the same files.
"""
from __future__ import annotations

import os
import sys
import shutil
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..geometry import context_size, crop_region, fill_color, to_center
from ..config import Config, param
from ..errors import InputError
from ..files import read_json, write_json
from ..workers import pool
from .sequences import OTBFolder, list_frames, read_frame, tail_cut

INDEX = "index.json"
META = "meta.json"
LAYOUTS = ("got10k", "lasot", "vid", "otb")


@dataclass
class CropConfig(Config):
    exemplar_sz: int = param(127, ge=15)
    instance_sz: int = param(255, ge=15)
    context: float = param(0.5, ge=0)
    jpeg_quality: int = param(90, ge=1, le=100)


@dataclass
class SourceSequence:
    """A training video to crop; ``cover`` holds GOT-10k's 0-8 labels when known."""

    name: str
    frames: list[str]
    boxes: np.ndarray
    cover: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def box_valid(box: np.ndarray, frame_size: tuple[int, int]) -> bool:
    """SiamFC's training filter on one ``x, y, w, h`` box in a frame of (W, H).

    Area >= 20; w and h in [20, 500]; w/W and h/H in [0.01, 0.5]; w/h in [0.25, 4].
    """
    x, y, w, h = (float(v) for v in box)
    W, H = frame_size
    if not np.isfinite([x, y, w, h]).all() or w * h < 20:
        return False
    if not (20 <= w <= 500 and 20 <= h <= 500):
        return False
    if not (0.01 <= w / W <= 0.5 and 0.01 <= h / H <= 0.5):
        return False
    return 0.25 <= w / max(h, 1.0) <= 4


def cover_valid(cover: np.ndarray) -> np.ndarray:
    """GOT-10k's visibility filter: cover > max(1, 0.3 * the sequence's maximum)."""
    cover = np.asarray(cover, float)
    return cover > max(1.0, 0.3 * cover.max())


def crop_sequence(seq: SourceSequence, out_dir: str, cfg: CropConfig) -> dict[str, Any]:
    """Crop one sequence into ``out_dir`` (atomically); returns its index entry."""
    tmp = out_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n = len(seq.frames)
    valid = np.zeros(n, bool)
    sizes = np.zeros((n, 2))
    errors: list[str] = []
    finite = np.isfinite(seq.boxes).all(1) & (seq.boxes[:, 2:] > 0).all(1)
    for i, path in enumerate(seq.frames):
        try:
            img = read_frame(path)
        except InputError as e:
            errors.append(str(e))
            continue
        if not finite[i]:
            continue
        valid[i] = box_valid(seq.boxes[i], (img.shape[1], img.shape[0]))
        center, _ = to_center(seq.boxes[i])
        x_sz = context_size(seq.boxes[i, 2:], cfg.context) * cfg.instance_sz / cfg.exemplar_sz
        patch = crop_region(img, center, x_sz, cfg.instance_sz, fill_color(img))
        cv2.imwrite(os.path.join(tmp, f"{i + 1:08d}.jpg"), cv2.cvtColor(patch, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        sizes[i] = seq.boxes[i, 2:] * cfg.instance_sz / x_sz
    if seq.cover is not None and len(seq.cover) == n:
        valid &= cover_valid(seq.cover)
    entry = {"name": seq.name, "frames": n, "valid": "".join("1" if v else "0" for v in valid),
             "size": [[round(float(w), 2), round(float(h), 2)] for w, h in sizes],
             "errors": errors}
    write_json(os.path.join(tmp, META), entry)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return entry


# ------------------------------------------------------------ source layouts

def footage_layout(root: str) -> str:
    """``got10k`` for a GOT-10k root (``train/list.txt``), else ``otb``: sequence folders of ``img/`` frames
    or of a ``video.mp4``, in any mix."""
    return "got10k" if os.path.isfile(os.path.join(root, "train", "list.txt")) else "otb"


def list_sources(layout: str, root: str, subset: str | None = None, cache_dir: str = ".cache") -> Any:
    """The dataset object for ``layout``: got10k's toolkit for GOT-10k, LaSOT and VID,
    :class:`OTBFolder` for footage in OTB layout."""
    import got10k.datasets as ds

    if not os.path.isdir(root):
        raise InputError(f"{root}: dataset root folder not found")
    if layout == "otb":
        return OTBFolder(root)
    try:
        if layout == "got10k":
            return ds.GOT10k(root, subset=subset or "train", return_meta=True)
        if layout == "lasot":
            return ds.LaSOT(root, subset=subset or "train")
        if layout == "vid":
            return ds.ImageNetVID(root, subset=subset or ("train", "val"), cache_dir=cache_dir)
    except Exception as e:
        raise InputError(f"{root}: not a readable {layout} dataset ({type(e).__name__}: {e})") from None
    raise InputError(f"unknown dataset layout '{layout}'; choose one of {', '.join(LAYOUTS)}")


def load_source(dataset: Any, index: int) -> SourceSequence:
    item = dataset[index]
    name = dataset.seq_names[index]
    meta = item[2] if len(item) > 2 else {}
    cover = meta.get("cover") if isinstance(meta, dict) else None
    return SourceSequence(name, list(item[0]), np.asarray(item[1], float).reshape(-1, 4),
                          None if cover is None else np.asarray(cover))


# ---------------------------------------------------------------- the job

_STATE: dict[str, Any] = {}


def _init(layout: str, root: str, subset: str | None, cache_dir: str) -> None:
    _STATE["dataset"] = list_sources(layout, root, subset, cache_dir)


def _crop_one(args: tuple[int, str, CropConfig]) -> dict[str, Any]:
    index, out_dir, cfg = args
    dataset = _STATE["dataset"]
    try:
        seq = load_source(dataset, index)
    except Exception as e:
        return {"name": dataset.seq_names[index], "frames": 0, "valid": "", "size": [],
                "errors": [load_error(dataset, index, e)], "skipped": True}
    return crop_sequence(seq, out_dir, cfg)


def load_error(dataset: Any, index: int, error: Exception) -> str:
    """One line naming why a sequence cannot be loaded (a missing frame, if that is why)."""
    if isinstance(error, InputError):
        return str(error)
    name = dataset.seq_names[index]
    folder = (getattr(dataset, "seq_dirs", None) or [None] * (index + 1))[index]
    if isinstance(error, AssertionError) and folder and os.path.isdir(folder):
        try:
            list_frames(folder)
        except InputError as e:
            return str(e)
        gt = (getattr(dataset, "anno_files", None) or [folder] * (index + 1))[index]
        return f"{gt}: frames and ground truth of sequence {name} differ in length"
    first = str(error).splitlines()[0] if str(error) else ""
    return f"{name}: cannot load sequence ({type(error).__name__}: {first})"


def safe_name(name: str) -> str:
    return name.replace(os.sep, "__")


def crop_dataset(layout: str, root: str, out: str, cfg: CropConfig | None = None,
                 workers: int = 1, subset: str | None = None, only: list[str] | None = None,
                 hold_tail: float = 0.0) -> dict[str, Any]:
    """Crop every sequence of a dataset (or ``only`` those named) into ``out`` and
    write ``out/index.json``. ``hold_tail`` > 0 keeps the last fraction of every
    sequence out of training: the index marks those frames invalid, so no pair uses them
    (they are tracked for selection instead, see :func:`~siamfc.data.sequences.tail`)."""
    cfg = cfg or CropConfig()
    cache_dir = os.path.join(out, ".cache")  # got10k's VID loader caches its file lists here
    _init(layout, root, subset, cache_dir)
    names = list(_STATE["dataset"].seq_names)
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise InputError(f"{root}: no sequence named {', '.join(unknown)} in this {layout} dataset")
    wanted = set(names if only is None else only)
    names = [n for n in names if n in wanted]
    os.makedirs(out, exist_ok=True)
    todo = [(i, os.path.join(out, safe_name(n)), cfg) for i, n in enumerate(_STATE["dataset"].seq_names)
            if n in wanted and not os.path.isfile(os.path.join(out, safe_name(n), META))]
    problems: list[str] = []
    with tqdm(total=len(names), initial=len(names) - len(todo), desc="cropping", unit="seq") as bar:
        if workers > 1 and len(todo) > 1:
            with pool(workers, _init, (layout, root, subset, cache_dir), start_method="fork") as executor:
                for entry in executor.map(_crop_one, todo, chunksize=1):
                    _report(entry, problems, bar)
        else:
            for job in todo:
                _report(_crop_one(job), problems, bar)
    entries = []
    for n in names:
        meta_path = os.path.join(out, safe_name(n), META)
        if os.path.isfile(meta_path):
            entry = read_json(meta_path)
            entry["dir"] = safe_name(n)
            if hold_tail and entry["frames"]:
                cut = tail_cut(entry["frames"], hold_tail)
                entry["valid"] = entry["valid"][:cut] + "0" * (entry["frames"] - cut)
                entry["held_out_from"] = cut
            entries.append(entry)
    index = {"layout": layout, "root": os.path.abspath(root), "crop": cfg.__dict__,
             "sequences": entries}
    write_json(os.path.join(out, INDEX), index)
    return index


def _report(entry: dict[str, Any], problems: list[str], bar: tqdm) -> None:
    what = "sequence skipped" if entry.get("skipped") else "frame marked invalid"
    for err in entry.get("errors", []):
        tqdm.write(f"warning: {err} ({what})", file=sys.stderr)
        problems.append(err)
    bar.update(1)
