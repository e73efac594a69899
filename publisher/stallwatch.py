"""What held the event loop: a watcher thread that, when the loop has not woken for longer
than a threshold, samples the loop thread's stack.

The lag probe says how late the loop was; this says where it was. A stall whose sample
shows the loop in its selector wait was not ours (the machine was busy, or another thread
held the GIL); one that shows our code names the function to move off the loop. The
stacks are counted (a bounded table, the most frequent kept), shown on `/healthz/loop`
and logged at a bounded rate.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Callable

from .ratelimit import RateLimit, suffix

log = logging.getLogger("pkirepo.loop")

# Frames kept per sample, innermost last: enough to name the caller of a slow call.
_DEPTH = 8
# Distinct stacks kept: a long-running server sees a few kinds of stall, not thousands.
_KEEP = 50


class StallWatch:
    """`beat()` from the loop (the lag probe calls it at each wake-up); `start()` runs the
    watcher thread, `stop()` ends it."""

    def __init__(self, threshold_ms: int, *, period_ms: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold_ms / 1000
        self.period = period_ms / 1000
        self._clock = clock
        self._last = clock()
        self._loop_thread: int | None = None
        self._sampled_since: float | None = None  # the stall already sampled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stacks: Counter[str] = Counter()
        self.stalls = 0
        self._limit = RateLimit(rate=0.1, burst=3, clock=clock)

    def beat(self) -> None:
        self._last = self._clock()

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._last = self._clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="pkirepo-stallwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            self.check()

    def check(self) -> str | None:
        """Sample the loop thread once if it is stalled and this stall is not sampled yet;
        returns the sampled stack."""
        last = self._last
        if self._clock() - last < self.threshold or self._sampled_since == last:
            return None
        frame = sys._current_frames().get(self._loop_thread or -1)
        if frame is None:
            return None
        self._sampled_since = last
        stack = describe(frame)
        self.stalls += 1
        self.stacks[stack] += 1
        if len(self.stacks) > _KEEP:
            for key, _ in self.stacks.most_common()[_KEEP:]:
                del self.stacks[key]
        dropped = self._limit.allow()
        if dropped is not None:
            log.warning("event loop held over %.0f ms, in: %s%s", self.threshold * 1000, stack, suffix(dropped))
        return stack

    def snapshot(self) -> dict:
        return {
            "threshold_ms": round(self.threshold * 1000),
            "stalls": self.stalls,
            "where": [{"stack": s, "count": n} for s, n in self.stacks.most_common(10)],
        }


def describe(frame) -> str:
    """The innermost frames as `file:line function` from outer to inner, with paths
    shortened to the package (or the file name outside it)."""
    parts = []
    for fs in traceback.extract_stack(frame)[-_DEPTH:]:
        path = fs.filename
        for root in ("/publisher/", "/ocsp/", "/ldap/", "/site-packages/", "/lib/python"):
            i = path.rfind(root)
            if i >= 0:
                path = path[i + 1:]
                break
        parts.append(f"{path}:{fs.lineno} {fs.name}")
    return " > ".join(parts)
