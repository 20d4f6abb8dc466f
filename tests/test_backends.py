"""Backends give the same embeddings; auto picks among accurate ones and caches its choice."""
import json

import numpy as np
import pytest
import torch

from siamfc.models.checkpoint import build_net
from siamfc.tracking import backends
from siamfc.tracking.backends import TorchRunner, make_runner


@pytest.fixture(scope="module")
def slim():
    torch.manual_seed(0)
    return build_net((14, 38, 56, 56, 38)).backbone.eval()


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)


def reference(backbone, crops):
    with torch.no_grad():
        return backbone(torch.from_numpy(crops).permute(0, 3, 1, 2).float().contiguous()).numpy()


@pytest.mark.parametrize("backend,tol", [("fp32", 1e-5), ("compile", 1e-4), ("onnxruntime", 1e-4), ("bf16", 5e-2),
                                         ("onnxruntime-int8", 0.2), ("onnxruntime-int8-pct", 0.2)])
def test_backends_match_the_plain_forward(slim, crops, backend, tol):
    want = reference(slim, crops)
    got = make_runner(slim, backend, torch.device("cpu"))(crops)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert float(np.abs(got - want).max() / np.abs(want).max()) < tol
    # the runner reuses its input buffer: a second, different batch gives its own answer
    other = crops[::-1].copy()
    assert float(np.abs(make_runner(slim, backend, torch.device("cpu"))(other) - reference(slim, other)).max()
                 / np.abs(want).max()) < tol


@pytest.mark.parametrize("backend", ["onnxruntime-int8", "onnxruntime-int8-pct"])
def test_the_int8_path_of_cpus_without_vnni_keeps_the_same_tolerance(slim, crops, backend, monkeypatch):
    """Without VNNI the u8s8 kernels can saturate a pair sum, so there the weights are
    quantized to 7 bits (reduce_range). Forced here on any CPU, that model must meet the
    unchanged 0.2 tolerance too; on an AVX2-only CPU it is what auto and the tests run."""
    from siamfc.tracking import onnx_runtime

    monkeypatch.setattr(onnx_runtime, "has_vnni", lambda: False)
    want = reference(slim, crops)
    got = make_runner(slim, backend, torch.device("cpu"))(crops)
    assert float(np.abs(got - want).max() / np.abs(want).max()) < 0.2


def test_unknown_backend_is_rejected(slim):
    with pytest.raises(ValueError, match="unknown backend"):
        TorchRunner(slim, torch.device("cpu"), "fp64")


def test_auto_only_lets_verified_reduced_precision_compete(slim, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "EXACT", ("fp32",))
    monkeypatch.setattr(backends, "REDUCED", ("bf16",))
    monkeypatch.setattr(backends, "self_check", lambda backbone, backend: False)
    timed = []
    monkeypatch.setattr(backends, "time_updates", lambda runner, clip: timed.append(runner.precision) or
                        {"fp32": 2.0, "bf16": 1.0}[runner.precision])
    # no accuracy record and a failed self-check: bf16 may not compete, however fast
    assert backends.auto_backend(slim, torch.device("cpu")) == "fp32"
    assert timed == ["fp32"]
    # a benchmark record outside the tolerance changes nothing
    backends.record_accuracy(slim, {"fp32": 0.550, "bf16": 0.540})
    assert backends.verified(slim) == []
    # so does one that scores higher: it no longer tracks as fp32 does
    backends.record_accuracy(slim, {"fp32": 0.550, "bf16": 0.560})
    assert backends.verified(slim) == []
    # within the tolerance, bf16 competes and, being faster, wins; the choice is cached
    backends.record_accuracy(slim, {"fp32": 0.550, "bf16": 0.547})
    assert backends.verified(slim) == ["bf16"]
    timed.clear()
    assert backends.auto_backend(slim, torch.device("cpu")) == "bf16"
    assert timed == ["fp32", "bf16"]
    assert backends.auto_backend(slim, torch.device("cpu")) == "bf16"
    assert timed == ["fp32", "bf16"]
    # records are per weights
    other = build_net((14, 38, 56, 56, 38)).backbone
    assert backends.verified(other) == []
    assert json.loads((tmp_path / "auto_backend.json").read_text())


