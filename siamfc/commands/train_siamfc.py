"""Train the uncompressed SiamFC (the teacher that FD compression starts from).

Single process on CPU or one GPU:
  python tools/train_siamfc.py --config configs/quickstart.yaml --data data/crops --out runs/teacher
Several GPUs or nodes (DDP):
  torchrun --nproc_per_node 8 tools/train_siamfc.py --config configs/paper.yaml --data /data/crops --out runs/teacher
A killed run continues with --resume.
"""
from __future__ import annotations


from ..cli import ArgParser, dir_arg, file_arg
from ..config import load_section
from ..training.trainer import TrainConfig, train_siamfc


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", type=file_arg, help="YAML config; its 'train' section is used")
    p.add_argument("--data", required=True, type=dir_arg, help="cropped dataset (tools/crop_train_dataset.py output)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, train_log.csv, model.pth")
    p.add_argument("--resume", action="store_true", help="continue from the newest epoch checkpoint")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    args = p.parse_args()
    cfg = load_section(args.config, "train", TrainConfig)
    path = train_siamfc(cfg, args.data, args.out, args.resume, args.device)
    print(f"final weights: {path}")

