"""`python tools/ablate_real.py ...` is `fdsiamfc ablate-real ...`: the command lives in siamfc/commands/ablate_real.py."""
from siamfc.cli import run
from siamfc.commands.ablate_real import main

if __name__ == "__main__":
    run(main)
