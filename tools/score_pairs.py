"""`python tools/score_pairs.py ...` is `fdsiamfc score-pairs ...`: the command lives in siamfc/commands/score_pairs.py."""
from siamfc.cli import run
from siamfc.commands.score_pairs import main

if __name__ == "__main__":
    run(main)
