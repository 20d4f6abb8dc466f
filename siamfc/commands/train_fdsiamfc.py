"""Compress a trained SiamFC with Feature Distilling, layer by layer (steps 1-9 with
fine-tunes), selecting each phase's best checkpoint on a benchmark.

Resumable: run the same command again after an interruption.

Example:
  python tools/train_FDSiamFC.py --config configs/quickstart.yaml --teacher runs/teacher/model.pth \
      --data data/crops --out runs/fd30
"""
from __future__ import annotations


from ..cli import ArgParser, count_arg, dir_arg, file_arg
from ..compression.driver import Compressor
from ..compression.recipe import CompressConfig
from ..config import load_section


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", type=file_arg, help="YAML config; its 'compress' section is used")
    p.add_argument("--teacher", required=True, help="full-width SiamFC checkpoint")
    p.add_argument("--data", required=True, type=dir_arg, help="cropped training data (index.json)")
    p.add_argument("--out", required=True, help="run folder: phases/, state.json, compress_log.md, fd_model.pth")
    p.add_argument("--seed", type=count_arg, help="override compress.seed")
    args = p.parse_args()
    cfg = load_section(args.config, "compress", CompressConfig)
    if args.seed is not None:
        cfg.seed = args.seed
    final = Compressor(cfg, args.teacher, args.data, args.out).run()
    print(f"FD checkpoint: {final}\nlog: {args.out}/compress_log.md")

