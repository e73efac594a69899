"""How publication is going, as the server's readiness check and its log report it: which
scopes failed in the last round and why, and which scopes belong to CAs this process's
configuration does not have. Pure: the scheduler feeds it rounds, the HTTP front-end reads
it, and the clock is passed in.

A scope that keeps failing is logged once with its cause, then at a bounded rate (a failure
that repeats every second would otherwise fill the disk and drown everything else), and once
more when it recovers."""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Callable

from .ratelimit import RateLimit, suffix

# After the first report of a failure, at most one line a minute per scope.
REPEAT_RATE = 1 / 60


@dataclass(frozen=True)
class Failure:
    """A scope that is not being published: why, since when, and how many rounds in a row."""

    cause: str
    since: dt.datetime
    rounds: int


@dataclass(frozen=True)
class LogLine:
    level: str  # "error" or "info"
    text: str
    scope: str
    first: bool = False  # the first report of this failure (the one to carry a traceback)


class PublicationHealth:
    """The scopes that failed in the latest round (by name), and the rate limits that bound
    how often each is logged."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.failures: dict[str, Failure] = {}
        self.rounds = 0
        self._limits: dict[str, RateLimit] = {}

    def record(self, now: dt.datetime, problems: dict[str, str]) -> list[LogLine]:
        """Record one round's problems (scope name, or "publication" for the round as a
        whole, mapped to its cause); returns the lines worth logging now."""
        self.rounds += 1
        lines: list[LogLine] = []
        for name in sorted(set(self.failures) - set(problems)):
            lines.append(LogLine("info", f"{name}: published again after {self.failures[name].rounds} failed round(s)", name))
            del self.failures[name]
            self._limits.pop(name, None)
        for name, cause in sorted(problems.items()):
            old = self.failures.get(name)
            if old is None or old.cause != cause:
                self.failures[name] = Failure(cause, now, 1)
                self._limits[name] = RateLimit(REPEAT_RATE, 1, self._monotonic)
                self._limits[name].allow()  # the first report uses the token
                lines.append(LogLine("error", f"{name}: not published: {cause}", name, first=True))
                continue
            self.failures[name] = Failure(cause, old.since, old.rounds + 1)
            dropped = self._limits[name].allow()
            if dropped is not None:
                lines.append(LogLine("error", f"{name}: still not published since {old.since.isoformat()} "
                                              f"({old.rounds + 1} rounds): {cause}{suffix(dropped)}", name))
        return lines

    def problems(self) -> list[str]:
        """One line per failing scope; [] when every scope publishes."""
        return [f"{name}: not published since {f.since.isoformat()} ({f.rounds} rounds): {f.cause}"
                for name, f in sorted(self.failures.items())]
