"""Benchmarks: where their sequences come from and which got10k experiment scores them.

got10k's dataset classes know each benchmark's sequence list and quirks (OTB's
frame ranges, repeated targets, UAV123's sub-sequences), so they provide the
frame lists. Their ``download`` path is never taken: OTB and TColor128 are built
with ``download=False`` and a plain folder of sequences never touches them. The
ground truth of every sequence is re-read by our strict parser first, so a bad
file fails with a clear message before tracking starts.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable

from ..data.sequences import (Sequence, check_lengths, list_frames, list_otb_folder, otb_folder_sequence, parse_boxes,
                              read_frame, segments, tail)
from ..errors import InputError


@dataclass(frozen=True)
class BenchmarkSpec:
    title: str            # got10k's folder name for results and reports
    kind: str             # "otb" (OTB metrics), "uav" (OTB metrics, NaN-aware), "got10k" (AO)
    allow_missing: bool   # ground truth may mark an absent target (NaN) after frame 1
    dataset: Callable[[str], Any] | None


def _got10k(name: str, **kwargs: Any) -> Callable[[str], Any]:
    def build(root: str) -> Any:
        import got10k.datasets as ds
        return getattr(ds, name)(root, **kwargs)
    return build


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "otb2013": BenchmarkSpec("OTB2013", "otb", False, _got10k("OTB", version=2013, download=False)),
    "otb2015": BenchmarkSpec("OTB2015", "otb", False, _got10k("OTB", version=2015, download=False)),
    "tb50": BenchmarkSpec("TB50", "otb", False, _got10k("OTB", version="tb50", download=False)),
    "uav123": BenchmarkSpec("UAV123", "uav", True, _got10k("UAV123", version="UAV123")),
    "uav20l": BenchmarkSpec("UAV20L", "uav", True, _got10k("UAV123", version="UAV20L")),
    "tcolor128": BenchmarkSpec("TColor128", "otb", False, _got10k("TColor128", download=False)),
    "dtb70": BenchmarkSpec("DTB70", "otb", False, _got10k("DTB70")),
    "got10k-val": BenchmarkSpec("GOT-10k", "got10k", True, _got10k("GOT10k", subset="val", return_meta=True)),
    # a GOT-10k-layout training split scored as a benchmark (e.g. held-out videos to select on)
    "got10k-train": BenchmarkSpec("GOT-10k-train", "got10k", True,
                                  _got10k("GOT10k", subset="train", return_meta=True)),
    # any folder of sequences (frames or videos); a NaN box after the first marks an absent target, as users'
    # footage does, so OTB's metrics are taken NaN-aware (identical where no box is NaN)
    "folder": BenchmarkSpec("folder", "uav", True, None),
}


ALIASES = {"got10k": "got10k-val", "got-10k": "got10k-val", "got-10k-val": "got10k-val",
           "otb100": "otb2015", "tb100": "otb2015", "tc128": "tcolor128"}
BENCHMARK_NAMES = tuple(BENCHMARKS) + tuple(ALIASES)


@dataclass
class LoadedBenchmark:
    spec: BenchmarkSpec
    root: str
    sequences: list[Sequence]
    failed: dict[str, str]   # sequence name -> one-line error


def _normalise(name: str) -> str:
    key = name.lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise InputError(f"unknown benchmark '{name}'; choose one of {', '.join(BENCHMARKS)}")
    return key


def spec_for(name: str) -> BenchmarkSpec:
    return BENCHMARKS[_normalise(name)]


def _dataset_sequence(dataset: Any, index: int, spec: BenchmarkSpec) -> Sequence:
    name = dataset.seq_names[index]
    gt = dataset.anno_files[index]
    boxes = parse_boxes(gt, allow_missing=spec.allow_missing)
    try:
        item = dataset[index]
    except AssertionError:
        list_frames(os.path.dirname(gt))   # names a missing frame, if that is the cause
        raise InputError(f"{gt}: frames and ground truth of sequence {name} differ in length") from None
    except Exception as e:
        raise InputError(f"{gt}: cannot load sequence {name} ({type(e).__name__}: {e})") from None
    meta = dict(item[2]) if len(item) > 2 else {}
    if spec.kind == "got10k" and "resolution" not in meta and len(item[0]):
        # got10k's AO bounds boxes by meta_info.ini's resolution, which hand-made GOT-10k folders often omit
        h, w = read_frame(item[0][0]).shape[:2]
        meta["resolution"] = f"({w}, {h})"
    return check_lengths(Sequence(name, list(item[0]), boxes, gt, meta))


def load_benchmark(name: str, root: str, only: list[str] | None = None, segment: int = 0,
                   tails: float = 0.0) -> LoadedBenchmark:
    """Read and validate every sequence; bad ones go to ``failed`` with their error.

    ``segment`` > 0 cuts every sequence into pieces of that many frames (see
    :func:`~siamfc.data.sequences.segments`); ``tails`` > 0 keeps only the last
    fraction of each (:func:`~siamfc.data.sequences.tail`).
    """
    spec = spec_for(name)
    if not os.path.isdir(root):
        raise InputError(f"{root}: benchmark root folder not found")
    sequences: list[Sequence] = []
    failed: dict[str, str] = {}
    if spec.dataset is None:
        loaders = {os.path.basename(d): (lambda d=d: otb_folder_sequence(d, spec.allow_missing))
                   for d in list_otb_folder(root)}
    else:
        try:
            dataset = spec.dataset(root)
        except Exception as e:
            raise InputError(f"{root}: not a readable {spec.title} root ({type(e).__name__}: {e})") from None
        loaders = {n: (lambda i=i: _dataset_sequence(dataset, i, spec))
                   for i, n in enumerate(dataset.seq_names)}
    for seq_name, load in loaders.items():
        if only and seq_name not in only:
            continue
        try:
            sequences.append(load())
        except InputError as e:
            failed[seq_name] = str(e)
    if tails:
        sequences = [t for t in (tail(seq, tails) for seq in sequences) if t is not None]
    if segment:
        sequences = [piece for seq in sequences for piece in segments(seq, segment)]
    return LoadedBenchmark(spec, root, sequences, failed)


def sequence_set(text: str) -> tuple[str, str, list[str] | None]:
    """``BENCHMARK:ROOT[:SPLIT]`` -> the benchmark, its root and the names the split lists in
    ``ROOT/splits.json`` (None: every sequence); a malformed text or a missing list is a one-line error."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InputError(f"{text}: a sequence set is BENCHMARK:ROOT or BENCHMARK:ROOT:SPLIT")
    if len(parts) == 2:
        return parts[0], parts[1], None
    path = os.path.join(parts[1], "splits.json")
    try:
        with open(path) as f:
            return parts[0], parts[1], list(json.load(f)[parts[2]])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: no sequence list '{parts[2]}' ({type(e).__name__})") from None
