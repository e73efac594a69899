"""The garbage collector's pauses, which hold the event loop like any other step.

A full (generation 2) collection walks every container object the process holds: after
start-up that is the configuration, the CA certificates, the snapshot directory and the
imported modules, hundreds of thousands of objects that live as long as the process. Walking
them again and again only costs loop time, so once start-up is over `settle()` collects once
and freezes what is left (`gc.freeze`: moved out of the collector's sight for good); later
collections walk only what was made since. `GcPauses` times every collection, by generation,
so the loop-lag probe can say whether a late wake-up was the collector's.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import Callable

log = logging.getLogger("pkirepo.loop")


class GcPauses:
    """Counts and times collections while installed (`install()` / `uninstall()`)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started: float | None = None
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.worst = [0.0, 0.0, 0.0]
        self.frozen = 0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = self._clock()
            return
        if self._started is None:
            return
        took = self._clock() - self._started
        self._started = None
        g = min(int(info.get("generation", 0)), 2)
        self.count[g] += 1
        self.total[g] += took
        self.worst[g] = max(self.worst[g], took)

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def settle(self) -> int:
        """Freeze what start-up made; returns how many objects are now frozen. No collection
        first: that would be the very pause this avoids (freezing is constant time), and
        what start-up left as cyclic garbage is small and made once."""
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        log.info("start-up objects frozen out of the collector's walks: %d", self.frozen)
        return self.frozen

    def snapshot(self) -> dict:
        return {
            "frozen_objects": self.frozen,
            "generations": [
                {"generation": g, "collections": self.count[g], "total_ms": round(self.total[g] * 1000, 1),
                 "worst_ms": round(self.worst[g] * 1000, 1)}
                for g in range(3)
            ],
        }
