"""Print a model's parameters (total, backbone, neck, head), GFLOPs at its standard crop sizes and its outputs.

Examples:
  python tools/model_info.py --config configs/siamesex/SiamRPN.yaml
  python tools/model_info.py --config configs/siamesex/SiamRPNPP.yaml --json
"""
from __future__ import annotations

import json

from ..cli import ArgParser, file_arg
from ..models.info import model_info
from ..models.siamese import build_model, model_config


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", required=True, type=file_arg, help="a YAML file with a 'model' section")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = p.parse_args()
    info = model_info(build_model(model_config(args.config)))
    if args.json:
        print(json.dumps(info, indent=2))
        return
    params = info["params"]
    print(f"{info['name']}: {params['total']:,} trainable parameters (backbone {params['backbone']:,}, "
          f"neck {params['neck']:,}, head {params['head']:,})")
    print(f"GFLOPs at z {info['sizes']['exemplar']} / x {info['sizes']['instance']}: {info['gflops']:.3f} "
          f"(search branch {info['search_gflops']:.3f}); input {info['input']}; tracker {info['tracker']}")
    print("outputs: " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["outputs"].items()))

