"""Speed and accuracy of trackers measured side by side on the same frames.

For every model (full SiamFC, FD-0.3, FD-0.15) and backend it records size,
GFLOPs, backbone latency on the 3x255 search batch (median after warm-up), the
tracker's FPS as got10k measures it (per-frame ``update`` time, frame decoding
excluded) and AUC/precision on the same sequences; OpenCV's trackers (NanoTrack and
VitTrack among them: tracking/peers.py) run through the same path. A GEMM measurement gives the machine's matrix-multiply peak for
each precision, so backbone latency can be read against the hardware limit.
A per-frame profile splits ``update()`` into its parts (tracking/profile.py) on
640x360 and 1280x720 clips, so the time outside the backbone is measured, not
inferred.
"""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ..data.sequences import Sequence, otb_folder_sequence, read_frame
from ..errors import InputError
from ..files import write_json, write_text
from ..models.backbone import widths_from_rates
from ..models.checkpoint import build_net, load_checkpoint, save_checkpoint
from ..models.stats import count_params, gflops, state_dict_mb
from ..system import cpu_name, isa_summary, median_seconds
from ..tracking.backends import BACKENDS, auto_backend, make_runner, record_accuracy, time_runner
from ..tracking.factory import TrackerSpec, backend_label, build_tracker, check_tracker, resolve_backend
from ..tracking.ops import torch_threads
from ..tracking.opencv import available as opencv_available
from ..tracking.peers import PEERS, PEERS_DIR, files_under, onnx_parameters, peer_files
from ..tracking.profile import PARTS
from . import evaluate


@dataclass
class Row:
    tracker: str
    backend: str
    params: int | None
    mb: float | None
    gflops: float | None
    latency_ms: float | None     # backbone, 3x255x255 batch
    achieved_gflops: float | None
    fps: float
    auc: float
    precision: float


def tracker_fps(spec: TrackerSpec, sequences: list[Sequence], max_frames: int) -> float:
    """End-to-end ``update`` rate (frames/s, median) over the first ``max_frames``
    frames of ``sequences``, after one warm-up sequence."""
    tracker = build_tracker(spec)
    times: list[float] = []
    for n, seq in enumerate([sequences[0]] + list(sequences)):
        frames = [read_frame(p) for p in seq.frames]
        tracker.init(frames[0], seq.boxes[0])
        for f in frames[1:]:
            start = time.perf_counter()
            tracker.update(f)
            if n > 0:
                times.append(time.perf_counter() - start)
        if len(times) >= max_frames:
            break
    return 1.0 / statistics.median(times)


def profile_tracker(spec: TrackerSpec, clips: dict[str, Sequence]) -> dict[str, dict[str, float]]:
    """Median milliseconds of each part of ``update()`` on each clip (label -> parts),
    frames decoded just before each call as evaluation decodes them, after a
    warm-up pass over the first clip."""
    tracker = build_tracker(spec)
    out = {}
    first = next(iter(clips.values()))
    for label, seq in [("", first)] + list(clips.items()):
        tracker.init(read_frame(seq.frames[0]), seq.boxes[0])
        tracker.profile.reset()
        tracker.profile.enabled = bool(label)
        for path in seq.frames[1:]:
            tracker.update(read_frame(path))
        if label:
            out[label] = {k: round(v, 3) for k, v in tracker.profile.medians_ms().items()}
    tracker.profile.enabled = False
    return out


