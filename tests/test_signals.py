"""A job stopped by SIGTERM (a scheduler) or SIGINT (Ctrl-C) leaves no process behind."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, moving_patch_clip, write_otb_sequence


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc; zombies count as gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def workers_of(pid: int) -> list[int]:
    """The spawned pool workers below ``pid``."""
    out = []
    for child in descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd or b"multiprocessing" in cmd:
            out.append(child)
    return out


def stop_when_workers_run(cmd: list[str], sig: int, count: int, log: Path,
                          timeout: float = 600) -> tuple[int, list[int], str]:
    """Start ``cmd``, wait for ``count`` pool workers, send ``sig``; returns the exit code,
    the processes still alive 10 s later, and stderr (a file: orphans would hold a pipe open)."""
    with open(log, "w") as err_file:
        # SIGINT back to its default in the child: a shell starts background jobs with it ignored, and Python
        # keeps an ignored SIGINT ignored, so the test would otherwise depend on how pytest was launched
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + timeout
        while len(workers_of(proc.pid)) < count:
            assert proc.poll() is None, f"the job ended before its workers started: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "workers never started"
            time.sleep(0.2)
        time.sleep(1.0)   # let them take up work
        everyone = descendants(proc.pid)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        err = log.read_text()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in everyone) and time.monotonic() < deadline:
            time.sleep(0.2)
        return code, [p for p in everyone if alive(p)], err
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the whole session: never leave a process from a failed test
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_evaluation_stopped_by_a_signal_leaves_no_worker(sig, tmp_path):
    for i in range(4):
        frames, boxes = moving_patch_clip(seed=i, n=120)
        write_otb_sequence(tmp_path / "bench", f"clip{i}", frames, boxes)
    cmd = [sys.executable, "tools/evaluate.py", "--checkpoint", "random", "--benchmark", "folder",
           "--root", str(tmp_path / "bench"), "--out", str(tmp_path / "out"), "--workers", "2"]
    code, survivors, err = stop_when_workers_run(cmd, sig, 2, tmp_path / "stderr.txt")
    assert code == 128 + sig if sig == signal.SIGTERM else code == 130, err[-2000:]
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert survivors == [], f"processes left running: {survivors}"


def test_pipeline_stopped_during_compression_leaves_no_worker(tmp_path):
    from test_pipeline import TINY

    cfg = tmp_path / "tiny.yaml"
    # two selection sequences and two workers, so compression's selection runs a pool to be stopped in
    cfg.write_text(TINY.format(out=tmp_path / "run", shared=tmp_path / "no-shared").replace(
        "select: {workers: 1,", "select: {workers: 2,").replace("select_seqs: 1,", "select_seqs: 2,"))
    assert "select: {workers: 2," in cfg.read_text() and "select_seqs: 2," in cfg.read_text()
    cmd = [sys.executable, "tools/run_pipeline.py", "--config", str(cfg)]
    code, survivors, err = stop_when_workers_run(cmd, signal.SIGTERM, 2, tmp_path / "stderr.txt")
    assert code == 128 + signal.SIGTERM, err[-2000:]
    assert survivors == [], f"processes left running: {survivors}"
    assert (tmp_path / "run" / "stages" / "teacher.json").exists()   # it was compressing
