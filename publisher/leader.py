"""Which process runs the background work (publication, pre-signing, pruning) when several
serve one store: the holder of an exclusive `flock` on a lock file beside the store.

Every worker tries the lock at each round of its background loops (about once a second);
the first to get it keeps it for its life. The kernel releases it when the holder exits or
is killed, so another worker takes over at its next try, within seconds. Unlike a PID file,
there is nothing stale to clean up after a crash."""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger("pkirepo")


def lock_path(store_path: Path) -> Path:
    """The lock file of a store: beside it, so it is on the path systemd lets us write."""
    return store_path.with_name(store_path.name + ".background.lock")


class Leadership:
    """One process's claim to the background work of the store `path` locks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._warned = False

    # Only workers of `serve --workers` use this lock by itself (see pg_leader.py for nodes).
    workers = True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def owns_directory(self) -> bool:
        """The holder also keeps the publication directory in step with the store."""
        return self.try_acquire()

    def try_acquire(self) -> bool:
        """True if this process holds the lock (now or already); never blocks."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if not self._warned:
                log.error("cannot open the background-work lock %s: %s", self.path, e.strerror)
                self._warned = True
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        log.info("this worker (pid %d) runs the background work (publication, pre-signing)", os.getpid())
        return True

    def release(self) -> None:
        """Give the work up (at shutdown), so that another worker takes it at once."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
