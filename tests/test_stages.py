"""Staged jobs (siamfc/stages.py): markers skip finished stages, --from forgets, --to stops."""
from __future__ import annotations

import pytest

from siamfc.errors import InputError
from siamfc.stages import StagedJob


class Three(StagedJob):
    STAGES = ("a", "b", "c")

    def __init__(self, out: str) -> None:
        super().__init__(out)
        self.ran: list[str] = []

    def stage_a(self):
        self.ran.append("a")

    def stage_b(self):
        self.ran.append("b")

    def stage_c(self):
        self.ran.append("c")


def test_until_stops_after_that_stage_and_a_later_run_goes_on(tmp_path):
    job = Three(str(tmp_path))
    job.run(log=lambda m: None, until="b")
    assert job.ran == ["a", "b"] and job.done("b") and not job.done("c")
    job.run(log=lambda m: None)
    assert job.ran == ["a", "b", "c"]
    job.redo_from("b")
    job.run(log=lambda m: None, until="b")
    assert job.ran == ["a", "b", "c", "b"] and not job.done("c")


def test_an_unknown_stage_is_refused_before_any_work(tmp_path):
    job = Three(str(tmp_path))
    with pytest.raises(InputError, match="unknown stage 'x'"):
        job.run(log=lambda m: None, until="x")
    assert job.ran == []
