"""Atomic publication to the file system: a reader sees the old file or the new one, whole."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import faults


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync it, rename it over the target,
    and fsync the directory so the rename itself survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            faults.point("mid-file-write")  # a torn temporary file: must never be served
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_stale_temporaries(directory: Path) -> int:
    """Temporary files left by a crash mid-write; called at start."""
    n = 0
    if directory.is_dir():
        for p in directory.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n
