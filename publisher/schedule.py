"""When is a CRL due? Pure decisions from the settings, the newest CRL of a scope, the
newest status change of its issuer and the time. The background loop and `pkirepo publish`
act on them; tests call them with pinned times."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .config import CrlSettings
from .crl import ScopeKind
from .store import CrlRecord, Event

# Event kinds that change what a CRL must list.
STATUS_EVENTS = ("revoke", "hold", "release", "import-revoked")


@dataclass(frozen=True)
class Due:
    why: str  # initial, scheduled HH:MM, next-update, supplementary


def last_slot(now: dt.datetime, daily: tuple[dt.time, ...]) -> dt.datetime:
    """The most recent scheduled issuance time at or before now."""
    today = now.date()
    candidates = [
        dt.datetime.combine(day, t)
        for day in (today - dt.timedelta(days=1), today)
        for t in daily
    ]
    return max(c for c in candidates if c <= now)


def next_slot(now: dt.datetime, daily: tuple[dt.time, ...]) -> dt.datetime:
    today = now.date()
    candidates = [
        dt.datetime.combine(day, t)
        for day in (today, today + dt.timedelta(days=1))
        for t in daily
    ]
    return min(c for c in candidates if c > now)


def next_update_for(kind: ScopeKind, this_update: dt.datetime, s: CrlSettings) -> dt.datetime:
    return this_update + (s.arl_period if kind is ScopeKind.ARL else s.next_update)


def due(
    now: dt.datetime,
    kind: ScopeKind,
    latest: CrlRecord | None,
    last_change: Event | None,
    s: CrlSettings,
) -> Due | None:
    """Whether a scope needs a new CRL now, and why."""
    if latest is None:
        return Due("initial")
    if last_change is not None and last_change.id > latest.covered_event:
        # A supplementary CRL within the configured delay (at most 24 h: the CP's limit).
        if now >= last_change.at + s.supplementary_delay:
            return Due("supplementary")
    margin = s.arl_renew_margin if kind is ScopeKind.ARL else s.renew_margin
    if latest.next_update - now <= margin:
        return Due("next-update")
    if kind is not ScopeKind.ARL:
        slot = last_slot(now, s.daily)
        if latest.this_update < slot:
            return Due(f"scheduled {slot:%H:%M}")
    return None
