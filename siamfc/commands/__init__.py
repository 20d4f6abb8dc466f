"""The ``fdsiamfc`` command: one subcommand per tool (``fdsiamfc evaluate ...`` runs what
``python tools/evaluate.py ...`` runs). Each subcommand's module is imported only when it runs."""
from __future__ import annotations

import importlib
import sys

from ..cli import run

# subcommand -> module in this package, with its one-line purpose for ``fdsiamfc --help``
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run_pipeline", "a whole job from a YAML config (quickstart, real, zoo, ...), resumable"),
    "synth": ("make_synthetic_dataset", "generate the embedded synthetic GOT-10k-layout dataset"),
    "crop": ("crop_train_dataset", "crop a training set to 255x255 instance regions, once"),
    "train": ("train_siamfc", "train a SiamFC AlexNet from scratch"),
    "train-fd": ("train_fdsiamfc", "compress a trained SiamFC with Feature Distilling"),
    "train-model": ("train_model", "train any config-built model (the SiameseX family)"),
    "transform": ("model_transform", "fold an FD checkpoint into its slim plain network"),
    "evaluate": ("evaluate", "track a benchmark and score it with the got10k toolkit's metrics"),
    "benchmark": ("benchmark", "speed and accuracy of trackers and backends, side by side"),
    "demo": ("demo", "track one object in a video, an image folder or a camera"),
    "export-onnx": ("export_onnx", "export a backbone or a config-built model to ONNX, checked"),
    "model-info": ("model_info", "parameters, GFLOPs and output shapes of a model config"),
    "score-pairs": ("score_pairs", "a SiamFC checkpoint's loss and peak hit rate on held-out cropped pairs"),
    "ablate-real": ("ablate_real", "the real-footage compression ablations"),
    "nanotrack-sweep": ("nanotrack_sweep", "NanoTrack v2 cut by closed-form FD, AUC against fps in cv2.TrackerNano"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return ("usage: fdsiamfc COMMAND [options]   (fdsiamfc COMMAND --help for its options)\n\ncommands:\n"
            + "\n".join(f"  {name:{width}s}  {purpose}" for name, (_, purpose) in COMMANDS.items()))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return
    if args[0] not in COMMANDS:
        print(f"error: fdsiamfc: unknown command '{args[0]}' (fdsiamfc --help lists them)", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"{__name__}.{COMMANDS[args[0]][0]}")
    sys.argv = [f"fdsiamfc {args[0]}", *args[1:]]   # argparse names the subcommand in its usage line
    run(module.main)
