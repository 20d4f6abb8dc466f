"""Deployment: ONNX export and runtime, the VOT toolkit's TraX protocol."""
