"""Speed and accuracy benchmark: our trackers on every backend against OpenCV's, on the
same frames (../shared/data/real when present, else synthetic 640x360 and 1280x720 clips).

Writes OUT/benchmark.json and OUT/benchmark.md (the table in the README).

Example:
  python tools/benchmark.py --out runs/benchmark --threads 2
"""
from __future__ import annotations

import os

from siamfc.cli import ArgParser, dir_arg, positive_int_arg, run
from siamfc.tracking.backends import BACKENDS

DEFAULT_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
QUICKSTART_TEACHER = "runs/quickstart/teacher/model.pth"


def main() -> None:
    from siamfc.evaluation.speed import run as run_benchmark

    p = ArgParser(__doc__)
    p.add_argument("--out", default="runs/benchmark")
    p.add_argument("--threads", type=positive_int_arg, default=2, help="torch / ONNX Runtime threads (fixed for every row)")
    p.add_argument("--backends", nargs="+", default=[b for b in BACKENDS if b != "auto"])
    p.add_argument("--full-checkpoint", help="a trained full-width SiamFC for the full row (default: "
                                             "runs/quickstart/teacher/model.pth if present, else random weights)")
    p.add_argument("--shared", type=dir_arg, default=DEFAULT_SHARED if os.path.isdir(DEFAULT_SHARED) else None,
                   help="folder with data/real and weights/ (default ../shared when present)")
    p.add_argument("--sequences", nargs="*", help="only these sequences")
    p.add_argument("--training", action="store_true",
                   help="instead, time SiamFC training steps: fp32 NCHW (the public code's way) vs ours")
    args = p.parse_args()
    if args.training:
        import torch

        from siamfc.evaluation.speed import training_throughput
        torch.set_num_threads(args.threads)
        base = training_throughput("fp32", channels_last=False)
        print(f"training, batch 8, {args.threads} threads: fp32 NCHW {base:.1f} pairs/s")
        for precision, cl in (("fp32", True), ("bf16", True)):
            rate = training_throughput(precision, cl)
            print(f"  {precision} {'channels-last' if cl else 'NCHW'}: {rate:.1f} pairs/s ({rate / base:.2f}x)")
        return
    full = args.full_checkpoint or (QUICKSTART_TEACHER if os.path.isfile(QUICKSTART_TEACHER) else None)
    result = run_benchmark(args.out, args.threads, tuple(args.backends), args.shared, args.sequences, full)
    print(open(os.path.join(args.out, "benchmark.md")).read())
    print(f"threads: {result['threads']}; results: {args.out}/benchmark.json")


if __name__ == "__main__":
    run(main)
