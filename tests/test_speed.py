"""The speed benchmark's tables: ours against the plain baseline of the same run."""
from siamfc.evaluation.speed import markdown, outside_ms, side_by_side, training_gflop_per_pair


def row(tracker, backend, fps, latency):
    return {"tracker": tracker, "backend": backend, "params": 10, "mb": 0.1, "gflops": 0.7, "latency_ms": latency,
            "achieved_gflops": 3 * 0.7 / latency * 1e3, "fps": fps, "auc": 0.5, "precision": 0.7}


def test_the_side_by_side_table_divides_ours_by_the_plain_row_of_the_same_model():
    rows = [row("FD-0.3", "fp32", 30.0, 20.0), row("FD-0.3", "plain", 20.0, 40.0),
            row("FD-0.3", "auto -> fp32", 30.0, 20.0), row("full", "plain", 5.0, 150.0)]
    side = side_by_side(rows)
    assert list(side) == ["FD-0.3"]   # the full model has no auto row: no ratio is made up
    text = markdown({"cpu": "CPU X", "isa": "avx2", "threads": 2, "torch": "2", "rows": rows,
                     "gemm_peak_gflops": {"fp32": 100.0, "bf16": 200.0, "int8": 400.0}})
    assert "| FD-0.3 | 20.0 | 30.0 (auto -> fp32) | 1.50x | 10.0 / 13.3 |" in text
    assert outside_ms(row("full", "plain", 5.0, 250.0)) == "n/a (timings noisy)"
    assert text.startswith("CPU X (avx2)")


def test_a_training_pair_costs_three_forward_passes_of_both_images():
    # 3 x (exemplar 127 + search 239) of the full AlexNet, as the paper counts FLOPs
    assert 16.0 < training_gflop_per_pair() < 17.5
