"""Benchmark evaluation: track, score with got10k, write summary.json and plots."""
from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any

from ..errors import InputError
from ..files import write_json
from ..tracking.factory import TrackerSpec, backend_label, check_tracker, resolve_backend
from ..tracking.ops import torch_threads
from .benchmarks import load_benchmark
from .runner import run_sequences
from .summary import format_table, got10k_summary, make_experiment, otb_summary

__all__ = ["TrackerSpec", "evaluate", "format_table"]


@contextlib.contextmanager
def quiet_plots():
    """Silence got10k's report chatter and close the figures it leaves open."""
    import matplotlib.pyplot as plt
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        plt.close("all")


def evaluate(spec: TrackerSpec, benchmark: str, root: str, out: str, workers: int = 1,
             only: list[str] | None = None, threads: int | None = None,
             summary_file: str = "summary.json", segment: int = 0, tails: float = 0.0,
             plots: bool = True) -> dict[str, Any]:
    """Run ``spec`` on a benchmark and write results, reports and ``OUT/summary.json``.

    Finished sequences are kept from earlier runs; failed ones are listed in the
    summary under ``failed`` and the rest are scored. Several trackers may share
    one ``out`` (with distinct ``summary_file`` names) to be plotted together.
    ``segment`` > 0 tracks every sequence in pieces of that many frames; ``tails`` > 0
    only the last fraction of each. ``plots=False`` skips got10k's curve PNGs (selection needs the scores alone).
    """
    check_tracker(spec)   # a bad file or option fails here, before anything is written
    asked = spec.backend
    with torch_threads(threads or max(1, (os.cpu_count() or 1) // workers)):   # race as the workers will run
        spec, why = resolve_backend(spec)
    backend = backend_label(spec, asked)
    print(f"{spec.tracker_name}: backend {backend} ({why})")
    bench = load_benchmark(benchmark, root, only, segment, tails)
    kind, title = bench.spec.kind, bench.spec.title
    otb_kind, otb_title = ("uav", f"{title}-OTB") if kind == "got10k" else (kind, title)
    layouts = [("otb", os.path.join(out, "results", otb_title))]
    if kind == "got10k":
        layouts.append(("got10k", os.path.join(out, "results", title)))
    failed = dict(bench.failed)
    start = time.perf_counter()
    failed.update(run_sequences(spec, bench.sequences, layouts, workers, threads))
    tracked = time.perf_counter()
    done = [s for s in bench.sequences if s.name not in failed]
    if not done:
        raise InputError(f"{root}: no sequence of {title} could be tracked "
                         f"({len(failed)} failed; first: {next(iter(failed.values()), 'none')})")
    name = spec.tracker_name
    with quiet_plots():
        perf = make_experiment(otb_kind, done, otb_title, out, plots).report([name])[name]
        got = make_experiment("got10k", done, title, out, plots).report([name])[name] if kind == "got10k" else None
    summary: dict[str, Any] = {"tracker": name, "kind": spec.kind, "checkpoint": spec.checkpoint,
                               "backend": backend, "backend_why": why,
                               "benchmark": title, "root": os.path.abspath(root)}
    summary.update(otb_summary(perf, done))
    if got is not None:
        summary.update(got10k_summary(got, done))
    summary["reports"] = sorted(os.path.relpath(os.path.join(dp, f), out)
                                for t in {otb_title, title}
                                for dp, _, files in os.walk(os.path.join(out, "reports", t))
                                for f in files if f.endswith(".png"))
    summary["failed"] = failed
    summary["seconds"] = {"track": round(tracked - start, 1), "score": round(time.perf_counter() - tracked, 1)}
    write_json(os.path.join(out, summary_file), summary)
    return summary


def report_together(benchmark: str, root: str, out: str, names: list[str]) -> list[str]:
    """got10k's plots with several trackers' curves, from results already under ``out``.

    Returns the PNG paths (in ``out/reports/<benchmark>/<names[0]>/``).
    """
    bench = load_benchmark(benchmark, root)
    kind, title = bench.spec.kind, bench.spec.title
    otb_kind, otb_title = ("uav", f"{title}-OTB") if kind == "got10k" else (kind, title)
    pngs = []
    with quiet_plots():
        for k, t in ((otb_kind, otb_title),) + (((kind, title),) if kind == "got10k" else ()):
            make_experiment(k, bench.sequences, t, out).report(names)
            folder = os.path.join(out, "reports", t, names[0])
            pngs += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))
    return pngs
