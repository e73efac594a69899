"""Crash points for fault tests. `PKIREPO_CRASH_AT=<point>` makes the process SIGKILL
itself when it reaches that point, so a test can crash publication at an exact step
without timing races. Unset (always, in production), `point()` is a dictionary lookup."""
from __future__ import annotations

import os
import signal

_CRASH_AT = frozenset(filter(None, os.environ.get("PKIREPO_CRASH_AT", "").split(",")))

# The steps of publishing one CRL, in order.
POINTS = ("after-reserve", "after-sign", "after-record", "mid-file-write", "after-file-write")


def point(name: str) -> None:
    if name in _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
