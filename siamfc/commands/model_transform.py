"""Fold a fully compressed FD checkpoint into a slim plain AlexNet and verify the fold.

Prints the fold check and the compression table (teacher vs slim, plus the FD-0.15
widths for reference); exits non-zero if the fold check fails.

Example:
  python tools/model_transform.py --checkpoint runs/fd30/fd_model.pth --out runs/fd30/slim.pth
"""
from __future__ import annotations

import os

from ..cli import ArgParser, dir_arg, positive_float_arg
from ..compression.transform import TOLERANCE, transform
from ..models.backbone import AlexNet, widths_from_rates
from ..shared import shared_path

DEFAULT_IMAGES = shared_path("data", "train_real", "train")   # training frames: the test set stays unread


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--checkpoint", required=True, help="FD checkpoint after step 9 (fd_model.pth)")
    p.add_argument("--out", required=True, help="slim checkpoint to write")
    p.add_argument("--images", type=dir_arg, help="folder of OTB-layout sequences whose frames test the fold "
                                    "(default: ../shared/data/train_real/train when present, else synthetic frames)")
    p.add_argument("--compare-rates", type=positive_float_arg, nargs="*", default=[0.3, 0.15],
                   help="add rows for the slim widths of these uniform rates")
    args = p.parse_args()
    images = args.images or (DEFAULT_IMAGES if os.path.isdir(DEFAULT_IMAGES) else None)
    extra = {f"FD-{r:g} widths": AlexNet(widths_from_rates([r] * 5)) for r in args.compare_rates}
    result = transform(args.checkpoint, args.out, images, extra)
    check = result["check"]
    print(f"fold check: worst relative difference {check.random_error:.2e} (random input), "
          f"{check.crop_error:.2e} (crops of {check.crops_from}); tolerance {TOLERANCE:g}: OK")
    print(result["table"])
    print(f"slim checkpoint: {args.out}")

