"""`python tools/nanotrack_sweep.py ...` is `fdsiamfc nanotrack-sweep ...`: the command lives in siamfc/commands/nanotrack_sweep.py."""
from siamfc.cli import run
from siamfc.commands.nanotrack_sweep import main

if __name__ == "__main__":
    run(main)
