"""`python tools/model_info.py ...` is `fdsiamfc model-info ...`: the command lives in siamfc/commands/model_info.py."""
from siamfc.cli import run
from siamfc.commands.model_info import main

if __name__ == "__main__":
    run(main)
