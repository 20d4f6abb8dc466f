"""`python tools/demo.py ...` is `fdsiamfc demo ...`: the command lives in siamfc/commands/demo.py."""
from siamfc.cli import run
from siamfc.commands.demo import main

if __name__ == "__main__":
    run(main)
