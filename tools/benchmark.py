"""`python tools/benchmark.py ...` is `fdsiamfc benchmark ...`: the command lives in siamfc/commands/benchmark.py."""
from siamfc.cli import run
from siamfc.commands.benchmark import main

if __name__ == "__main__":
    run(main)
