"""One compression of the real job with config changes, measured on held-out data only.

Runs the stages it reads (split, crops, and for label_free the pseudo labels) in
the job folder, then the named experiment's compression into OUT/ablations/NAME,
and prints one row: held-out AUC and precision of the final network (whole
held-out videos and training tails, the selection set), its embedding error and
score-map correlation against the teacher, the fold error and the minutes. The
row is also appended to OUT/ablations/rows.jsonl. The test footage is not read.

Overrides are dotted config keys with YAML values, checked like the config itself.

Example (the README's ablation table):
  python tools/ablate_real.py --experiment halve --name previous-targets halve.targets=previous
"""
from __future__ import annotations

import json
import os


from ..cli import ArgParser, file_arg
from ..config import apply_override, load_yaml
from ..jobs.real import EXPERIMENTS, make_job


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", default="configs/real.yaml", type=file_arg)
    p.add_argument("--experiment", required=True, choices=EXPERIMENTS)
    p.add_argument("--name", required=True, help="the row's name; its folder is OUT/ablations/NAME")
    p.add_argument("--out", default="runs/ablations", help="job folder whose crops the ablations share")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE, e.g. halve.sample_images=256")
    args = p.parse_args()
    data = load_yaml(args.config)
    for o in args.overrides:
        apply_override(data, o)
    job = make_job(args.config, data, args.out)
    folder = os.path.join(args.out, "ablations")
    row = {"name": args.name, "overrides": args.overrides, **job.ablate(args.experiment, os.path.join(folder, args.name))}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "rows.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))