def gemm_peak(precision: str, repeats: int = 5) -> float:
    """Matrix-multiply throughput (GFLOP/s or GOP/s, median) at the current thread count,
    the best of several kernels and sizes.

    fp32 and bf16 try 1x1 convolutions of two widths in both layouts (a GEMM in oneDNN, the
    library that runs the backbone's convolutions) and ``torch.mm`` at two sizes (MKL or
    oneDNN, faster on some CPUs and ISA caps than the other); int8 uses ``torch._int_mm``.
    A reading can still come out low (a VM's neighbours): :func:`share_of_peak` raises it
    where a run beats it.
    """
    import torch.nn.functional as F

    runs = []
    if precision == "int8":
        for n in (1024, 2048):
            a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            runs.append((lambda a=a: torch._int_mm(a, a), 2 * n ** 3))
    else:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        for c in (256, 512):
            x = torch.randn(1, c, 64, 64).to(dtype)
            w = torch.randn(c, c, 1, 1).to(dtype)
            xc, wc = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
            conv = 2 * c * c * 64 * 64
            runs += [(lambda xc=xc, wc=wc: F.conv2d(xc, wc), conv), (lambda x=x, w=w: F.conv2d(x, w), conv)]
        for n in (1024, 2048):
            m = torch.randn(n, n).to(dtype)
            runs.append((lambda m=m: torch.mm(m, m), 2 * n ** 3))
    with torch.inference_mode():
        return max(flops / median_seconds(run, repeats, warmup=2) / 1e9 for run, flops in runs)


def share_of_peak(gflops: float, peaks: dict[str, float], precision: str) -> float:
    """``gflops`` as a share of ``peaks[precision]``, never above 1: a run faster than the
    measured peak shows the measurement was low, so the peak is raised to the run (in
    ``peaks``) and a line says so."""
    if gflops > peaks[precision]:
        print(f"note: {gflops:.0f} GFLOP/s ({precision}) beat the measured GEMM peak {peaks[precision]:.0f}; "
              f"the peak was read low and is raised to {gflops:.0f}")
        peaks[precision] = gflops
    return gflops / peaks[precision]


def peak_for(backend: str) -> str:
    return "int8" if "int8" in backend else "bf16" if "bf16" in backend else "fp32"


def backbone_latency(backbone: torch.nn.Module, backend: str, repeats: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of the backend's runner on a 3x255x255 uint8 batch."""
    runner = make_runner(backbone, backend, torch.device("cpu"))
    crops = np.random.default_rng(0).integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    return time_runner(runner, crops, repeats, warmup) * 1e3


def plain_latency(backbone: torch.nn.Module, repeats: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of the baseline's backbone call: a float NCHW batch, eager fp32."""
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 255, 255, 3), dtype=np.uint8))
    module = backbone.float().eval()

    def call() -> None:
        with torch.no_grad():
            module(x.permute(0, 3, 1, 2).float())

    return median_seconds(call, repeats, warmup) * 1e3


def benchmark_models(out: str, shared: str | None, full: str | None = None) -> dict[str, str]:
    """Checkpoints to time: the release weights when present, else random ones of the
    same widths; ``full`` may name a trained full-width SiamFC (e.g. the quickstart teacher)."""
    weights = os.path.join(shared, "weights") if shared else ""
    models = {}
    torch.manual_seed(0)
    for name, rate in (("SiamFC", 1.0), ("FDSiamFC_30", 0.3), ("FDSiamFC_15", 0.15)):
        release = os.path.join(weights, name.replace("FDSiamFC", "FDSiamfc") + ".pth")
        if rate == 1 and full:
            models[name] = full
        elif rate < 1 and os.path.isfile(release):
            models[name] = release
        else:
            path = os.path.join(out, "checkpoints", f"{name}_random.pth")
            if not os.path.isfile(path):
                save_checkpoint(path, build_net(widths_from_rates([rate] * 5)))
            models[name] = path
    return models


PROFILE_SIZES = ((640, 360), (1280, 720))


def tracker_size(spec: TrackerSpec) -> dict[str, Any]:
    """Parameters, MB and GFLOPs of a SiamFC checkpoint's backbone (as the SiamFC rows count them) or of a
    config-built model's search branch; empty for other kinds."""
    from ..models.info import model_info
    from ..models.model_io import is_model_checkpoint, load_model
    from ..tracking.factory import model_source

    if spec.kind == "siamfc" and not is_model_checkpoint(spec.checkpoint or ""):
        backbone = load_checkpoint(spec.checkpoint).net.backbone
        return {"params": count_params(backbone), "mb": round(state_dict_mb(backbone), 3),
                "gflops": round(gflops(backbone), 3)}
    if spec.kind != "model":
        return {}
    info = model_info(load_model(*reversed(model_source(spec))).model)
    return {"params": info["params"]["total"], "gflops": round(info["search_gflops"], 3)}


