"""`python tools/run_pipeline.py ...` is `fdsiamfc run ...`: the command lives in siamfc/commands/run_pipeline.py."""
from siamfc.cli import run
from siamfc.commands.run_pipeline import main

if __name__ == "__main__":
    run(main)
