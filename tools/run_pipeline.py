"""Run the whole pipeline on the embedded synthetic data: generate, crop, train the
teacher, compress with FD, transform, evaluate and report.

Re-running skips finished stages and resumes an interrupted one.

Examples:
  python tools/run_pipeline.py --config configs/quickstart.yaml
  python tools/run_pipeline.py --config configs/quickstart.yaml --from compress
"""
from __future__ import annotations


from siamfc.cli import ArgParser, file_arg, run
from siamfc.pipeline import STAGES, Pipeline, load_config


def main() -> None:
    p = ArgParser(__doc__)
    p.add_argument("--config", default="configs/quickstart.yaml", type=file_arg)
    p.add_argument("--from", dest="redo", choices=STAGES, help="redo this stage and all later ones")
    p.add_argument("--out", help="override pipeline.out (the run folder)")
    args = p.parse_args()
    cfg = load_config(args.config)
    if args.out:
        cfg.pipeline.out = args.out
    pipe = Pipeline(cfg)
    if args.redo:
        pipe.redo_from(args.redo)
    report = pipe.run()
    print(f"report: {cfg.pipeline.out}/REPORT.md (AO teacher {report['teacher_ao']:.3f}, "
          f"slim {report['slim_ao']:.3f})")


if __name__ == "__main__":
    run(main)
