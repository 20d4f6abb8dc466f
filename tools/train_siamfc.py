"""`python tools/train_siamfc.py ...` is `fdsiamfc train ...`: the command lives in siamfc/commands/train_siamfc.py."""
from siamfc.cli import run
from siamfc.commands.train_siamfc import main

if __name__ == "__main__":
    run(main)
