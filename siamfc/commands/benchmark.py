"""Speed and accuracy benchmark: our trackers on every backend against OpenCV's, on the
same frames (../shared/data/real when present, else synthetic 640x360 and 1280x720 clips).

Every row is tracked afresh in this run (records from an earlier run are dropped), and
each tracker's update() is profiled part by part on 640x360 and 1280x720 clips.
Writes OUT/benchmark.json and OUT/benchmark.md (the tables in the README).

Examples:
  python tools/benchmark.py --out runs/benchmark --threads 2
  python tools/benchmark.py --out runs/bench_zoo --trackers-only \
      --trackers model:runs/zoo/models/SiamRPN/model.pth model:configs/siamesex/SiamFCRes22.yaml
"""
from __future__ import annotations

import os

from ..cli import ArgParser, dir_arg, positive_int_arg
from ..shared import SHARED
from ..tracking.backends import BACKENDS

DEFAULT_SHARED = SHARED
QUICKSTART_TEACHER = "runs/quickstart/teacher/model.pth"


def main() -> None:
    from ..evaluation.speed import run as run_benchmark

    p = ArgParser(__doc__)
    p.add_argument("--out", default="runs/benchmark")
    p.add_argument("--threads", type=positive_int_arg, default=2, help="torch / ONNX Runtime threads (fixed for every row)")
    p.add_argument("--backends", nargs="+", default=[b for b in BACKENDS if b != "auto"])
    p.add_argument("--full-checkpoint", help="a trained full-width SiamFC for the full row (default: "
                                             "runs/quickstart/teacher/model.pth if present, else random weights)")
    p.add_argument("--shared", type=dir_arg, default=DEFAULT_SHARED if os.path.isdir(DEFAULT_SHARED) else None,
                   help="folder with data/real and weights/ (default ../shared when present)")
    p.add_argument("--sequences", nargs="*", help="only these sequences")
    p.add_argument("--trackers", nargs="+", default=[],
                   help="more trackers on the same frames, as tools/evaluate.py names them "
                        "(model:CONFIG.yaml[,WEIGHTS], a checkpoint, opencv:KCF, ...)")
    p.add_argument("--trackers-only", action="store_true", help="leave out the SiamFC models and their backends")
    p.add_argument("--training", action="store_true",
                   help="instead, time SiamFC training steps: fp32 NCHW (the public code's way) vs ours")
    args = p.parse_args()
    if args.training:
        from ..evaluation.speed import training_against_peak
        from ..system import cpu_name, isa_summary

        rows = training_against_peak(args.threads)
        print(f"training, batch 8, {args.threads} threads, {cpu_name()} ({isa_summary()})")
        for r in rows:
            print(f"  {r['precision']} {r['layout']}: {r['pairs_per_s']:.1f} pairs/s ({r['pairs_per_s'] / rows[0]['pairs_per_s']:.2f}x), "
                  f"{r['gflops']:.0f} GFLOP/s = {100 * r['fraction']:.0f}% of the {r['precision']} GEMM peak "
                  f"{r['peak_gflops']:.0f} GFLOP/s")
        return
    full = args.full_checkpoint or (QUICKSTART_TEACHER if os.path.isfile(QUICKSTART_TEACHER) else None)
    result = run_benchmark(args.out, args.threads, tuple(args.backends), args.shared, args.sequences, full,
                           tuple(args.trackers), not args.trackers_only)
    print(open(os.path.join(args.out, "benchmark.md")).read())
    print(f"threads: {result['threads']}; results: {args.out}/benchmark.json")