def synthetic_frames(out: str) -> str:
    """OTB-layout clips at 640x360 and 1280x720: the profile's frames, and the
    benchmark's when no real footage is given."""
    import cv2

    from ..data.synthetic import render_sequence

    root = os.path.join(out, "frames")
    for i, (w, h) in enumerate(PROFILE_SIZES):
        seq = os.path.join(root, f"synthetic_{w}x{h}")
        if os.path.isdir(seq):
            continue
        r = render_sequence(np.random.SeedSequence([42, i]), 60, w, h)
        os.makedirs(os.path.join(seq, "img"))
        for n, f in enumerate(r.frames):
            cv2.imwrite(os.path.join(seq, "img", f"{n + 1:04d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        np.savetxt(os.path.join(seq, "groundtruth_rect.txt"), r.boxes, fmt="%.2f", delimiter=",")
    return root


def run(out: str, threads: int = 2, backends: tuple[str, ...] = BACKENDS[:-1],
        shared: str | None = None, sequences: list[str] | None = None, full: str | None = None,
        trackers: tuple[str, ...] = (), siamfc: bool = True) -> dict[str, Any]:
    """Benchmark every model x backend and the OpenCV trackers; writes JSON and markdown.

    Each model's per-backend AUC is also recorded for its weights, so that the
    tracker's ``auto`` backend may pick a reduced-precision backend that kept accuracy.
    ``trackers`` adds rows for any tracker strings (``model:configs/siamesex/SiamRPN.yaml,w.pth``)
    on the same frames; ``siamfc=False`` leaves out the SiamFC models and their backends.
    """
    if full:
        load_checkpoint(full)   # a bad file fails now, before anything is written
    extra = [TrackerSpec.parse(t, backend="auto") for t in trackers]
    for spec in extra:
        check_tracker(spec)
    torch.set_num_threads(threads)
    # Ratios are only meaningful between rows timed in one run of the same code: tracking
    # records left by an earlier run (which evaluation would resume from) are dropped.
    shutil.rmtree(os.path.join(out, "runs"), ignore_errors=True)
    real = os.path.join(shared, "data", "real") if shared else ""
    clips_root = synthetic_frames(out)
    root = real if os.path.isdir(real) else clips_root
    clips = {f"{w}x{h}": otb_folder_sequence(os.path.join(clips_root, f"synthetic_{w}x{h}")) for w, h in PROFILE_SIZES}
    rows: list[Row] = []
    profiles: list[dict[str, Any]] = []
    # Only the precisions benchmarked: under an AVX2 cap a bf16 GEMM runs emulated, minutes
    # for a figure no row is read against.
    peaks = {p: gemm_peak(p) for p in ("fp32", "bf16", "int8") if p == "fp32" or p in map(peak_for, backends)}
    for name, ckpt in (benchmark_models(out, shared, full) if siamfc else {}).items():
        backbone = load_checkpoint(ckpt).net.backbone
        g = gflops(backbone)
        aucs: dict[str, float] = {}

        def measure(backend: str) -> Row:
            """One row; ``plain`` is the baseline tracker, anything else a backend of ours."""
            if backend == "plain":
                latency, spec = plain_latency(backbone), TrackerSpec("plain", ckpt, name=f"{name}-plain")
            else:
                latency, spec = backbone_latency(backbone, backend), TrackerSpec("siamfc", ckpt, backend,
                                                                                 name=f"{name}-{backend}")
            s = evaluate(spec, "folder", root, os.path.join(out, "runs"), workers=1, threads=threads,
                         only=sequences, summary_file=f"summary_{name}-{backend}.json", plots=False)
            if backend != "plain":
                aucs[backend] = s["mean_auc"]
            for size, parts in profile_tracker(spec, clips).items():
                profiles.append({"tracker": name, "backend": backend, "frames": size, **parts})
            row = Row(name, backend, count_params(backbone), round(state_dict_mb(backbone), 3), round(g, 3),
                      round(latency, 2), round(3 * g / latency * 1e3, 1), round(s["fps"], 1),
                      round(s["mean_auc"], 4), round(s["mean_precision"], 4))
            rows.append(row)
            print(f"{name:12s} {backend:17s} latency {latency:7.2f} ms  fps {s['fps']:7.1f}  "
                  f"AUC {s['mean_auc']:.4f}  precision {s['mean_precision']:.4f}")
            return row

        for backend in backends:
            measure(backend)
        plain = measure("plain")
        if "fp32" in aucs:
            record_accuracy(backbone, aucs)
            choice = auto_backend(backbone, torch.device("cpu"))
            while choice not in aucs:
                # Let in by its self-check alone: measure it and record the full proof, then
                # ask again, since that record may keep it out (a changed candidate list
                # is a new race).
                measure(choice)
                record_accuracy(backbone, aucs)
                choice = auto_backend(backbone, torch.device("cpu"))
            picked = next(r for r in rows if r.tracker == name and r.backend == choice)
            rows.append(Row(**{**asdict(picked), "backend": f"auto -> {choice}"}))
            profiles += [{**p, "backend": f"auto -> {choice}"} for p in profiles
                         if p["tracker"] == name and p["backend"] == choice]
            # the same tracker with the other way of cutting its squares (TrackerConfig.crop)
            warp = TrackerSpec("siamfc", ckpt, choice, options={"crop": "warp"}, name=f"{name}-{choice}-warp")
            profiles += [{"tracker": name, "backend": f"auto -> {choice}, crop: warp", "frames": size, **parts}
                         for size, parts in profile_tracker(warp, clips).items()]
            print(f"{name:12s} auto picks {choice}: {picked.fps / plain.fps:.2f}x the plain baseline")
    for spec in extra:   # each on the backend ``auto`` picks for it, as tools/evaluate.py --backend auto would
        with torch_threads(threads):
            spec, why = resolve_backend(spec)
        size = tracker_size(spec)
        rows.append(scored_row(spec, spec.tracker_name, backend_label(spec, "auto"), root, out, threads, sequences,
                               size.get("params"), size.get("mb"), size.get("gflops")))
        print(f"{spec.tracker_name:12s} fps {rows[-1].fps:7.1f}  AUC {rows[-1].auc:.4f}  ({rows[-1].backend}: {why})")
    for kind in PEERS:
        peer = peer_row(kind, os.path.join(shared, "peers") if shared else PEERS_DIR, root, out, threads, sequences)
        if peer is None:
            continue
        rows.append(peer)
        print(f"{peer.tracker:12s} fps {peer.fps:7.1f}  AUC {peer.auc:.4f}  (OpenCV {cv2.__version__})")
    for cv_name in opencv_available():
        rows.append(scored_row(TrackerSpec("opencv", cv_name), f"OpenCV {cv_name}", "opencv", root, out, threads,
                               sequences))
        print(f"OpenCV {cv_name:5s} fps {rows[-1].fps:7.1f}  AUC {rows[-1].auc:.4f}")
    # Measured again at the end: a VM's neighbours can depress one reading, and a peak
    # read low would overstate every row's share of it.
    peaks = {p: max(v, gemm_peak(p)) for p, v in peaks.items()}
    for r in rows:
        if r.achieved_gflops is not None:
            share_of_peak(r.achieved_gflops, peaks, peak_for(r.backend.removeprefix("auto -> ")))
    result = {"cpu": cpu_name(), "isa": isa_summary(), "machine": platform.machine(), "threads": threads, "torch": torch.__version__,
              "frames": os.path.abspath(root), "gemm_peak_gflops": {k: round(v, 1) for k, v in peaks.items()},
              "rows": [asdict(r) for r in rows], "profile": profiles}
    write_json(os.path.join(out, "benchmark.json"), result)
    write_text(os.path.join(out, "benchmark.md"), markdown(result))
    return result


def peer_row(kind: str, peers: str, root: str, out: str, threads: int, sequences: list[str] | None) -> Row | None:
    """NanoTrack's or VitTrack's row as OpenCV runs it, or None (saying why) where its files are absent."""
    arg = files_under(kind, peers)
    try:
        files = peer_files(kind, arg)
    except InputError as e:
        print(f"skipped {PEERS[kind].name}: {e}")
        return None
    spec = TrackerSpec(kind, arg)
    mb = sum(os.path.getsize(f) for f in files) / 2 ** 20
    return scored_row(spec, spec.tracker_name, "opencv-dnn", root, out, threads, sequences,
                      onnx_parameters(files), round(mb, 3))


def scored_row(spec: TrackerSpec, label: str, backend: str, root: str, out: str, threads: int,
               sequences: list[str] | None, params: int | None = None, mb: float | None = None,
               gflops: float | None = None) -> Row:
    """A row for a tracker we do not time part by part: tracked on the benchmark's frames, sized as given."""
    s = evaluate(spec, "folder", root, os.path.join(out, "runs"), workers=1, threads=threads, only=sequences,
                 summary_file=f"summary_{label.replace(' ', '-')}.json", plots=False)
    return Row(label, backend, params, mb, gflops, None, None, round(s["fps"], 1), round(s["mean_auc"], 4),
               round(s["mean_precision"], 4))


def markdown(result: dict[str, Any]) -> str:
    peaks = result["gemm_peak_gflops"]
    units = {"fp32": "GFLOP/s fp32", "bf16": "GFLOP/s bf16", "int8": "GOP/s int8"}
    lines = [f"{result['cpu']} ({result['isa']}), {result['threads']} threads, PyTorch {result['torch']}. "
             "Measured GEMM peak: " + ", ".join(f"{v:.0f} {units[k]}" for k, v in peaks.items()) + ".", ""]
    side = side_by_side(result["rows"])
    profile = {(p["tracker"], p["backend"], p["frames"]): p for p in result.get("profile", [])}
    sizes = sorted({p["frames"] for p in profile.values()}, key=lambda f: int(f.split("x")[0]))

    def outside(row: dict[str, Any]) -> str:
        got = [profile.get((row["tracker"], row["backend"], f)) for f in sizes]
        return " / ".join(f"{p['outside']:.2f}" if p else "-" for p in got) or "-"

    if side:
        lines[1:1] = ["", "Side by side in this run: ours (`auto`) against the plain baseline (the public "
                      "code's per-frame path: padded frame, eager fp32 NCHW, conv2d correlation).", "",
                      f"| model | plain fps | ours fps (`auto`) | ratio | ms per frame outside the backbone, "
                      f"profiled at {' / '.join(sizes) or '-'}: plain; ours |",
                      "|---|---|---|---|---|"] + [
            f"| {m} | {p['fps']:.1f} | {o['fps']:.1f} ({o['backend']}) | {o['fps'] / p['fps']:.2f}x | "
            f"{outside(p)}; {outside(o)} |" for m, (p, o) in side.items()] + [""]
    if profile:
        lines += profile_markdown(list(profile.values())) + [""]
    lines += ["| tracker | backend | params | MB | GFLOPs | backbone 3x255 (ms) | backbone GFLOP/s "
              "(% of the GEMM peak at that precision) | FPS | AUC | precision |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["latency_ms"] is None:   # a tracker we do not time part by part: what it has of the columns
            cells = [r["backend"], f"{r['params']:,}" if r["params"] else "-", f"{r['mb']:.2f}" if r["mb"] else "-",
                     f"{r['gflops']:.3f}" if r["gflops"] else "-"]
            lines.append(f"| {r['tracker']} | {' | '.join(cells)} | - | - | {r['fps']:.1f} | {r['auc']:.3f} | "
                         f"{r['precision']:.3f} |")
            continue
        kind = peak_for(r["backend"].removeprefix("auto -> "))
        share = f" ({100 * share_of_peak(r['achieved_gflops'], peaks, kind):.0f}%)" if kind in peaks else ""
        lines.append(f"| {r['tracker']} | {r['backend']} | {r['params']:,} | {r['mb']:.2f} | {r['gflops']:.3f} | "
                     f"{r['latency_ms']:.2f} | {r['achieved_gflops']:.0f}{share} | "
                     f"{r['fps']:.1f} | {r['auc']:.3f} | {r['precision']:.3f} |")
    return "\n".join(lines) + "\n"


def profile_markdown(profile: list[dict[str, Any]]) -> list[str]:
    """The per-frame profile as a table: median ms of each part of update()."""
    head = " | ".join(PARTS)
    lines = ["Per-frame profile: median milliseconds of each part of `update()` (frames decoded just before "
             "each call; `outside` is the median of each frame's total without the backbone).", "",
             f"| tracker | backend | frames | {head} | outside | update |",
             "|---|---|---|" + "---|" * (len(PARTS) + 2)]
    for p in profile:
        cells = " | ".join(f"{p[k]:.3f}" for k in PARTS)
        lines.append(f"| {p['tracker']} | {p['backend']} | {p['frames']} | {cells} | **{p['outside']:.3f}** | "
                     f"{p['total']:.3f} |")
    return lines


def side_by_side(rows: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """model -> (its plain row, its auto row), for the models that have both."""
    plain = {r["tracker"]: r for r in rows if r["backend"] == "plain"}
    auto = {r["tracker"]: r for r in rows if r["backend"].startswith("auto")}
    return {m: (plain[m], auto[m]) for m in plain if m in auto}


def training_throughput(precision: str, channels_last: bool, batch: int = 8, steps: int = 8) -> float:
    """Pairs per second of SiamFC training steps (127 exemplar, 239 search, forward + backward + SGD)."""
    from ..training.losses import balanced_loss, logistic_labels

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = build_net().to(memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    z = (torch.rand(batch, 3, 127, 127) * 255).contiguous(memory_format=fmt)
    x = (torch.rand(batch, 3, 239, 239) * 255).contiguous(memory_format=fmt)
    labels = logistic_labels(15, 16, 0, 8)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = balanced_loss(net(z, x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / median_seconds(step, steps, warmup=2)


def training_gflop_per_pair(sizes: tuple[int, int] = (127, 239)) -> float:
    """GFLOP of one training pair of the full SiamFC: the forward pass of both images
    counted as :func:`gflops` counts it, and the backward pass as twice the forward."""
    net = build_net().backbone
    return 3 * sum(gflops(net, size) for size in sizes)


def training_against_peak(threads: int) -> list[dict[str, Any]]:
    """Training pairs/s of fp32 NCHW (the public code's way) and ours, each beside the
    GEMM peak of its precision and the fraction of it reached."""
    torch.set_num_threads(threads)
    per_pair = training_gflop_per_pair()
    peaks = {p: gemm_peak(p) for p in ("fp32", "bf16")}
    runs = [(precision, cl, training_throughput(precision, cl))
            for precision, cl in (("fp32", False), ("fp32", True), ("bf16", True))]
    for precision, _, rate in runs:   # every row against one peak per precision, raised by any faster run
        share_of_peak(rate * per_pair, peaks, precision)
    return [{"precision": precision, "layout": "channels-last" if cl else "NCHW", "pairs_per_s": rate,
             "gflops": rate * per_pair, "peak_gflops": peaks[precision],
             "fraction": rate * per_pair / peaks[precision]} for precision, cl, rate in runs]
