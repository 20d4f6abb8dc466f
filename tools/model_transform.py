"""`python tools/model_transform.py ...` is `fdsiamfc transform ...`: the command lives in siamfc/commands/model_transform.py."""
from siamfc.cli import run
from siamfc.commands.model_transform import main

if __name__ == "__main__":
    run(main)
