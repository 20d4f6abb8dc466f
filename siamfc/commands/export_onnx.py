"""Export a checkpoint's backbone to ONNX and check it against PyTorch.

The graph has a dynamic batch and spatial size, so one file serves the 127x127
exemplar and the 3x255x255 search batch. The cross-correlation head stays in the
tracker. The check runs onnx.checker, then compares ONNX Runtime with PyTorch on
random input, real crops and an exemplar; it exits non-zero above 1e-4.

A config-built model (model:CONFIG.yaml[,WEIGHTS], or one of our model checkpoints) exports to a
folder of three graphs instead: template.onnx, search.onnx and head.onnx (siamfc/deploy/model_onnx.py);
one tracked by 'nano' (NanoTrack) to the two that OpenCV's TrackerNano loads, backbone.onnx and head.onnx
(siamfc/deploy/nano_onnx.py).

Examples:
  python tools/export_onnx.py --checkpoint ../shared/weights/FDSiamfc_30.pth --out FDSiamfc_30.onnx
  python tools/export_onnx.py --checkpoint model:configs/siamesex/SiamRPN.yaml,siamrpn.pth --out runs/siamrpn_onnx
  python tools/export_onnx.py --checkpoint model:configs/nanotrack/NanoTrackV2.yaml,../shared/peers/nanotrackv2/nanotrackv2.pth --out runs/nano_onnx
  python tools/evaluate.py --checkpoint FDSiamfc_30.onnx --backend onnxruntime --benchmark folder --root ../shared/data/real --out runs/ort
"""
from __future__ import annotations

import os

from ..cli import ArgParser, dir_arg, positive_int_arg
from ..data.samples import sample_crops
from ..deploy.onnx import check_export, export_backbone
from ..errors import InputError
from ..deploy.model_onnx import export_model
from ..deploy.nano_onnx import export_nano
from ..models.checkpoint import load_checkpoint
from ..models.model_io import is_model_checkpoint, load_model
from ..shared import shared_path
from ..tracking.factory import TrackerSpec, model_source

TOLERANCE = 1e-4
DEFAULT_IMAGES = shared_path("data", "train_real", "train")   # training frames: the test set stays unread


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--checkpoint", required=True, help="any checkpoint the tracker loads (full, slim or FD)")
    p.add_argument("--out", required=True, help="the .onnx file to write (a folder for a config-built model)")
    p.add_argument("--opset", type=positive_int_arg, default=18)
    p.add_argument("--images", type=dir_arg, help="OTB-layout folder for real crops (default ../shared/data/train_real/train if present; GOT-10k layout works too)")
    args = p.parse_args()
    spec = TrackerSpec.parse(args.checkpoint)
    if spec.kind == "model" or (spec.kind == "siamfc" and is_model_checkpoint(args.checkpoint)):
        config, weights = model_source(spec) if spec.kind == "model" else (None, args.checkpoint)
        model = load_model(weights, config).model
        if model.cfg.tracker == "nano":   # the pair OpenCV's TrackerNano loads
            done = export_nano(model, args.out, args.opset)
            print(", ".join(f"{k} {v:.2e}" for k, v in done.worst.items()) + " worst relative difference, "
                  "ONNX Runtime (OpenCV dnn where named) vs PyTorch"
                  + (f"; folded into the next block: {', '.join(done.folded)}" if done.folded else "")
                  + ("; the head's two branches written as one" if done.fused else ""))
        else:
            done = export_model(model, args.out, args.opset)
            print(", ".join(f"{k}.onnx {v:.2e}" for k, v in done.worst.items()) + " worst relative difference, "
                  "ONNX Runtime vs PyTorch")
        if max(done.worst.values()) > TOLERANCE:
            raise InputError(f"{args.out}: export check failed: {max(done.worst.values()):.2e} > {TOLERANCE:g}")
        print(f"wrote {', '.join(done.paths.values())}")
        return
    backbone = load_checkpoint(args.checkpoint).net.backbone
    export_backbone(backbone, args.out, args.opset)
    images = args.images or (DEFAULT_IMAGES if os.path.isdir(DEFAULT_IMAGES) else None)
    crops, source = sample_crops(images)
    check = check_export(args.out, backbone, crops)
    print(f"onnx.checker: OK; worst relative difference ONNX Runtime vs PyTorch: "
          f"{check.random:.2e} (random 3x255), {check.crops:.2e} (crops of {source}), "
          f"{check.exemplar:.2e} (127 exemplar)")
    if check.worst > TOLERANCE:
        raise InputError(f"{args.out}: export check failed: {check.worst:.2e} > {TOLERANCE:g}")
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")

