"""The supervisor's state as the workers can read it: a small JSON file beside the store,
replaced whole at each change. A readiness check (/readyz) calls `problems()`: a crash
loop, or fewer ready workers than asked for, is reported there."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .readiness import Component


def status_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".workers.json")


@dataclass(frozen=True)
class WorkerStatus:
    """What the supervisor (`pid`) last wrote: workers asked for, workers ready, and
    whether they keep dying (`crash_loop`, with `restart_delay` seconds of back-off)."""

    pid: int
    workers: int
    ready: int
    crash_loop: bool = False
    restart_delay: float = 0.0
    reloading: bool = False
    problem: str = ""


def write_status(path: Path, status: WorkerStatus) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(status)) + "\n")
    os.replace(tmp, path)


def read_status(path: Path) -> WorkerStatus | None:
    """The status, or None when there is no supervisor's file (a single-process server)
    or it does not parse."""
    try:
        data = json.loads(path.read_text())
        return WorkerStatus(**data)
    except (OSError, ValueError, TypeError):
        return None


def problems(path: Path) -> list[str]:
    """Lines for a readiness check; empty when the workers are healthy or when this server
    runs without a supervisor."""
    status = read_status(path)
    if status is None:
        return []
    out = []
    if status.crash_loop:
        out.append(f"workers keep dying (crash loop): restarts delayed by {status.restart_delay:.0f} s"
                   + (f"; {status.problem}" if status.problem else ""))
    elif status.ready < status.workers and not status.reloading:
        out.append(f"{status.ready} of {status.workers} workers ready")
    return out


def readiness_check(path: Path):
    """A check for `Readiness.register("workers", ...)` in a worker of `serve --workers`:
    not ready while the supervisor reports a crash loop or workers missing."""

    async def check(now) -> list[Component]:
        status = read_status(path)
        found = problems(path)
        figures = {} if status is None else {"workers_asked": status.workers, "workers_ready": status.ready,
                                              "restart_delay_s": status.restart_delay}
        if found:
            return [Component("workers", False, "crash loop" if status and status.crash_loop else "degraded",
                              "; ".join(found), figures)]
        return [Component("workers", True, "reloading" if status and status.reloading else "ok", None, figures)]

    return check
