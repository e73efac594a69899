"""A token bucket for log lines: a burst passes, then a steady trickle, and what was held back
is counted so the next line that passes can say how many were dropped.

Client mistakes (malformed HTTP, OCSP, LDAP) and resource errors (accept() out of file
descriptors) can come thousands of times a second; logging each one would fill the disk and
cost the event loop more than answering them.  Pure: the clock is passed in.
"""
from __future__ import annotations

from typing import Callable


class RateLimit:
    """At most `burst` events at once and `rate` per second on average pass."""

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_last", "_dropped")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._dropped = 0

    def allow(self) -> int | None:
        """None when this event is held back; otherwise how many were held back since the
        last one that passed (0 usually)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            self._dropped += 1
            return None
        self._tokens -= 1
        dropped, self._dropped = self._dropped, 0
        return dropped


def suffix(dropped: int) -> str:
    """Text to append to a log line that passed after others were held back."""
    return f" ({dropped} similar message(s) suppressed)" if dropped else ""
