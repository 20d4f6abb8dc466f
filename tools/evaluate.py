"""`python tools/evaluate.py ...` is `fdsiamfc evaluate ...`: the command lives in siamfc/commands/evaluate.py."""
from siamfc.cli import run
from siamfc.commands.evaluate import main

if __name__ == "__main__":
    run(main)
