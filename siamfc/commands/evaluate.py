"""Evaluate a tracker checkpoint on a benchmark with the got10k toolkit's metrics.

Examples:
  python tools/evaluate.py --checkpoint ../shared/weights/FDSiamfc_30.pth \
      --benchmark folder --root ../shared/data/real --out runs/eval/fd30 --workers 2
  python tools/evaluate.py --checkpoint identity --benchmark got10k-val --root data/synthetic --out runs/eval/id
"""
from __future__ import annotations


from ..cli import ArgParser, count_arg, dir_arg, file_arg, fraction_arg, positive_int_arg
from ..config import TrackerConfig, from_dict, load_yaml
from ..evaluation import evaluate, format_table
from ..evaluation.benchmarks import BENCHMARKS
from ..models.model_io import is_model_checkpoint
from ..tracking.backends import BACKENDS
from ..tracking.factory import TRACKERS, TrackerSpec


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint (.pth: ours or a bare release state dict; .onnx: an exported backbone), "
                        "'identity', 'random' (full-width SiamFC, fixed seed), 'opencv:MIL|CSRT|KCF', "
                        "or a peer as OpenCV runs it: 'nanotrack[:DIR]' (cv2.TrackerNano), "
                        "'vittrack[:FILE.onnx]' (cv2.TrackerVit)")
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument("--root", required=True, type=dir_arg, help="the benchmark's root folder")
    p.add_argument("--out", required=True, help="output folder (results/, reports/, summary.json)")
    p.add_argument("--workers", type=positive_int_arg, default=1, help="parallel tracking processes")
    p.add_argument("--backend", default="fp32", choices=BACKENDS,
                   help="fp32 (the reference, default), bf16, compile, compile-bf16, onnxruntime (needed for "
                        "a .onnx checkpoint) or auto (the fastest accurate backend on this machine)")
    p.add_argument("--config", type=file_arg, help="YAML config whose 'track' section overrides SiamFC's defaults")
    p.add_argument("--name", help="tracker name in results and plots (default: checkpoint file name)")
    p.add_argument("--seed", type=count_arg, default=0, help="the init seed of 'random' (the quickstart's: 0, 1, 2)")
    p.add_argument("--sequences", nargs="*", help="only these sequences")
    p.add_argument("--segment", type=count_arg, default=0, help="track in pieces of this many frames (0: whole)")
    p.add_argument("--tails", type=fraction_arg, default=0.0,
                   help="track only the last fraction of each sequence (what the real job holds out of training)")
    args = p.parse_args()
    # Only the keys the config gives: each kind fills in its own defaults (a config-built model's tracker
    # has options of its own, which SiamFC's defaults would break).
    track = (load_yaml(args.config).get("track") or {}) if args.config else {}
    spec = TrackerSpec.parse(args.checkpoint, backend=args.backend, options=dict(track), name=args.name,
                             seed=args.seed)
    model = bool(spec.checkpoint) and spec.kind == "siamfc" and is_model_checkpoint(spec.checkpoint)
    if track and TRACKERS.get(spec.kind).siamfc_options and not model:
        from_dict(TrackerConfig, track, f"{args.config}:track")   # a bad value names the file
    summary = evaluate(spec, args.benchmark, args.root, args.out, args.workers, args.sequences,
                       segment=args.segment, tails=args.tails)
    print(format_table(summary))
    print(f"summary: {args.out}/summary.json")

