"""ONNX export of the backbone and an ONNX Runtime runner for the tracker.

Only the backbone is exported: one graph with a dynamic batch and spatial size
serves both the 1x127x127 exemplar and the 3x255x255 search batch. The
cross-correlation head (one grouped conv on two small tensors) stays in the
tracker, which keeps the deployed graph a plain CNN that any runtime accepts.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import InputError

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
        from ..io import atomic_path
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
    # Spinning threads answer the next frame sooner; the tracker keeps PyTorch to one
    # thread on this path (OnnxRunner), so nothing else competes with them.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise InputError(f"{name}: ONNX Runtime cannot load it ({type(e).__name__}: {e})") from None


class OnnxRunner:
    """Backbone runner on ONNX Runtime's CPU execution provider, from the .onnx alone.

    ORT gets the threads. PyTorch, which the tracker does not need per frame on
    this path, is set to one thread so the two pools never compete for the cores.
    """

    def __init__(self, model: str | bytes, threads: int | None = None) -> None:
        threads = threads or torch.get_num_threads()
        self.session = session(model, threads)
        self.input = self.session.get_inputs()[0].name
        torch.set_num_threads(1)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        return self.session.run(None, {self.input: x})[0]


@dataclass
class ExportCheck:
    random: float
    crops: float
    exemplar: float

    @property
    def worst(self) -> float:
        return max(self.random, self.crops, self.exemplar)


def check_export(path: str, backbone: nn.Module, crops: torch.Tensor) -> ExportCheck:
    """Worst relative difference between ONNX Runtime and PyTorch on random search
    batches, on ``crops`` (N, 3, 255, 255) and on a 127 exemplar."""
    import onnx

    onnx.checker.check_model(onnx.load(path))
    sess = session(path)
    backbone = backbone.eval()
    gen = torch.Generator().manual_seed(0)

    def worst(x: torch.Tensor) -> float:
        with torch.no_grad():
            want = backbone(x)
        got = torch.from_numpy(sess.run(None, {INPUT: x.numpy()})[0])
        return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))

    return ExportCheck(worst(torch.rand(3, 3, 255, 255, generator=gen) * 255), worst(crops),
                       worst(crops[:1, :, 64:191, 64:191].contiguous()))


def quantize_int8(model: bytes, calibration: np.ndarray, method: str = "minmax") -> bytes:
    """Static int8 quantization (QDQ; per-channel int8 weights, uint8 activations).

    ``calibration`` holds (N, 3, H, W) float crops that set the activation ranges
    (``method``: ``minmax`` or ``percentile``, which clips rare outliers); they
    should look like tracking crops but not be the evaluation frames.
    """
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
                            calibrate_method=methods[method])
            with open(dst, "rb") as f:
                return f.read()
    finally:
        root.setLevel(level)


def synthetic_calibration(count: int = 64, seed: int = 12345) -> np.ndarray:
    """Search-sized crops of generated frames: calibration data that never overlaps
    a benchmark's frames."""
    from ..compression.transform import sample_crops

    return sample_crops(None, count=count, seed=seed)[0].numpy()
