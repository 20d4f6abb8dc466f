"""The backbone in ONNX Runtime: export, sessions, int8 quantization and the runner.

Only the backbone is exported: one graph with a dynamic batch and spatial size
serves both the 1x127x127 exemplar and the 3x255x255 search batch. The
cross-correlation head stays in the tracker, which keeps the deployed graph a
plain CNN that any runtime accepts.

int8 uses ONNX Runtime's static QDQ quantization (per-channel int8 weights, uint8
activations). Where the CPU lacks VNNI, ONNX Runtime's u8s8 kernels multiply
pairs into 16 bits with saturation; the weights are then quantized to 7 bits
(``reduce_range``) so that no pair sum can saturate.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..files import atomic_path
from ..system import has_vnni

INPUT, OUTPUT = "image", "embedding"
MIN_SIDE = 87   # the smallest input whose conv5 output is non-empty


def export_backbone(backbone: nn.Module, path: str | None = None, opset: int = 18) -> bytes:
    """The serialized ONNX model of ``backbone`` (fp32, float 0-255 RGB input, NCHW),
    also written to ``path`` when given."""
    backbone = backbone.eval().float().to(memory_format=torch.contiguous_format)
    batch = torch.export.Dim("batch", min=1, max=64)
    height = torch.export.Dim("height", min=MIN_SIDE, max=2048)
    width = torch.export.Dim("width", min=MIN_SIDE, max=2048)
    example = torch.rand(3, 3, 255, 255) * 255
    program = torch.onnx.export(backbone, (example,), None, input_names=[INPUT], output_names=[OUTPUT],
                                opset_version=opset, dynamo=True, external_data=False, verbose=False,
                                dynamic_shapes={"x": {0: batch, 2: height, 3: width}})
    data = program.model_proto.SerializeToString()
    if path:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return data


def session(model: str | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session for a .onnx path or serialized model."""
    import onnxruntime as ort

    if isinstance(model, str) and not os.path.isfile(model):
        raise InputError(f"{model}: ONNX file not found")
    name = model if isinstance(model, str) else "exported backbone"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No spin-waiting after a run: the tracker's own work between two runs (the
    # correlation on PyTorch's threads) would compete with spinning threads.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise InputError(f"{name}: ONNX Runtime cannot load it ({type(e).__name__}: {e})") from None


class OnnxRunner:
    """Backbone runner on ONNX Runtime's CPU execution provider, from the .onnx alone."""

    torch_threads = False   # runs on ONNX Runtime's own thread pool

    def __init__(self, model: str | bytes, threads: int | None = None) -> None:
        self.session = session(model, threads)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        return self.session.run(None, {self.input: x})[0]


def quantize_int8(model: bytes, calibration: np.ndarray, method: str = "minmax",
                  reduce_range: bool | None = None) -> bytes:
    """Static int8 quantization (QDQ; per-channel int8 weights, uint8 activations).

    ``calibration`` holds (N, 3, H, W) float crops that set the activation ranges
    (``method``: ``minmax`` or ``percentile``, which clips rare outliers); they
    should look like tracking crops but not be the evaluation frames.
    ``reduce_range`` (7-bit weights) defaults to on where the CPU lacks VNNI.
    """
    if reduce_range is None:
        reduce_range = not has_vnni()
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {sorted(methods)}")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{INPUT: calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    # onnxruntime logs a pre-processing hint through the root logger on every call
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
            with open(src, "wb") as f:
                f.write(model)
            quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method], reduce_range=reduce_range)
            with open(dst, "rb") as f:
                return f.read()
    finally:
        root.setLevel(level)


