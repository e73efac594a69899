"""Clocks are passed in, never read globally, so tests can pin the time; and the one way a
time is written in HTTP headers."""
from __future__ import annotations

import datetime as dt
import email.utils
from typing import Protocol


def http_date(when: dt.datetime) -> str:
    """An HTTP-date (RFC 9110 §5.6.7): `Tue, 01 Dec 2026 01:15:00 GMT`."""
    return email.utils.format_datetime(when.astimezone(dt.timezone.utc), usegmt=True)


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC, whole seconds."""


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


class FixedClock:
    """A clock for tests: stands still until moved."""

    def __init__(self, when: dt.datetime) -> None:
        self._now = when

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now = self._now + dt.timedelta(**delta)
