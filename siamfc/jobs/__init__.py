"""The main jobs, each a resumable chain of stages, chosen by a config file's ``job`` key.

* ``quickstart`` (the default): synthetic data -> teacher -> FD compression -> slim network
  -> evaluation -> report, with nothing to download;
* ``real``: FD on real trackers and real footage, head to head with the authors' FDSiamFC;
* ``zoo``: the SiameseX models trained on the synthetic data within one CPU budget each;
* ``fd_model``: FD on a trained config-built model with a plain-chain backbone (SiamVGG);
* ``selection``: whether a selection set ranks known networks as the test set does, and how finely;
* ``nanotrack``: FD on NanoTrack v2 (fits, distillation), ending in the ONNX pair ``cv2.TrackerNano`` loads;
* ``nanotrack_select``: that job at several keep-ratios, one chosen on the selection set by a fixed rule.

``nano_sweep`` (NanoTrack v2's FD cuts against fps) is run by ``fdsiamfc nanotrack-sweep``, not by a config.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

from ..config import apply_override, load_yaml
from ..errors import InputError
from ..registry import Registry
from ..stages import StagedJob

# job name -> make(config path, its YAML, out override) -> the job, its config checked
JOBS: Registry[Callable[[str, dict[str, Any], str | None], StagedJob]] = Registry("job")


def _lazy(module: str) -> Callable[[str, dict[str, Any], str | None], StagedJob]:
    """The job's ``make_job``, imported only when that job is run."""
    def make(path: str, data: dict[str, Any], out: str | None) -> StagedJob:
        return importlib.import_module(f"{__name__}.{module}").make_job(path, data, out)
    return make


JOBS.add("quickstart", _lazy("quickstart"))
JOBS.add("real", _lazy("real"))
JOBS.add("zoo", _lazy("zoo"))
JOBS.add("fd_model", _lazy("fd_model"))
JOBS.add("selection", _lazy("selection"))
JOBS.add("nanotrack", _lazy("nanotrack"))
JOBS.add("nanotrack_select", _lazy("nano_select"))


def load_job(path: str, out: str | None = None, overrides: Sequence[str] = ()) -> StagedJob:
    """The job a config file describes, ``overrides`` (``a.b=VALUE``) applied, every section checked before
    any work starts."""
    data = load_yaml(path)
    for o in overrides:
        apply_override(data, o)
    name = data.get("job", "quickstart")
    if not isinstance(name, str) or name not in JOBS:
        raise InputError(f"{path}:job: '{name}' is not one of {', '.join(JOBS)}")
    return JOBS.get(name)(path, data, out)
