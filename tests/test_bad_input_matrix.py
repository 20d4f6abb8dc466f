"""The bad-input matrix: every tool in tools/, every kind of bad input that applies to it.

Each case runs the tool as its command line would (``tools/X.py`` as ``__main__``
with its argv, through ``siamfc.cli.run``), in this process so the matrix stays
fast. Two verdicts:

* ``error``: exit code 2, exactly one line on stderr that names the culprit, no
  traceback, and nothing written under the output path;
* ``scored``: a dataset with one bad sequence is still evaluated; the bad one is
  reported with its culprit and the good ones are scored (exit code 0).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from siamfc.data.synthetic import SynthConfig, make_dataset
from siamfc.models.checkpoint import build_net, save_checkpoint

from conftest import REPO, moving_patch_clip, write_otb_sequence, write_video_sequence

DEFECTS = ("missing-frame", "corrupt-frame", "nan-box", "zero-box", "length-mismatch")


@dataclass
class Result:
    code: int
    out: str
    err: str


def call_tool(tool: str, *args: str) -> Result:
    """Run ``tools/<tool>`` as ``__main__`` with ``args``; returns its exit code and output."""
    path = str(REPO / "tools" / tool)
    old_argv, old_term = sys.argv, signal.getsignal(signal.SIGTERM)
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [path, *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
        signal.signal(signal.SIGTERM, old_term)
    return Result(code, out.getvalue(), err.getvalue())


# ------------------------------------------------------------------ inputs

def break_sequence(seq_dir: Path, defect: str, layout: str) -> str:
    """Apply ``defect`` to one sequence; returns the text the error must name."""
    img_dir = seq_dir / "img" if layout == "otb" else seq_dir
    frames = sorted(p for p in img_dir.iterdir() if p.suffix == ".jpg")
    gt = seq_dir / ("groundtruth_rect.txt" if layout == "otb" else "groundtruth.txt")
    lines = gt.read_text().splitlines()
    if defect == "missing-frame":
        frames[2].unlink()
        return frames[2].name
    if defect == "corrupt-frame":
        frames[2].write_bytes(b"\xff\xd8 not a jpeg at all")
        return frames[2].name
    if defect == "nan-box":
        lines[0] = "nan,nan,nan,nan"
    elif defect == "zero-box":
        x, y, w, h = lines[0].split(",")
        lines[0] = f"{x},{y},0,{h}"
    elif defect == "length-mismatch":
        lines.append(lines[-1])
    gt.write_text("\n".join(lines) + "\n")
    return gt.name


def otb_root(tmp_path: Path, defect: str) -> tuple[Path, str]:
    root = tmp_path / "otb"
    for i in range(3):
        frames, boxes = moving_patch_clip(seed=i, n=6)
        write_otb_sequence(root, f"good{i}" if i < 2 else "bad", frames, boxes)
    return root, break_sequence(root / "bad", defect, "otb")


@pytest.fixture(scope="module")
def got10k_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("got10k")
    make_dataset(str(root), SynthConfig(train_seqs=2, val_seqs=3, frames=8, val_frames=6, workers=1))
    return root


def got10k_root(template: Path, tmp_path: Path, defect: str, split: str) -> tuple[Path, str]:
    root = tmp_path / "got10k"
    shutil.copytree(template, root)
    bad = sorted((root / split).glob("GOT-10k_*"))[-1]
    return root, break_sequence(bad, defect, "got10k") + f" ({bad.name})"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    save_checkpoint(d / "slim.pth", build_net((14, 38, 56, 56, 38)))
    save_checkpoint(d / "full.pth", build_net())
    (d / "corrupt.pth").write_bytes(b"PK\x03\x04 half a zip file")
    torch.save({"backbone.conv1.0.weight": torch.zeros(8, 3, 3, 3), "backbone.conv2.0.weight": torch.zeros(4)},
               d / "wrong.pth")
    (d / "crops").mkdir()   # a folder without index.json
    return {k: d / f for k, f in (("slim", "slim.pth"), ("full", "full.pth"), ("corrupt", "corrupt.pth"),
                                   ("wrong", "wrong.pth"), ("no-index", "crops"))}


YAML_CASES = {   # section -> (bad yaml, the key the error must name)
    "unknown-key": ("{section}: {{{known}: {good}, colour: red}}", "unknown key(s) colour"),
    "wrong-type": ("{section}: {{{known}: three}}", "{known}"),
    "out-of-range": ("{section}: {{{known}: {bad}}}", "{known}"),
}
KNOWN = {"track": ("scale_num", 3, -1), "train": ("epochs", 2, -3), "compress": ("candidates", 2, 0),
         "data": ("frames", 10, 0), "pipeline": ("eval_workers", 1, 0)}


def bad_yaml(tmp_path: Path, section: str, case: str) -> tuple[Path, str]:
    text, needle = YAML_CASES[case]
    known, good, bad = KNOWN[section]
    path = tmp_path / "bad.yaml"
    path.write_text(text.format(section=section, known=known, good=good, bad=bad) + "\n")
    return path, needle.format(known=known)


# ------------------------------------------------------------------ verdicts

def assert_error(r: Result, *needles: str, untouched: Path | None = None) -> None:
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == 2, (r.code, r.err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err[-2000:]
    assert "Traceback" not in r.err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    if untouched is not None:
        assert not untouched.exists() or not any(untouched.iterdir()), f"partial output in {untouched}"


def assert_scored(r: Result, out: Path, culprit: str, good: set[str]) -> None:
    assert r.code == 0, r.err[-2000:]
    assert "Traceback" not in r.err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sequences"]) == good
    assert len(summary["failed"]) == 1
    message = next(iter(summary["failed"].values()))
    assert "\n" not in message and culprit.split(" ")[0] in message, message


# ------------------------------------------------------------------ the matrix

CHECKPOINT_CASES = ("missing", "corrupt", "wrong")


def checkpoint_arg(files: dict[str, Path], tmp_path: Path, case: str) -> tuple[str, str]:
    if case == "missing":
        return str(tmp_path / "nowhere.pth"), "nowhere.pth"
    return str(files[case]), files[case].name


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
@pytest.mark.parametrize("tool", ["evaluate", "demo", "export_onnx", "model_transform", "train_FDSiamFC",
                                  "benchmark", "vot_tracker"])
def test_bad_checkpoint(tool, case, files, tmp_path, monkeypatch):
    ckpt, needle = checkpoint_arg(files, tmp_path, case)
    out = tmp_path / "out"
    frames, boxes = moving_patch_clip(n=4)
    seq = write_otb_sequence(tmp_path / "bench", "clip", frames, boxes)
    args = {
        "evaluate": ["--checkpoint", ckpt, "--benchmark", "folder", "--root", str(seq.parent), "--out", str(out)],
        "demo": ["--checkpoint", ckpt, "--source", str(seq), "--save", str(out / "x.mp4")],
        "export_onnx": ["--checkpoint", ckpt, "--out", str(out / "x.onnx")],
        "model_transform": ["--checkpoint", ckpt, "--out", str(out / "slim.pth")],
        "train_FDSiamFC": ["--teacher", ckpt, "--data", str(files["no-index"]), "--out", str(out)],
        "benchmark": ["--full-checkpoint", ckpt, "--out", str(out), "--shared", str(tmp_path)],
        "vot_tracker": [],
    }[tool]
    if tool == "vot_tracker":
        monkeypatch.setenv("FDSIAMFC_CHECKPOINT", ckpt)
    assert_error(call_tool(f"{tool}.py", *args), needle, untouched=out)


def test_a_plain_network_is_not_an_fd_checkpoint(files, tmp_path):
    r = call_tool("model_transform.py", "--checkpoint", str(files["slim"]), "--out", str(tmp_path / "o" / "s.pth"))
    assert_error(r, "slim.pth", "not a fully compressed FD checkpoint", untouched=tmp_path / "o")


@pytest.mark.parametrize("tool,flag", [("evaluate", "--root"), ("evaluate", "--config"), ("demo", "--source"),
                                       ("export_onnx", "--images"), ("model_transform", "--images"),
                                       ("train_siamfc", "--data"), ("train_siamfc", "--config"),
                                       ("train_FDSiamFC", "--data"), ("crop_train_dataset", "--root"),
                                       ("run_pipeline", "--config"), ("make_synthetic_dataset", "--config"),
                                       ("benchmark", "--shared")])
def test_missing_path(tool, flag, files, tmp_path):
    missing = str(tmp_path / "nowhere")
    out = tmp_path / "out"
    base = {
        "evaluate": {"--checkpoint": "identity", "--benchmark": "folder", "--root": str(tmp_path), "--out": str(out)},
        "demo": {"--checkpoint": str(files["slim"]), "--source": str(tmp_path), "--save": str(out / "x.mp4")},
        "export_onnx": {"--checkpoint": str(files["slim"]), "--out": str(out / "x.onnx")},
        "model_transform": {"--checkpoint": str(files["slim"]), "--out": str(out / "s.pth")},
        "train_siamfc": {"--data": str(files["no-index"]), "--out": str(out)},
        "train_FDSiamFC": {"--teacher": str(files["full"]), "--data": str(files["no-index"]), "--out": str(out)},
        "crop_train_dataset": {"--root": str(tmp_path), "--out": str(out)},
        "run_pipeline": {},
        "make_synthetic_dataset": {"--out": str(out)},
        "benchmark": {"--out": str(out)},
    }[tool]
    base[flag] = missing
    args = [x for kv in base.items() for x in kv]
    assert_error(call_tool(f"{tool}.py", *args), "nowhere", untouched=out)


@pytest.mark.parametrize("case", list(YAML_CASES))
@pytest.mark.parametrize("tool,section", [("evaluate", "track"), ("train_siamfc", "train"),
                                          ("train_FDSiamFC", "compress"), ("make_synthetic_dataset", "data"),
                                          ("run_pipeline", "pipeline"), ("run_pipeline", "train"),
                                          ("run_pipeline", "compress")])
def test_bad_yaml(tool, section, case, files, tmp_path):
    cfg, key = bad_yaml(tmp_path, section, case)
    out = tmp_path / "out"
    args = {
        "evaluate": ["--checkpoint", "identity", "--benchmark", "folder", "--root", str(tmp_path), "--out", str(out)],
        "train_siamfc": ["--data", str(files["no-index"]), "--out", str(out)],
        "train_FDSiamFC": ["--teacher", str(files["full"]), "--data", str(files["no-index"]), "--out", str(out)],
        "make_synthetic_dataset": ["--out", str(out)],
        "run_pipeline": ["--out", str(out)],
    }[tool]
    assert_error(call_tool(f"{tool}.py", *args, "--config", str(cfg)), f"bad.yaml:{section}", key, untouched=out)


@pytest.mark.parametrize("text,key", [("train: {epochs: -3}", "train.epochs"),
                                      ("compress: {grouping: weird}", "compress.grouping"),
                                      ("compress: {rates: [0.3, 0.3]}", "compress.rates"),
                                      ("compress: {step: {initial_lr: 0}}", "compress.step.initial_lr"),
                                      ("train: {precision: fp8}", "train.precision"),
                                      ("compress: {select: {root: /nowhere}}", "compress.select.root"),
                                      ("track: {crop: nearest}", "track.crop"),
                                      ("track: {response_sz: 15}", "track.response_sz"),
                                      # the same checks reach `--set KEY=VALUE`, and a malformed one is one line
                                      ("--set train.epochs=-3", "train.epochs"),
                                      ("--set train.epochs", "an override is KEY=VALUE"),
                                      ("--set pipeline.out.x=1", "out is not a config section"),
                                      ("--set train.epochs=[1", "not valid YAML")])
def test_pipeline_config_is_checked_before_any_work(text, key, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    override = text.startswith("--set ")
    cfg.write_text(f"pipeline: {{out: {tmp_path / 'run'}}}\n{'' if override else text}\n")
    args = ["--set", text.split(" ", 1)[1]] if override else []
    assert_error(call_tool("run_pipeline.py", "--config", str(cfg), *args), key, untouched=tmp_path / "run")


@pytest.mark.parametrize("tool,args,needle", [
    ("evaluate", ["--workers", "0"], "--workers"), ("crop_train_dataset", ["--quality", "101"], "--quality"),
    ("make_synthetic_dataset", ["--frames", "1"], "frames"), ("benchmark", ["--threads", "-2"], "--threads"),
    ("demo", ["--max-frames", "many"], "--max-frames"), ("evaluate", ["--backend", "fp64"], "--backend"),
])
def test_bad_flag_value(tool, args, needle, files, tmp_path):
    out = tmp_path / "out"
    base = {"evaluate": ["--checkpoint", "identity", "--benchmark", "folder", "--root", str(tmp_path),
                         "--out", str(out)],
            "crop_train_dataset": ["--root", str(tmp_path), "--out", str(out)],
            "make_synthetic_dataset": ["--out", str(out)],
            "benchmark": ["--out", str(out)],
            "demo": ["--checkpoint", str(files["slim"]), "--source", str(tmp_path)]}[tool]
    assert_error(call_tool(f"{tool}.py", *base, *args), needle, untouched=out)


@pytest.mark.parametrize("defect", DEFECTS)
def test_otb_folder_defects_fail_their_sequence_only(defect, tmp_path):
    root, culprit = otb_root(tmp_path, defect)
    out = tmp_path / "out"
    r = call_tool("evaluate.py", "--checkpoint", "identity", "--benchmark", "folder", "--root", str(root),
                  "--out", str(out))
    assert_scored(r, out, culprit, {"good0", "good1"})


@pytest.mark.parametrize("defect", ["undecodable-video", "nan-box", "zero-box", "length-mismatch"])
def test_video_folder_defects_fail_their_sequence_only(defect, tmp_path, monkeypatch):
    from siamfc.data import video

    monkeypatch.setattr(video, "CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "videos"
    for i in range(3):
        frames, boxes = moving_patch_clip(seed=i, n=6)
        write_video_sequence(root, f"good{i}" if i < 2 else "bad", frames, boxes)
    bad = root / "bad"
    if defect == "undecodable-video":
        (bad / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom truncated" * 4)
        culprit = "video.mp4"
    else:
        lines = (bad / "groundtruth.txt").read_text().splitlines()
        if defect == "nan-box":
            lines[0] = "nan,nan,nan,nan"
        elif defect == "zero-box":
            lines[0] = ",".join(lines[0].split(",")[:2] + ["0", lines[0].split(",")[3]])
        else:
            lines = lines[:-2]
        (bad / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        culprit = "groundtruth.txt"
    out = tmp_path / "out"
    r = call_tool("evaluate.py", "--checkpoint", "identity", "--benchmark", "folder", "--root", str(root),
                  "--out", str(out))
    assert_scored(r, out, culprit, {"good0", "good1"})


@pytest.mark.parametrize("defect", DEFECTS)
def test_got10k_folder_defects_fail_their_sequence_only(defect, got10k_template, tmp_path):
    root, culprit = got10k_root(got10k_template, tmp_path, defect, "val")
    out = tmp_path / "out"
    r = call_tool("evaluate.py", "--checkpoint", "identity", "--benchmark", "got10k-val", "--root", str(root),
                  "--out", str(out))
    good = {p.name for p in (root / "val").glob("GOT-10k_*")} - {culprit.split("(")[1].rstrip(")")}
    assert_scored(r, out, culprit, good)


@pytest.mark.parametrize("defect", DEFECTS)
def test_demo_names_the_bad_frame_or_box(defect, files, tmp_path):
    root, culprit = otb_root(tmp_path, defect)
    out = tmp_path / "out"
    r = call_tool("demo.py", "--checkpoint", str(files["slim"]), "--source", str(root / "bad"),
                  "--save", str(out / "x.mp4"), "--backend", "fp32")
    if defect == "length-mismatch":   # the demo reads only the first box: an extra line harms nothing
        assert r.code == 0 and (out / "x.mp4").is_file(), r.err
        return
    assert_error(r, culprit, untouched=out)


@pytest.mark.parametrize("defect", ["missing-frame", "corrupt-frame", "length-mismatch"])
def test_crop_job_reports_the_culprit_and_crops_the_rest(defect, got10k_template, tmp_path):
    """A training set of thousands of videos should not die for one bad frame: the crop
    job names it, marks it invalid (or skips the sequence) and crops the rest."""
    root, culprit = got10k_root(got10k_template, tmp_path, defect, "train")
    out = tmp_path / "crops"
    r = call_tool("crop_train_dataset.py", "--root", str(root), "--out", str(out))
    assert r.code == 0, r.err[-2000:]
    warnings = [ln for ln in r.err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and culprit.split(" ")[0] in warnings[0], r.err[-2000:]
    index = json.loads((out / "index.json").read_text())
    assert len(index["sequences"]) >= 1 and "Traceback" not in r.err


def test_the_harness_sees_a_real_exit_code_and_stream(files, tmp_path):
    """call_tool must report what a shell would: prove it on a case with a known answer."""
    r = call_tool("evaluate.py", "--checkpoint", str(files["corrupt"]), "--benchmark", "folder",
                  "--root", str(tmp_path), "--out", str(tmp_path / "o"))
    assert r.code == 2 and r.err.startswith("error: ") and r.out == ""
    ok = call_tool("make_synthetic_dataset.py", "--out", str(tmp_path / "s"), "--train-seqs", "0",
                   "--val-seqs", "1", "--val-frames", "3", "--workers", "1")
    assert ok.code == 0 and "wrote 0 train and 1 val" in ok.out
    assert os.path.isdir(tmp_path / "s" / "val")
    assert np.loadtxt(next((tmp_path / "s" / "val").glob("GOT-10k_*/groundtruth.txt")), delimiter=",").shape == (3, 4)
