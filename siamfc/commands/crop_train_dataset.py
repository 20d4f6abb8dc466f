"""Crop a training dataset to 255x255 instance regions plus one metadata index.

Resumable: run the same command again after an interruption.

Examples:
  python tools/crop_train_dataset.py --dataset got10k --root data/synthetic --out data/crops --workers 2
  python tools/crop_train_dataset.py --dataset lasot --root /data/LaSOT --out /data/crops/lasot --workers 8
"""
from __future__ import annotations

import time

from ..cli import ArgParser, dir_arg, int_between, positive_int_arg
from ..data.crop import LAYOUTS, CropConfig, crop_dataset


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--dataset", default="got10k", choices=LAYOUTS, help="source layout")
    p.add_argument("--root", required=True, type=dir_arg, help="dataset root (GOT-10k: the folder holding train/)")
    p.add_argument("--out", required=True, help="output folder for crops and index.json")
    p.add_argument("--subset", help="subset to crop (default: train; VID: train and val)")
    p.add_argument("--workers", type=positive_int_arg, default=1)
    p.add_argument("--quality", type=int_between(1, 100), default=90, help="JPEG quality of the crops")
    args = p.parse_args()
    start = time.perf_counter()
    index = crop_dataset(args.dataset, args.root, args.out, CropConfig(jpeg_quality=args.quality),
                         args.workers, args.subset)
    seqs = index["sequences"]
    frames = sum(s["frames"] for s in seqs)
    valid = sum(s["valid"].count("1") for s in seqs)
    errors = sum(len(s["errors"]) for s in seqs)
    seconds = time.perf_counter() - start
    print(f"{len(seqs)} sequences, {frames} frames, {valid} valid, {errors} unreadable -> {args.out}/index.json "
          f"({seconds:.1f} s this run)")

