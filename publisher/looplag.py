"""How late the event loop wakes: a probe that sleeps a short interval again and again and
records by how much each wake-up overshot it.

Everything pkirepo serves (HTTP, OCSP, LDAP) shares one event loop, so any step that holds
it (a long query, a big join, hashing a file) delays every client at once. The probe measures
that instead of assuming it: the worst and the 99th percentile over the last 10 and 60
seconds and since start, readable at any time without resetting anything (a public GET must
not change what the next reader sees). A wake-up later than the configured threshold is
logged, at a bounded rate. One object, handed by the composition root to whoever reports it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .config import Table
from .gcpause import GcPauses
from .ratelimit import RateLimit, suffix
from .stallwatch import StallWatch

log = logging.getLogger("pkirepo.loop")

#: The windows reported besides "since start", in seconds.
WINDOWS = (10, 60)
# The since-start percentile comes from a histogram of whole milliseconds (bounded memory
# however long the server runs); lags of this many ms or more share the last bucket.
_HISTOGRAM_MS = 10_000


@dataclass(frozen=True)
class LoopProbeSettings:
    """`[loop_probe]`: how often the probe wakes and from what lag it logs."""

    interval_ms: int = 10
    warn_ms: int = 100
    enabled: bool = True
    # From this many ms without a wake-up, the loop thread's stack is sampled (0: never).
    stall_ms: int = 40


def load_loop_probe_settings(top: Table) -> LoopProbeSettings:
    t = top.table("loop_probe")
    d = LoopProbeSettings()
    return LoopProbeSettings(
        interval_ms=t.int("interval_ms", d.interval_ms, min=1, max=1000),
        warn_ms=t.int("warn_ms", d.warn_ms, min=1),
        enabled=t.bool("enabled", d.enabled),
        stall_ms=t.int("stall_ms", d.stall_ms, min=0),
    )


class LoopLag:
    """The probe. `run()` is the task; `snapshot()` what has been measured so far."""

    def __init__(self, settings: LoopProbeSettings = LoopProbeSettings(), *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
                 gc_pauses: GcPauses | None = None, stalls: StallWatch | None = None) -> None:
        self.settings = settings
        # Where the loop was when it stalled, sampled by a thread of its own.
        self.stalls = stalls
        # The collector's pauses, reported beside the lag they cause.
        self.gc = gc_pauses
        self._clock = clock
        self._since = wall()
        self._start = clock()
        # One sample per wake-up over the longest window: 6,000 at 10 ms.
        self._recent: deque[tuple[float, float]] = deque(
            maxlen=max(WINDOWS) * 1000 // settings.interval_ms + 1)
        self._histogram = [0] * (_HISTOGRAM_MS + 1)
        self._count = 0
        self._max = 0.0
        self._limit = RateLimit(rate=0.1, burst=3, clock=clock)

    def record(self, lag: float) -> None:
        """Note one wake-up `lag` seconds late."""
        lag = max(0.0, lag)
        now = self._clock()
        self._recent.append((now, lag))
        self._histogram[min(int(lag * 1000), _HISTOGRAM_MS)] += 1
        self._count += 1
        self._max = max(self._max, lag)
        if lag * 1000 >= self.settings.warn_ms:
            dropped = self._limit.allow()
            if dropped is not None:
                log.warning("event loop held for %.0f ms (threshold %d ms)%s",
                            lag * 1000, self.settings.warn_ms, suffix(dropped))

    async def run(self) -> None:
        """Sleep the interval, note the overshoot, forever (until cancelled)."""
        interval = self.settings.interval_ms / 1000
        if self.stalls is not None:
            self.stalls.start()
        try:
            while True:
                before = self._clock()
                await asyncio.sleep(interval)
                if self.stalls is not None:
                    self.stalls.beat()
                self.record(self._clock() - before - interval)
        finally:
            if self.stalls is not None:
                self.stalls.stop()

    @property
    def worst_ms(self) -> float:
        """The worst lag since start, in milliseconds (what /metrics reports)."""
        return round(self._max * 1000, 1)

    def snapshot(self) -> dict:
        """What the probe saw: since start at the top level, and per recent window."""
        now = self._clock()
        windows = {}
        for seconds in WINDOWS:
            lags = sorted(lag for at, lag in self._recent if now - at <= seconds)
            windows[f"{seconds}s"] = _figures(lags)
        return {
            "since": self._since.isoformat(timespec="seconds"),
            "uptime_s": round(now - self._start, 1),
            "interval_ms": self.settings.interval_ms,
            "warn_ms": self.settings.warn_ms,
            "max_ms": round(self._max * 1000, 1),
            "p99_ms": _histogram_p99(self._histogram, self._count),
            "samples": self._count,
            "windows": windows,
            **({"gc": self.gc.snapshot()} if self.gc is not None else {}),
            **({"stalls": self.stalls.snapshot()} if self.stalls is not None else {}),
        }


def _figures(lags: list[float]) -> dict:
    if not lags:
        return {"max_ms": 0.0, "p99_ms": 0.0, "samples": 0}
    p99 = lags[min(len(lags) - 1, (len(lags) * 99) // 100)]
    return {"max_ms": round(lags[-1] * 1000, 1), "p99_ms": round(p99 * 1000, 1), "samples": len(lags)}


def _histogram_p99(histogram: list[int], count: int) -> float:
    """The 99th percentile to the millisecond (the bucket's upper edge)."""
    if not count:
        return 0.0
    rank = (count * 99) // 100 + 1
    seen = 0
    for ms, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return float(ms + 1)
    return float(_HISTOGRAM_MS)
