"""`python tools/export_onnx.py ...` is `fdsiamfc export-onnx ...`: the command lives in siamfc/commands/export_onnx.py."""
from siamfc.cli import run
from siamfc.commands.export_onnx import main

if __name__ == "__main__":
    run(main)
