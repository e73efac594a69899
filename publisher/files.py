"""Atomic publication to the file system: a reader sees the old file or the new one, whole."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import faults
from .errors import MalformedInput


def read_input(path: Path | str) -> bytes:
    """A file an operator handed in; MalformedInput naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise MalformedInput(f"{path}: cannot read: {e.strerror}") from None


def atomic_write(path: Path, data: bytes, *, crash_point: str | None = "mid-file-write") -> None:
    """Write to a temporary file in the same directory, fsync it, rename it over the target,
    and fsync the directory so the rename itself survives a crash. `crash_point` names the
    fault point (publisher.faults) half-way through; None for files that are not published
    (a crash test aimed at publication must not fire on them first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's PID in the name lets any later process tell a crash's leftover from a
    # file another live process is still writing.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            if crash_point is not None:
                faults.point(crash_point)  # a torn temporary file: must never be served
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
    """Remove temporary files left by writers that crashed mid-write (their PID is gone).
    Called before publishing, by the server and the CLI alike."""
    n = 0
    if not directory.is_dir():
        return 0
    for p in directory.rglob(".*.tmp"):
        if _writer_alive(p.name):
            continue
        p.unlink(missing_ok=True)
        n += 1
    return n


def _writer_alive(name: str) -> bool:
    parts = name.split(".")
    # .<file name>.<pid>.<random>.tmp ; the file name itself may contain dots.
    pid = parts[-3] if len(parts) >= 4 else ""
    if not pid.isdigit():
        return False
    pid_n = int(pid)
    if pid_n == os.getpid():
        return False  # our own leftovers: nothing in this process is mid-write at these call sites
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
