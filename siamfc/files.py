"""Atomic file writes and locked read-modify-write updates.

Each writer fills a uniquely named temporary file in the target's directory,
syncs it and renames it over the target, so an interrupted job (or a second
process writing the same file) leaves either the old file or a new one, never a
torn mix. :func:`locked` serialises the read-modify-write of a file that several
processes update, such as the per-machine caches.
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    with atomic_path(dst) as tmp:
        tmp.write_bytes(Path(src).read_bytes())


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path + '.lock'`` (created if needed)."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def update_json(path: str | os.PathLike, update: Any) -> Any:
    """Apply ``update(data) -> data`` to a JSON file under its lock; a missing or
    unreadable file starts from ``{}``. Returns the data written."""
    with locked(path):
        try:
            data = read_json(path)
        except (OSError, ValueError):
            data = {}
        data = update(data)
        write_json(path, data)
    return data


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    """Lay out a matplotlib figure, write it as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
