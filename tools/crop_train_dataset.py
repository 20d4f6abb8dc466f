"""`python tools/crop_train_dataset.py ...` is `fdsiamfc crop ...`: the command lives in siamfc/commands/crop_train_dataset.py."""
from siamfc.cli import run
from siamfc.commands.crop_train_dataset import main

if __name__ == "__main__":
    run(main)
