"""``precision: auto`` for training: the CPU's exact features, then a timing, cached."""
import pytest
import torch

from siamfc.errors import InputError
from siamfc.models.checkpoint import build_net
from siamfc.training import precision as prec


def test_without_native_bf16_auto_is_fp32_whatever_onednn_says(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(prec, "has_native_bf16", lambda: False)
    choice = prec.choose_precision("auto", torch.device("cpu"), build_net((8, 16, 16, 16, 8)))
    assert choice.precision == "fp32" and "avx512_bf16" in choice.reason


@pytest.mark.parametrize("timings, expected", [({"fp32": 1.0, "bf16": 0.4}, "bf16"),
                                               ({"fp32": 0.5, "bf16": 1.6}, "fp32")])
def test_with_native_bf16_the_faster_timing_wins(timings, expected):
    choice = prec.decide(True, timings)
    assert choice.precision == expected and "faster than" in choice.reason


def test_the_timed_choice_is_cached_per_machine_and_shape(monkeypatch, tmp_path):
    monkeypatch.setattr(prec, "CACHE_DIR", str(tmp_path))
    calls = []

    def timer(net, p):
        calls.append(p)
        return {"fp32": 0.3, "bf16": 0.9}[p]   # bf16 emulated: slower

    small, other = build_net((8, 16, 16, 16, 8)), build_net((16, 16, 16, 16, 8))
    assert prec.cpu_choice(small, timer, native_bf16=True).precision == "fp32"
    again = prec.cpu_choice(small, timer, native_bf16=True)
    assert again.precision == "fp32" and again.reason.endswith("(cached)") and calls == ["fp32", "bf16"]
    prec.cpu_choice(other, timer, native_bf16=True)
    assert len(calls) == 4   # another shape is timed afresh


def test_a_close_race_is_not_cached_and_runs_again(monkeypatch, tmp_path):
    monkeypatch.setattr(prec, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prec, "_close", {})   # this test's races stay out of the other tests' process
    calls = []

    def timer(net, p):
        calls.append(p)
        return {"fp32": 1.0, "bf16": 1.1}[p]   # 1.1x: within the noise of a shared machine

    net = build_net((8, 16, 16, 16, 8))
    first = prec.cpu_choice(net, timer, native_bf16=True)
    assert first.precision == "fp32" and "not cached" in first.reason
    prec.cpu_choice(net, timer, native_bf16=True)
    assert calls == ["fp32", "bf16"]   # this process keeps it ...
    prec._close.clear()                # ... a new process times it again
    prec.cpu_choice(net, timer, native_bf16=True)
    assert calls == ["fp32", "bf16", "fp32", "bf16"]


def test_an_isa_cap_rules_out_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert prec.choose_precision("auto", torch.device("cpu"), build_net((8, 16, 16, 16, 8))).precision == "fp32"


def test_timing_leaves_the_network_untouched():
    net = build_net((8, 16, 16, 16, 8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert prec.time_step(net, "bf16", batch=2, repeats=1) > 0
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_explicit_and_unknown_precisions():
    assert prec.choose_precision("bf16", torch.device("cpu")).precision == "bf16"
    with pytest.raises(InputError, match="precision must be one of"):
        prec.choose_precision("fp8", torch.device("cpu"))
