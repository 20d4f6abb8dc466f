"""`python tools/train_FDSiamFC.py ...` is `fdsiamfc train-fd ...`: the command lives in siamfc/commands/train_fdsiamfc.py."""
from siamfc.cli import run
from siamfc.commands.train_fdsiamfc import main

if __name__ == "__main__":
    run(main)
