"""Train any config-built model (configs/siamesex/*.yaml, or your own) with the one training loop.

The config's 'model' section builds the network; its 'train' section (loss, schedule, freezing)
trains it; its 'track' section is stored with the weights, so the result tracks by path alone.
  python tools/train_model.py --config configs/siamesex/SiamRPN.yaml --data runs/quickstart/crops --out runs/SiamRPN
  torchrun --nproc_per_node 8 tools/train_model.py --config configs/siamesex/SiamRPNPP.yaml --data /data/crops --out runs/rpnpp
Then: python tools/evaluate.py --checkpoint runs/SiamRPN/model.pth --benchmark got10k-val --root data/synthetic --out runs/eval
A killed run continues with --resume.
"""
from __future__ import annotations

from ..cli import ArgParser, count_arg, dir_arg, file_arg
from ..config import load_section, load_yaml
from ..models.siamese import model_config
from ..training.model_trainer import ModelTrainConfig, train_model


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", required=True, type=file_arg, help="YAML with 'model' and 'train' sections")
    p.add_argument("--data", required=True, type=dir_arg, help="cropped dataset (tools/crop_train_dataset.py output)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, train_log.csv, model.pth")
    p.add_argument("--epochs", type=count_arg, help="override train.epochs")
    p.add_argument("--resume", action="store_true", help="continue from the newest epoch checkpoint")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    args = p.parse_args()
    cfg = load_section(args.config, "train", ModelTrainConfig)
    if args.epochs is not None:
        cfg = ModelTrainConfig(**{**cfg.__dict__, "epochs": args.epochs})
    track = load_yaml(args.config).get("track") or {}
    path = train_model(model_config(args.config), cfg, args.data, args.out, track, args.resume, args.device)
    print(f"final weights: {path}")