def test_auto_names_every_failure_when_no_backend_runs(slim, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "EXACT", ("fp32", "compile"))

    def broken(backbone, name, device=None):
        raise RuntimeError(f"{name} is broken here\nsecond line")

    monkeypatch.setattr(backends, "make_runner", broken)
    with pytest.raises(RuntimeError) as err:
        backends.auto_backend(slim, torch.device("cpu"))
    message = str(err.value)
    assert "fp32: RuntimeError: fp32 is broken here" in message and "compile: RuntimeError" in message
    assert "second line" not in message
    assert not (tmp_path / "auto_backend.json").exists()   # nothing cached from a failure


def test_auto_skips_a_failing_backend_and_picks_among_the_rest(slim, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "EXACT", ("fp32", "compile"))
    monkeypatch.setattr(backends, "REDUCED", ())
    real = backends.make_runner

    def no_compiler(backbone, name, device=None):
        if name == "compile":
            raise OSError("no C++ compiler")
        return real(backbone, name, device)

    monkeypatch.setattr(backends, "make_runner", no_compiler)
    assert backends.auto_backend(slim, torch.device("cpu")) == "fp32"


def _hammer(args):
    cache_dir, worker = args
    backends.CACHE_DIR = cache_dir
    for i in range(25):
        backends._update("auto_backend.json", lambda d, k=f"w{worker}-{i}": {**d, k: "fp32"})


def test_concurrent_cache_writers_lose_nothing_and_leave_a_valid_file(tmp_path):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_hammer, [(str(tmp_path), w) for w in range(4)])
    data = json.loads((tmp_path / "auto_backend.json").read_text())
    assert len(data) == 4 * 25
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_onnx_runtime_runner_leaves_torch_threads_alone(slim):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        make_runner(slim, "onnxruntime", torch.device("cpu"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_self_check_lets_a_faithful_backend_in_and_keeps_a_broken_one_out(slim, tmp_path, monkeypatch):
    """Without a benchmark record, the embedded clip decides, and the verdict is cached."""
    monkeypatch.setattr(backends, "CACHE_DIR", str(tmp_path))
    real = backends.make_runner

    def fake(backbone, name, device=None):
        runner = real(backbone, "fp32", device)
        if name == "onnxruntime-int8":    # a backend that sees the crops upside down
            return lambda crops: runner(crops[:, ::-1].copy())
        return runner                     # one that computes exactly what fp32 does

    monkeypatch.setattr(backends, "make_runner", fake)
    assert backends.self_check(slim, "bf16") is True
    assert backends.self_check(slim, "onnxruntime-int8") is False
    cached = json.loads((tmp_path / "self_check.json").read_text())
    assert sorted(v["passed"] for v in cached.values()) == [False, True]
    monkeypatch.setattr(backends, "make_runner", lambda *a: (_ for _ in ()).throw(AssertionError("re-ran")))
    assert backends.self_check(slim, "bf16") is True        # cached: nothing runs again


@pytest.mark.parametrize("backend", ["bf16", "onnxruntime-int8"])
def test_the_self_check_on_the_release_weights(backend, release_30, tmp_path, monkeypatch):
    """Trained weights: the reduced-precision backends this CPU runs track the clip as
    fp32 does (bf16 only where it is native: emulated bf16 never wins the timing)."""
    from siamfc.models.checkpoint import load_checkpoint
    from siamfc.system import has_native_bf16, has_vnni

    if (backend == "bf16" and not has_native_bf16()) or (backend.endswith("int8") and not has_vnni()):
        pytest.skip(f"{backend} is not native on this CPU; its verdict here is not the one that matters")
    monkeypatch.setattr(backends, "CACHE_DIR", str(tmp_path))
    assert backends.self_check(load_checkpoint(release_30).net.backbone, backend) is True
