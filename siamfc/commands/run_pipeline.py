"""Run a main job from its config: every stage in order, then the report.

The config's `job` key picks the job: `quickstart` (the default; the embedded
synthetic data: generate, crop, train the teacher, compress with FD, transform,
evaluate, report) or `real` (FD on the real trackers and footage in ../shared,
against the authors' FDSiamFC). Re-running skips finished stages and resumes an
interrupted one.

Examples:
  python tools/run_pipeline.py --config configs/quickstart.yaml
  python tools/run_pipeline.py --config configs/quickstart.yaml --from compress
  python tools/run_pipeline.py --config configs/real.yaml
  python tools/run_pipeline.py --config configs/real.yaml --to polish   # stop before the test footage is read
  python tools/run_pipeline.py --config configs/nanotrack/compress.yaml --set "choose.rates=[0.5]" --out runs/nano050
"""
from __future__ import annotations

import os

from ..cli import ArgParser, file_arg
from ..jobs import load_job


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", default="configs/quickstart.yaml", type=file_arg)
    p.add_argument("--from", dest="redo", metavar="STAGE", help="redo this stage and all later ones")
    p.add_argument("--to", dest="until", metavar="STAGE", help="stop after this stage")
    p.add_argument("--out", help="override the run folder (pipeline.out / real.out)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (VALUE read as YAML), e.g. train.epochs=4; repeatable")
    args = p.parse_args()
    job = load_job(args.config, args.out, args.overrides)
    if args.redo:
        job.redo_from(args.redo)
    job.run(until=args.until)
    if args.until is None:
        print(f"report: {os.path.join(job.out, 'REPORT.md')}")

