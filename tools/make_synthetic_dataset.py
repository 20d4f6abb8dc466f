"""`python tools/make_synthetic_dataset.py ...` is `fdsiamfc synth ...`: the command lives in siamfc/commands/make_synthetic_dataset.py."""
from siamfc.cli import run
from siamfc.commands.make_synthetic_dataset import main

if __name__ == "__main__":
    run(main)
