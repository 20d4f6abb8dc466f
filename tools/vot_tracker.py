"""TraX entry point for the VOT toolkit (`protocol = traxpython`, `command = vot_tracker`).

The toolkit imports this module; the checkpoint comes from FDSIAMFC_CHECKPOINT
(a .pth or .onnx file, or `identity` for a static baseline) and the backend from
FDSIAMFC_BACKEND. See README, "VOT toolkit", for the trackers.ini entry.
"""
from siamfc.cli import run
from siamfc.deploy.vot import serve

run(serve)
