"""AO per band of target motion, from got10k's own per-sequence scores of got10k-layout records."""
import numpy as np
import pytest

from siamfc.data.sequences import Sequence
from siamfc.evaluation.breakdown import ao_by_motion, motion
from siamfc.evaluation.summary import got10k_summary, make_experiment


def moving(name: str, step: float, n: int = 6) -> Sequence:
    boxes = np.array([[50 + step * i, 60, 20, 20] for i in range(n)], float)
    return Sequence(name, [f"{name}/{i}.jpg" for i in range(n)], boxes, "gt.txt",
                    {"cover": np.array([8] * (n - 1) + [0]), "resolution": "(320, 240)"})


def write(results, tracker, seq, boxes):
    d = results / tracker / seq.name
    d.mkdir(parents=True)
    np.savetxt(d / f"{seq.name}_001.txt", boxes, delimiter=",")
    np.savetxt(d / f"{seq.name}_time.txt", np.full(len(boxes), 0.01))   # got10k's report reads the times too


def scored(seqs, out, tracker):
    """The evaluation summary got10k's report makes of the records (as evaluate() writes it)."""
    return got10k_summary(make_experiment("got10k", seqs, "T", str(out), plots=False).report([tracker])[tracker], seqs)


def test_a_static_tracker_loses_more_where_the_target_moves_further(tmp_path):
    seqs = [moving("slow", 2.0), moving("fast", 10.0)]
    assert motion(seqs[0]) == pytest.approx(0.1) and motion(seqs[1]) == pytest.approx(0.5)
    for s in seqs:
        write(tmp_path / "results" / "T", "perfect", s, s.boxes)
        write(tmp_path / "results" / "T", "static", s, np.repeat(s.boxes[:1], len(s), 0))
    m = ao_by_motion(seqs, {k: scored(seqs, tmp_path, k) for k in ("perfect", "static")}, bands=2)
    assert m["sequences"] == [1, 1] and m["edges"][0] == pytest.approx(0.1) and m["edges"][-1] == pytest.approx(0.5)
    assert m["ao"]["perfect"] == [1.0, 1.0]
    slow, fast = m["ao"]["static"]
    # frames 2-5 count (the last one is absent): slow overlaps 18/22, 16/24, 14/26, 12/28 of the box
    assert slow == pytest.approx(np.mean([18 / 22, 16 / 24, 14 / 26, 12 / 28]))
    assert fast == pytest.approx(np.mean([10 / 30, 0, 0, 0]))
