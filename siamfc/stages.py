"""Jobs made of stages that resume: a finished stage leaves a marker and is skipped.

Each stage is a method ``stage_<name>`` of a :class:`StagedJob` subclass. When it
returns, its result and wall time go to ``OUT/stages/<name>.json`` (atomically);
a re-run skips marked stages, and the long stages also resume inside themselves
(per sequence, epoch or phase), so a kill loses little work.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable

from .errors import InputError
from .files import read_json, write_json


class StagedJob:
    """Subclasses set :attr:`STAGES` and :attr:`OUTPUTS` (stage -> paths it writes)."""

    STAGES: tuple[str, ...] = ()
    OUTPUTS: dict[str, tuple[str, ...]] = {}

    def __init__(self, out: str) -> None:
        self.out = out

    def marker(self, stage: str) -> str:
        return os.path.join(self.out, "stages", f"{stage}.json")

    def done(self, stage: str) -> bool:
        return os.path.isfile(self.marker(stage))

    def result(self, stage: str) -> dict[str, Any]:
        return read_json(self.marker(stage))

    def check_stage(self, stage: str) -> None:
        if stage not in self.STAGES:
            raise InputError(f"unknown stage '{stage}'; stages are {', '.join(self.STAGES)}")

    def redo_from(self, stage: str) -> None:
        """Forget ``stage`` and every later one: their markers and outputs go."""
        self.check_stage(stage)
        for s in self.STAGES[self.STAGES.index(stage):]:
            if os.path.exists(self.marker(s)):
                os.remove(self.marker(s))
            for path in self.OUTPUTS.get(s, ()):
                full = os.path.join(self.out, path)
                if os.path.isdir(full):
                    shutil.rmtree(full)
                elif os.path.exists(full):
                    os.remove(full)

    def run(self, log: Callable[[str], None] = print, until: str | None = None) -> None:
        """Every stage in order, or up to and including ``until`` (an experiment that must not reach the
        stages that read the test footage stops before them)."""
        if until is not None:
            self.check_stage(until)
        for stage in self.STAGES:
            self.run_stage(stage, log)
            if stage == until:
                return

    def run_stage(self, stage: str, log: Callable[[str], None] = print) -> None:
        """Run one stage unless it is marked done."""
        if self.done(stage):
            log(f"== {stage}: already complete, skipped")
            return
        log(f"== {stage}")
        start = time.perf_counter()
        info = getattr(self, f"stage_{stage}")() or {}
        info["seconds"] = round(time.perf_counter() - start, 1)
        write_json(self.marker(stage), info)
        log(f"== {stage}: done in {info['seconds']:.0f} s")

    def stage_seconds(self) -> dict[str, float]:
        return {s: self.result(s)["seconds"] for s in self.STAGES if self.done(s)}
