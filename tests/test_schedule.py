"""publisher.schedule: when a CRL is due, at pinned times."""
from __future__ import annotations

import datetime as dt

import pytest

from publisher.config import CrlSettings
from publisher.crl import ReasonPolicy, ScopeKind
from publisher.schedule import due, last_slot, next_slot, next_update_for
from publisher.store import CrlRecord, Event, Scope

UTC = dt.timezone.utc
T = lambda h, m=0, d=25: dt.datetime(2026, 11, d, h, m, tzinfo=UTC)  # noqa: E731
DAILY = tuple(dt.time(h, m, tzinfo=UTC) for h, m in [(1, 15), (6, 15), (11, 0)])
S = CrlSettings(daily=DAILY, next_update=dt.timedelta(hours=24), supplementary_delay=dt.timedelta(minutes=5),
                renew_margin=dt.timedelta(hours=2), arl_period=dt.timedelta(days=365),
                arl_renew_margin=dt.timedelta(days=30), reason_policy=ReasonPolicy.OMIT, drop_expired_after=None,
                archive_retention=dt.timedelta(days=2557))
SCOPE = Scope(1, 1, ScopeKind.FULL, "", "CRL1")


def record(this_update, *, covered=10, kind=ScopeKind.FULL):
    return CrlRecord(1, SCOPE, 1, this_update, next_update_for(kind, this_update, S), "x", 1, 0, covered,
                     this_update, "signed")


def event(eid, at):
    return Event(eid, at, "revoke", 1, 1, None)


def test_slots():
    assert last_slot(T(1, 14), DAILY) == T(11, 0, d=24)
    assert last_slot(T(1, 15), DAILY) == T(1, 15)
    assert next_slot(T(11, 0), DAILY) == T(1, 15, d=26)


def test_initial():
    assert due(T(3), ScopeKind.FULL, None, None, S).why == "initial"


def test_scheduled_slot_missed_is_caught_up():
    assert due(T(6, 16), ScopeKind.FULL, record(T(1, 15)), None, S).why == "scheduled 06:15"
    assert due(T(6, 14), ScopeKind.FULL, record(T(1, 15)), None, S) is None


def test_supplementary_after_delay_only():
    latest = record(T(1, 15), covered=10)
    assert due(T(2, 4), ScopeKind.FULL, latest, event(11, T(2, 0)), S) is None
    assert due(T(2, 5), ScopeKind.FULL, latest, event(11, T(2, 0)), S).why == "supplementary"
    # An event already covered by the CRL changes nothing.
    assert due(T(2, 5), ScopeKind.FULL, latest, event(10, T(1, 0)), S) is None


def test_next_update_close():
    # Issued at 11:00 the day before; the 01:15 slot passed already, but the margin wins too.
    latest = record(T(11, 0, d=24))
    assert due(T(9, 1), ScopeKind.FULL, latest, None, S).why in ("next-update", "scheduled 06:15")
    assert due(T(9, 1), ScopeKind.FULL, latest, None, S) is not None


def test_arl_yearly_not_daily():
    latest = record(T(1, 0), kind=ScopeKind.ARL)
    assert due(T(12, 0, d=26), ScopeKind.ARL, latest, None, S) is None
    assert due(T(1, 0) + dt.timedelta(days=336), ScopeKind.ARL, latest, None, S).why == "next-update"


@pytest.mark.parametrize("kind,hours", [(ScopeKind.FULL, 24), (ScopeKind.ARL, 365 * 24)])
def test_next_update(kind, hours):
    assert next_update_for(kind, T(1), S) - T(1) == dt.timedelta(hours=hours)
