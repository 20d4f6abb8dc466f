"""Score SiamFC checkpoints' response maps on held-out cropped pairs: the training loss and the share of
pairs whose peak lands on the target (within r_pos). Seconds, not a benchmark run: the measure for choosing a
teacher's data, pairs and schedule away from the benchmark that reports it.

Examples:
  python tools/make_synthetic_dataset.py --out runs/heldout --seed 123 --train-seqs 100 --val-seqs 0 --frames 50
  python tools/crop_train_dataset.py --root runs/heldout --out runs/heldout/crops --workers 2
  python tools/score_pairs.py --crops runs/heldout/crops runs/quickstart/teacher/model.pth
"""
from __future__ import annotations

import json

from ..cli import ArgParser, dir_arg, file_arg, positive_int_arg
from ..models.checkpoint import load_checkpoint
from ..training.heldout import HeldOutPairs


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("checkpoints", nargs="+", type=file_arg, help="SiamFC checkpoints (teacher, FD or slim)")
    p.add_argument("--crops", required=True, type=dir_arg, help="cropped held-out sequences (crop output)")
    p.add_argument("--pairs", type=positive_int_arg, default=400, help="pairs, spread evenly over the sequences")
    p.add_argument("--seed", type=int, default=5, help="the pairs' draw")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    args = p.parse_args()
    pairs = HeldOutPairs(args.crops, args.pairs, args.seed)
    for path in args.checkpoints:
        scores = pairs.score(load_checkpoint(path).net)
        print(json.dumps({"checkpoint": path, "pairs": len(pairs), **scores}) if args.json else
              f"{path}: held-out loss {scores['heldout_loss']:.4f}, peak on target {scores['heldout_peak']:.3f} "
              f"({len(pairs)} pairs)")
