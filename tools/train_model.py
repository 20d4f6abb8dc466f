"""`python tools/train_model.py ...` is `fdsiamfc train-model ...`: the command lives in siamfc/commands/train_model.py."""
from siamfc.cli import run
from siamfc.commands.train_model import main

if __name__ == "__main__":
    run(main)
