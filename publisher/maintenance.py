"""Maintenance windows and the availability ledger, as pure decisions: whether a window fits
the weekly budget (CPS 2.5: at most `policy.max_maintenance_minutes_per_week` of scheduled
maintenance in any rolling 7 days), whether the repository is in a window now, and the
weekly availability report. The store keeps the records; the clock is passed in."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import Conflict, Unavailable

WEEK = dt.timedelta(days=7)


class InMaintenance(Unavailable):
    """A write refused because the repository is in a maintenance window: the message says
    until when. Reads go on."""

    cli_exit = 2
SCHEDULED = "scheduled"
EMERGENCY = "emergency"


@dataclass(frozen=True)
class Window:
    """A maintenance window. Emergency maintenance has no end until `maintenance end`."""

    id: int
    start: dt.datetime
    end: dt.datetime | None
    reason: str
    kind: str  # SCHEDULED or EMERGENCY
    created_at: dt.datetime
    cancelled_at: dt.datetime | None = None

    @property
    def counts(self) -> bool:
        """Whether it happens (or happened): a cancelled window is only on record."""
        return self.cancelled_at is None

    def end_or(self, now: dt.datetime) -> dt.datetime:
        return self.end if self.end is not None else max(now, self.start)

    def active_at(self, now: dt.datetime) -> bool:
        return self.counts and self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True)
class Downtime:
    """An interval in which the service was not ready, not planned: `end` None while open."""

    id: int
    start: dt.datetime
    end: dt.datetime | None
    cause: str


def _overlap(a0: dt.datetime, a1: dt.datetime, b0: dt.datetime, b1: dt.datetime) -> dt.timedelta:
    return max(dt.timedelta(0), min(a1, b1) - max(a0, b0))


def minutes(d: dt.timedelta) -> float:
    return round(d.total_seconds() / 60, 1)


@dataclass(frozen=True)
class BudgetUse:
    """The busiest rolling 7 days touched by a window: what other windows use in it."""

    week_start: dt.datetime
    used: dt.timedelta
    budget: dt.timedelta

    @property
    def left(self) -> dt.timedelta:
        return max(dt.timedelta(0), self.budget - self.used)


def busiest_week(existing: Iterable[Window], start: dt.datetime, end: dt.datetime,
                 budget: dt.timedelta) -> BudgetUse:
    """The rolling 7 days overlapping [start, end) in which the other scheduled windows use
    the most minutes together with this one. The sum of overlaps is piecewise linear in the
    interval's position, so its maximum is reached with the interval starting at some
    window's start or ending at some window's end: those are the candidates."""
    others = [w for w in existing if w.counts and w.kind == SCHEDULED and w.end is not None]
    candidates = {start, end - WEEK}
    for w in others:
        candidates |= {w.start, w.end - WEEK}
    best: tuple[dt.timedelta, dt.timedelta, dt.datetime] | None = None
    for c in sorted(candidates):
        c_end = c + WEEK
        mine = _overlap(start, end, c, c_end)
        if mine <= dt.timedelta(0):
            continue
        used = sum((_overlap(w.start, w.end, c, c_end) for w in others), dt.timedelta(0))
        if best is None or used + mine > best[0] + best[1]:
            best = (used, mine, c)
    if best is None:
        return BudgetUse(start, dt.timedelta(0), budget)
    return BudgetUse(best[2], best[0], budget)


def check_schedule(existing: Sequence[Window], start: dt.datetime, end: dt.datetime, budget: dt.timedelta,
                   now: dt.datetime) -> BudgetUse:
    """Refuse (Conflict) a scheduled window that is empty, in the past, overlaps another, or
    would take the scheduled maintenance of some rolling 7 days over `budget`; the message
    gives the minutes used and left in that week."""
    if end <= start:
        raise Conflict(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    if start < now:
        raise Conflict(f"the window starts in the past ({start.isoformat()}; now {now.isoformat()}): "
                       f"for maintenance under way use `pkirepo maintenance start`")
    for w in existing:
        if w.counts and _overlap(w.start, w.end_or(now), start, end) > dt.timedelta(0):
            raise Conflict(f"the window overlaps window {w.id} ({w.start.isoformat()} to "
                           f"{w.end_or(now).isoformat()}: {w.reason})")
    use = busiest_week(existing, start, end, budget)
    if use.used + (end - start) > budget:
        raise Conflict(
            f"a window of {minutes(end - start):g} min would exceed the maintenance budget of "
            f"{minutes(budget):g} min in any rolling 7 days: the 7 days from {use.week_start.isoformat()} "
            f"already use {minutes(use.used):g} min, {minutes(use.left):g} min left",
            used_minutes=minutes(use.used), left_minutes=minutes(use.left))
    return use


def active(windows: Iterable[Window], now: dt.datetime) -> Window | None:
    """The window the repository is in at `now`, if any."""
    for w in windows:
        if w.active_at(now):
            return w
    return None


def used_in_last_week(windows: Iterable[Window], now: dt.datetime, kind: str = SCHEDULED) -> dt.timedelta:
    """Minutes of maintenance (of `kind`) in the 7 days up to `now`, windows under way counted
    up to now."""
    start = now - WEEK
    return sum((_overlap(w.start, min(w.end_or(now), now), start, now)
                for w in windows if w.counts and w.kind == kind), dt.timedelta(0))


def _subtract(a0: dt.datetime, a1: dt.datetime, cuts: list[tuple[dt.datetime, dt.datetime]]
              ) -> list[tuple[dt.datetime, dt.datetime]]:
    """[a0, a1) minus the union of `cuts` (sorted by start)."""
    out = []
    cur = a0
    for c0, c1 in cuts:
        if c1 <= cur or c0 >= a1:
            continue
        if c0 > cur:
            out.append((cur, c0))
        cur = max(cur, c1)
        if cur >= a1:
            break
    if cur < a1:
        out.append((cur, a1))
    return out


@dataclass(frozen=True)
class WeekReport:
    """One week (Monday 00:00 UTC to the next) of the availability ledger."""

    start: dt.datetime
    end: dt.datetime
    observed: dt.timedelta  # the part of the week that has passed and the service existed
    unplanned: dt.timedelta
    outages: int
    scheduled: dt.timedelta
    emergency: dt.timedelta
    budget: dt.timedelta

    @property
    def availability(self) -> float | None:
        """The share of the observed time the service was ready, scheduled and emergency
        maintenance excluded (reads go on during them); None before anything was observed."""
        if self.observed <= dt.timedelta(0):
            return None
        return max(0.0, 1 - self.unplanned / self.observed)

    def as_json(self) -> dict:
        a = self.availability
        return {
            "week_start": self.start.isoformat(),
            "week_end": self.end.isoformat(),
            "availability": None if a is None else round(a, 6),
            "unplanned_downtime_minutes": minutes(self.unplanned),
            "outages": self.outages,
            "maintenance_minutes": minutes(self.scheduled),
            "emergency_maintenance_minutes": minutes(self.emergency),
            "maintenance_budget_minutes": minutes(self.budget),
        }


def week_start(when: dt.datetime) -> dt.datetime:
    day = when.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday())


def weekly_report(windows: Sequence[Window], downtime: Sequence[Downtime], *, now: dt.datetime,
                  weeks: int, budget: dt.timedelta, since: dt.datetime | None) -> list[WeekReport]:
    """The last `weeks` weeks, newest last. Unplanned downtime inside a maintenance window
    counts as maintenance; `since` is when the service first ran (nothing before it is
    observed)."""
    cuts = sorted((w.start, w.end_or(now)) for w in windows if w.counts)
    first = week_start(now) - (weeks - 1) * WEEK
    out = []
    for i in range(weeks):
        w0 = first + i * WEEK
        w1 = w0 + WEEK
        seen_from = max(w0, since) if since is not None else w1
        observed = max(dt.timedelta(0), min(w1, now) - seen_from)
        unplanned = dt.timedelta(0)
        outages = 0
        for d in downtime:
            d0, d1 = max(d.start, w0), min(d.end or now, w1, now)
            if d1 <= d0:
                continue
            parts = _subtract(d0, d1, cuts)
            if parts:
                outages += 1
            unplanned += sum((b - a for a, b in parts), dt.timedelta(0))

        def planned(kind: str) -> dt.timedelta:
            return sum((_overlap(w.start, min(w.end_or(now), now), w0, w1)
                        for w in windows if w.counts and w.kind == kind), dt.timedelta(0))

        out.append(WeekReport(w0, w1, observed, min(unplanned, observed), outages, planned(SCHEDULED),
                              planned(EMERGENCY), budget))
    return out
