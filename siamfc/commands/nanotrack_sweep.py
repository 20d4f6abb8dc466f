"""Cut NanoTrack v2 by closed-form Feature Distilling at several keep-ratios and run every cut inside
cv2.TrackerNano, beside the original pair and VitTrack, on the same frames and threads.

For each rate: the expansion width inside every MobileNetV3 block and the hidden width of the head's
towers keep that share of their channels (couplings from torch-pruning's dependency graph), each
consumer is refit by least squares to the teacher's activations on calibration pairs, and the model
is exported to OUT/rate_X/backbone.onnx + head.onnx. Writes OUT/sweep.json, OUT/sweep.md and
OUT/sweep.png (AUC against fps). Resumes: finished cuts and tracked sequences are kept.

The default scores extra_real's val split and calibrates on extra_real's train split and train_real;
the calibration sets may not hold a scored sequence.

Examples:
  fdsiamfc nanotrack-sweep --rates 1.0 0.75 0.5 0.35 --out runs/nanotrack_sweep
  fdsiamfc nanotrack-sweep --root ../shared/data/real --split all --out runs/nanotrack_sweep_test
  fdsiamfc nanotrack-sweep --rates 0.5 --extra runs/nanotrack --out runs/nanotrack_vs   # the job's pair too
"""
from __future__ import annotations

from ..cli import ArgParser, dir_arg, file_arg, positive_float_arg, positive_int_arg
from ..compression.nano_fit import SELECTIONS
from ..compression.nano_widths import PARTS
from ..evaluation.benchmarks import BENCHMARKS
from ..jobs.nano_sweep import Sweep, run_sweep

DEFAULTS = Sweep()


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--out", default=DEFAULTS.out)
    p.add_argument("--rates", nargs="+", type=positive_float_arg, default=list(DEFAULTS.rates),
                   help="keep-ratios in (0, 1], one cut each (1.0: the refit alone, which must give the teacher)")
    p.add_argument("--config", type=file_arg, default=DEFAULTS.config)
    p.add_argument("--weights", default=DEFAULTS.weights, help="the teacher: SiamTrackers' nanotrackv2.pth")
    p.add_argument("--benchmark", default=DEFAULTS.benchmark, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument("--root", type=dir_arg, default=DEFAULTS.root, help="the scored benchmark's root")
    p.add_argument("--split", default=DEFAULTS.split,
                   help="a sequence list in ROOT/splits.json, or 'all' for every sequence (default: val)")
    p.add_argument("--sequences", nargs="*", default=[], help="only these sequences (instead of --split)")
    p.add_argument("--calibration", nargs="+", default=list(DEFAULTS.calibration),
                   help="BENCHMARK:ROOT[:SPLIT] sets the calibration pairs are cut from (default: extra_real "
                        "train and train_real)")
    p.add_argument("--pairs", type=positive_int_arg, default=DEFAULTS.pairs, help="calibration pairs")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--select", choices=SELECTIONS, default=DEFAULTS.select,
                   help="greedy: least-squares forward selection; energy: mean square x consumer column norm")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(DEFAULTS.parts))
    p.add_argument("--extra", nargs="*", default=[],
                   help="folders a finished nanotrack job wrote (backbone.onnx, head.onnx, report.json), "
                        "scored and timed beside the cuts")
    p.add_argument("--threads", type=positive_int_arg, default=DEFAULTS.threads)
    p.add_argument("--speed-rounds", type=positive_int_arg, default=DEFAULTS.speed_rounds,
                   help="passes of the side-by-side timing over the scored frames")
    args = p.parse_args()
    if any(r > 1 for r in args.rates):
        p.error(f"--rates must be in (0, 1], got {args.rates}")
    sweep = run_sweep(Sweep(out=args.out, rates=tuple(args.rates), config=args.config, weights=args.weights,
                            benchmark=args.benchmark, root=args.root, split=args.split,
                            sequences=tuple(args.sequences), calibration=tuple(args.calibration), pairs=args.pairs,
                            seed=args.seed, select=args.select, parts=tuple(args.parts), threads=args.threads,
                            extra=tuple(args.extra), speed_rounds=args.speed_rounds))
    print(open(f"{args.out}/sweep.md").read())
    print(f"results: {args.out}/sweep.json, {args.out}/sweep.png ({len(sweep['rows'])} trackers)")
