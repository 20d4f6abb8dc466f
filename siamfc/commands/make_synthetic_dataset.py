"""Generate the embedded synthetic tracking dataset in GOT-10k layout.

Example:
  python tools/make_synthetic_dataset.py --out data/synthetic --seed 0 --train-seqs 80 --val-seqs 150
"""
from __future__ import annotations

import dataclasses

from ..cli import ArgParser, count_arg, file_arg, positive_int_arg
from ..config import load_section
from ..data.synthetic import SynthConfig, make_dataset


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--out", required=True, help="dataset root (train/ and val/ are created)")
    p.add_argument("--config", type=file_arg, help="YAML config with a 'data' section (flags below override it)")
    p.add_argument("--seed", type=count_arg)
    p.add_argument("--train-seqs", type=count_arg)
    p.add_argument("--val-seqs", type=count_arg)
    p.add_argument("--frames", type=positive_int_arg, help="frames per training sequence")
    p.add_argument("--val-frames", type=positive_int_arg, help="frames per validation sequence")
    p.add_argument("--val-stride", type=positive_int_arg,
                   help="keep every k-th rendered validation frame (k times the motion a frame)")
    p.add_argument("--width", type=positive_int_arg)
    p.add_argument("--height", type=positive_int_arg)
    p.add_argument("--workers", type=positive_int_arg)
    args = p.parse_args()
    cfg = load_section(args.config, "data", SynthConfig)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(SynthConfig)
                 if getattr(args, f.name, None) is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    make_dataset(args.out, cfg)
    print(f"wrote {cfg.train_seqs} train and {cfg.val_seqs} val sequences to {args.out}")

