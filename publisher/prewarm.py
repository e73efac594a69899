"""Reading the SQLite store file into the operating system's page cache once, in the
background, after start-up.

At a million certificates the store is about 2 GB and a lookup by mail or DN touches a few
pages at random: each page not in the page cache is a disk read of milliseconds, so the
first look-ups after a restart run several times slower than the same look-ups later.
Reading the file once, sequentially, as PostgreSQL's pg_prewarm does for its buffers, turns
those random reads into one streaming read that the disk does at its full rate, off the
event loop. The kernel keeps the pages as long as memory allows (the sizing section of the
README counts the store file in the RAM a node needs) and drops them first under pressure:
nothing here holds memory of the process.

The reading runs in a child process (`python -m publisher.prewarm FILE...`), never in the
server: POSIX advisory locks belong to a process and an inode, and closing *any* descriptor
of the database file releases every lock the process holds on it, SQLite's included. A
reader in the server that opened and closed the file silently dropped SQLite's locks (its
heartbeats stopped being seen by other processes: found by the availability test).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

CHUNK = 4 << 20


def read_into_cache(paths: Iterable[Path], *, stop: threading.Event | None = None,
                    progress: Callable[[int], None] | None = None) -> int:
    """Read each existing file whole and throw the bytes away; returns how many were read.
    `stop` ends it between chunks (a shutdown does not wait for a whole file)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            continue
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while stop is None or not stop.is_set():
                n = os.readv(fd, [view])
                if n <= 0:
                    break
                total += n
                if progress is not None:
                    progress(total)
        finally:
            os.close(fd)
    return total


def store_files(store_path: Path) -> list[Path]:
    """The database file and its write-ahead log."""
    return [store_path, store_path.with_name(store_path.name + "-wal")]


def command(store_path: Path) -> list[str]:
    """The child process that reads the store's files."""
    return [sys.executable, "-m", "publisher.prewarm", *map(str, store_files(store_path))]


def main(argv: list[str]) -> int:
    started = time.monotonic()
    n = read_into_cache(Path(a) for a in argv)
    print(f"{n} {time.monotonic() - started:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
