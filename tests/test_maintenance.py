"""Maintenance windows within the weekly budget, and the weekly availability report: the pure
decisions (publisher/maintenance.py), table-driven and with hypothesis; then the store's
side on a real SQLite file (windows, the heartbeat after a crash, backup)."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from publisher.errors import Conflict, NotFound
from publisher.maintenance import (
    EMERGENCY, SCHEDULED, WEEK, Downtime, Window, active, busiest_week, check_schedule, used_in_last_week,
    weekly_report,
)
from publisher.migrations import MIGRATIONS
from publisher.sqlite_store import SQLiteStore

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # a Monday
BUDGET = dt.timedelta(minutes=120)
M = dt.timedelta(minutes=1)


def win(i: int, start: dt.datetime, mins: int, kind: str = SCHEDULED, cancelled: bool = False) -> Window:
    return Window(i, start, start + mins * M, f"w{i}", kind, T0 - WEEK, T0 - WEEK if cancelled else None)


class TestCheckSchedule:
    def test_two_fifty_minute_windows_fit_a_third_is_refused_with_the_figures(self):
        now = T0 - dt.timedelta(days=1)
        ws = [win(1, T0 + dt.timedelta(hours=2), 50), win(2, T0 + dt.timedelta(days=2), 50)]
        check_schedule(ws[:1], ws[1].start, ws[1].end, BUDGET, now)
        with pytest.raises(Conflict) as e:
            check_schedule(ws, T0 + dt.timedelta(days=4), T0 + dt.timedelta(days=4) + 50 * M, BUDGET, now)
        assert "already use 100 min, 20 min left" in e.value.message
        assert e.value.detail == {"used_minutes": 100.0, "left_minutes": 20.0}

    def test_a_window_eight_days_later_is_in_another_rolling_week(self):
        ws = [win(1, T0, 100)]
        check_schedule(ws, T0 + dt.timedelta(days=7, minutes=100), T0 + dt.timedelta(days=7, minutes=200), BUDGET,
                       T0 - WEEK)

    def test_the_rolling_week_is_not_the_calendar_week(self):
        # Sunday night and Tuesday: different calendar weeks, the same rolling 7 days.
        ws = [win(1, T0 - dt.timedelta(hours=2), 80)]
        with pytest.raises(Conflict):
            check_schedule(ws, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=1, minutes=50), BUDGET, T0 - WEEK)

    def test_cancelled_and_emergency_windows_do_not_use_the_budget(self):
        ws = [win(1, T0, 120, cancelled=True), win(2, T0 + dt.timedelta(hours=5), 120, EMERGENCY)]
        check_schedule(ws, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=1, minutes=120), BUDGET, T0 - WEEK)

    @pytest.mark.parametrize("start, mins, why", [
        (T0, 0, "before it starts"),
        (T0 - dt.timedelta(days=8), 10, "in the past"),
        (T0 + dt.timedelta(minutes=30), 10, "overlaps window 1"),
        (T0, 121, "exceed the maintenance budget"),
    ])
    def test_refusals(self, start, mins, why):
        existing = [win(1, T0 + dt.timedelta(minutes=20), 30)] if "overlaps" in why else []
        with pytest.raises(Conflict) as e:
            check_schedule(existing, start, start + mins * M, BUDGET, T0 - WEEK)
        assert why in e.value.message

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 60 * 24 * 21), st.integers(1, 130)), max_size=12))
    def test_accepted_windows_never_exceed_the_budget_in_any_rolling_week(self, requests):
        accepted: list[Window] = []
        for i, (offset, mins) in enumerate(requests):
            start = T0 + offset * M
            try:
                check_schedule(accepted, start, start + mins * M, BUDGET, T0)
            except Conflict:
                continue
            accepted.append(win(i, start, mins))
        # Brute force over every minute where a rolling week can start.
        for offset in range(-7 * 24 * 60, 28 * 24 * 60, 10):
            w0 = T0 + offset * M
            used = sum((max(dt.timedelta(0), min(w.end, w0 + WEEK) - max(w.start, w0)) for w in accepted),
                       dt.timedelta(0))
            assert used <= BUDGET, (w0, accepted)

    def test_busiest_week_reports_what_others_use(self):
        ws = [win(1, T0, 30), win(2, T0 + dt.timedelta(days=3), 40)]
        use = busiest_week(ws, T0 + dt.timedelta(days=5), T0 + dt.timedelta(days=5, minutes=10), BUDGET)
        assert use.used == 70 * M and use.left == 50 * M


def test_active_and_used_in_last_week():
    ws = [win(1, T0, 60), win(2, T0 + dt.timedelta(hours=2), 0, EMERGENCY)]
    ws[1] = Window(2, ws[1].start, None, "now", EMERGENCY, T0)
    assert active(ws, T0 + 30 * M).id == 1
    assert active(ws, T0 + 61 * M) is None
    assert active(ws, T0 + dt.timedelta(hours=3)).id == 2
    assert used_in_last_week(ws, T0 + 30 * M) == 30 * M
    assert used_in_last_week(ws, T0 + dt.timedelta(hours=3), EMERGENCY) == 60 * M


class TestWeeklyReport:
    def test_downtime_inside_a_window_is_maintenance_not_an_outage(self):
        now = T0 + dt.timedelta(days=7)
        windows = [win(1, T0 + dt.timedelta(hours=1), 60)]
        downtime = [Downtime(1, T0 + dt.timedelta(hours=1, minutes=30), T0 + dt.timedelta(hours=2, minutes=10), "x"),
                    Downtime(2, T0 + dt.timedelta(days=2), T0 + dt.timedelta(days=2, minutes=5), "crash")]
        (week,) = weekly_report(windows, downtime, now=now - dt.timedelta(seconds=1), weeks=1, budget=BUDGET,
                                since=T0 - WEEK)
        assert week.unplanned == 15 * M and week.outages == 2 and week.scheduled == 60 * M
        assert week.availability == pytest.approx(1 - 15 / (7 * 24 * 60 - 1 / 60))

    def test_nothing_observed_before_the_first_start(self):
        weeks = weekly_report([], [], now=T0 + dt.timedelta(days=1), weeks=3, budget=BUDGET, since=T0)
        assert [w.availability for w in weeks] == [None, None, 1.0]

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 60 * 24 * 14), st.integers(0, 600)), max_size=8),
           st.lists(st.tuples(st.integers(0, 60 * 24 * 14), st.integers(1, 120)), max_size=4))
    def test_availability_is_a_share_and_downtime_fits_the_week(self, downs, windows):
        now = T0 + dt.timedelta(days=14)
        ds = [Downtime(i, T0 + o * M, T0 + (o + n) * M, "x") for i, (o, n) in enumerate(downs)]
        ws = [win(i, T0 + o * M, n) for i, (o, n) in enumerate(windows)]
        for w in weekly_report(ws, ds, now=now, weeks=3, budget=BUDGET, since=T0):
            assert w.unplanned <= w.observed
            assert w.availability is None or 0 <= w.availability <= 1


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(tmp_path / "s.sqlite")
    await s.open()
    yield s
    await s.close()


async def test_store_windows(store):
    now = T0
    w1 = await store.schedule_maintenance(T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2), "a",
                                          budget=BUDGET, at=now)
    with pytest.raises(Conflict):
        await store.schedule_maintenance(T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=1, hours=1, minutes=1),
                                         "b", budget=BUDGET, at=now)
    assert [w.id for w in await store.maintenance_windows()] == [w1.id]
    with pytest.raises(NotFound):
        await store.end_maintenance(None, at=now)
    e = await store.start_emergency_maintenance("fire", at=now)
    with pytest.raises(Conflict):
        await store.start_emergency_maintenance("again", at=now)
    ended = await store.end_maintenance("out", at=now + 5 * M)
    assert ended.id == e.id and ended.end == now + 5 * M and ended.reason == "fire; ended: out"
    cancelled = await store.cancel_maintenance(w1.id, at=now + 6 * M)
    assert cancelled.cancelled_at == now + 6 * M
    with pytest.raises(Conflict):
        await store.cancel_maintenance(w1.id, at=now + 7 * M)
    with pytest.raises(NotFound):
        await store.cancel_maintenance(999, at=now)


async def test_heartbeat_gap_after_a_crash_and_after_a_clean_stop(store):
    alive = dt.timedelta(seconds=20)
    first, gap = await store.start_heartbeat(at=T0, alive_within=alive)
    assert gap is None
    await store.beat(first, at=T0 + dt.timedelta(seconds=30))
    # The process dies; the next one starts five minutes later.
    second, gap = await store.start_heartbeat(at=T0 + dt.timedelta(minutes=5, seconds=30), alive_within=alive)
    assert gap.start == T0 + dt.timedelta(seconds=30) and gap.end == T0 + dt.timedelta(minutes=5, seconds=30)
    assert "crashed" in gap.cause
    await store.beat(second, at=T0 + dt.timedelta(minutes=6), stopped=True)
    _, gap = await store.start_heartbeat(at=T0 + dt.timedelta(minutes=8), alive_within=alive)
    assert gap.start == T0 + dt.timedelta(minutes=6) and "stopped" in gap.cause
    assert [d.cause[:20] for d in await store.downtime()] == ["not running: crashed", "not running: stopped"]
    assert await store.first_start() == T0


async def test_backup_is_a_whole_store_at_the_current_schema(store, tmp_path):
    await store.schedule_maintenance(T0 + M, T0 + 2 * M, "a", budget=BUDGET, at=T0)
    seen = []
    pages = await store.backup_to(tmp_path / "b.sqlite", progress=lambda done, total: seen.append((done, total)))
    assert pages > 0 and seen[-1] == (pages, pages)
    con = sqlite3.connect(tmp_path / "b.sqlite")
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert con.execute("SELECT reason FROM maintenance_windows").fetchall() == [("a",)]
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert not (tmp_path / "b.sqlite.partial").exists()
    assert await store.schema_version() == (len(MIGRATIONS), len(MIGRATIONS))
