"""Operating the repository: the `[ops]` settings, the maintenance state as the server sees
it, the repository's own readiness checks, the heartbeat and the availability ledger kept
while serving, and the `/status` document. Store, signers and clock are passed in."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Mapping

from .clock import Clock
from .config import Table
from .maintenance import EMERGENCY, WEEK, Window, active, minutes, used_in_last_week, weekly_report
from .readiness import Component, Readiness, ReadinessSettings, Report, crl_component
from .signer import Signer
from .store import Store
from .tasks import cancel_and_wait

log = logging.getLogger("pkirepo.ops")


@dataclass(frozen=True)
class OpsSettings:
    """`[ops]`: readiness thresholds, the heartbeat, and the maintenance budget (the last
    from `policy.max_maintenance_minutes_per_week`)."""

    readiness: ReadinessSettings = ReadinessSettings()
    # Seconds between heartbeats: a crash is counted from the last one, so this is the
    # precision of the downtime ledger.
    heartbeat: float = 10.0
    maintenance_budget: dt.timedelta = dt.timedelta(minutes=120)


def load_ops_settings(top: Table, *, budget_minutes: int) -> OpsSettings:
    t = top.table("ops")
    d = ReadinessSettings()
    readiness = ReadinessSettings(
        crl_margin=dt.timedelta(minutes=t.int("crl_margin_minutes", int(d.crl_margin.total_seconds() // 60), min=0)),
        responder_min_validity=dt.timedelta(days=t.int("responder_min_days", d.responder_min_validity.days, min=0)),
        signing_check_interval=dt.timedelta(minutes=t.int(
            "signing_check_minutes", int(d.signing_check_interval.total_seconds() // 60), min=1)),
    )
    beat = t.value("heartbeat_seconds", 10, (int, float), "a number of seconds")
    if not 0.1 <= beat <= 3600:
        raise t.error("heartbeat_seconds", f"{beat} is out of range (0.1 to 3600 seconds)")
    t.check_unknown()
    return OpsSettings(readiness, float(beat), dt.timedelta(minutes=budget_minutes))


class MaintenanceWatch:
    """The windows as this process last read them, read again whenever the store's change
    token moves (scheduling, starting or ending a window logs an event, from any process),
    so that the publication loop and every readiness check can ask cheaply."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._token: int | None = None
        self.windows: list[Window] = []

    async def refresh(self) -> list[Window]:
        token = await self.store.change_token()
        if token != self._token:
            self.windows = await self.store.maintenance_windows(since=self.clock.now() - WEEK)
            self._token = token
        return self.windows

    async def current(self) -> Window | None:
        return active(await self.refresh(), self.clock.now())

    async def paused(self) -> bool:
        """Writes (publication) pause during a window."""
        return await self.current() is not None


def register_repository_checks(readiness: Readiness, *, store: Store, publication, health, signers: Mapping[str, Signer],
                               watch: MaintenanceWatch) -> None:
    """The repository's own components: the store, each published CRL, each signing key and
    the maintenance state. `publication` and `health` are the scheduler's (duck-typed to keep
    this module below them)."""
    settings = readiness.settings

    async def store_check(now: dt.datetime) -> list[Component]:
        t0 = time.perf_counter()
        await store.change_token()
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return [Component("store", True, "reachable", None, {"latency_ms": ms})]

    async def crls(now: dt.datetime) -> list[Component]:
        failures = getattr(health, "failures", {})
        out = []
        for name, p in sorted(publication.crls.items()):
            if not p.served(now):
                continue
            f = failures.get(name)
            out.append(crl_component(name, number=p.record.number, next_update=p.record.next_update, now=now,
                                     margin=settings.crl_margin, failure=None if f is None else f.cause))
        for name, f in sorted(failures.items()):
            if name not in publication.crls:
                out.append(Component(f"crl:{name}", False, "failing", f.cause))
        return out

    tested: dict[str, tuple[dt.datetime, str | None]] = {}

    async def keys(now: dt.datetime) -> list[Component]:
        out = []
        for name, signer in sorted(signers.items()):
            last = tested.get(name)
            if last is None or now - last[0] >= settings.signing_check_interval:
                try:
                    # A real signature, off the event loop: an HSM or a key file that went
                    # away shows here before a CRL is due.
                    await asyncio.to_thread(signer.sign, b"pkirepo readiness " + now.isoformat().encode())
                    tested[name] = (now, None)
                except Exception as e:
                    tested[name] = (now, f"test signature failed: {type(e).__name__}: {e}")
                last = tested[name]
            figures = {"tested_at": last[0].isoformat()}
            out.append(Component(f"signing-key:{name}", last[1] is None, "usable" if last[1] is None else "failing",
                                 last[1], figures))
        return out

    async def maintenance(now: dt.datetime) -> list[Component]:
        current = await watch.current()
        if current is None:
            upcoming = [w for w in watch.windows if w.counts and w.start > now]
            figures: dict = {"active": False}
            if upcoming:
                figures["next"] = upcoming[0].start.isoformat()
            return [Component("maintenance", True, "none", None, figures, informational=True)]
        figures = {"active": True, "kind": current.kind, "since": current.start.isoformat(),
                   "until": None if current.end is None else current.end.isoformat(), "reason": current.reason}
        return [Component("maintenance", True, "in maintenance", None, figures, informational=True)]

    readiness.register("store", store_check)
    readiness.register("crl", crls)
    readiness.register("signing-key", keys)
    readiness.register("maintenance", maintenance)


@contextlib.asynccontextmanager
async def heartbeat(store: Store, clock: Clock, readiness: Readiness, interval: float) -> AsyncIterator[None]:
    """Keep the availability ledger while serving: a heartbeat row updated every `interval`
    seconds (after a crash the downtime counts from the last one), and every stretch in which
    readiness fails outside maintenance recorded as unplanned downtime."""
    now = clock.now()
    beat_id, gap = await store.start_heartbeat(at=now, alive_within=dt.timedelta(seconds=2 * interval))
    if gap is not None:
        log.warning("availability: %s; down from %s to %s (%s min)", gap.cause, gap.start.isoformat(),
                    gap.end.isoformat(), minutes(gap.end - gap.start))
    state = {"open": None}

    async def ledger(report: Report, at: dt.datetime) -> None:
        down = not report.ready and not report.maintenance
        if down and state["open"] is None:
            cause = "not ready: " + "; ".join(f"{c.name}: {c.problem or c.state}" for c in report.failing)
            state["open"] = await store.open_downtime(cause[:1000], at=at)
            log.warning("availability: %s", cause)
        elif not down and state["open"] is not None:
            await store.close_downtime(state["open"], at=at)
            state["open"] = None
            log.info("availability: ready again")

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                at = clock.now()
                await store.beat(beat_id, at=at)
                await ledger(await readiness.report(at), at)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next beat retries
                log.error("heartbeat: %s: %s", type(e).__name__, e)

    task = asyncio.create_task(loop(), name="pkirepo-heartbeat")
    try:
        yield
    finally:
        await cancel_and_wait(task)
        at = clock.now()
        try:
            if state["open"] is not None:
                await store.close_downtime(state["open"], at=at)
            await store.beat(beat_id, at=at, stopped=True)
        except Exception as e:
            log.error("heartbeat at stop: %s: %s", type(e).__name__, e)


async def availability(store: Store, *, now: dt.datetime, weeks: int, budget: dt.timedelta) -> list[dict]:
    """The weekly availability report, oldest week first, as JSON objects."""
    since = now - weeks * WEEK - WEEK
    windows = await store.maintenance_windows(since=since)
    downtime = await store.downtime(since=since)
    first = await store.first_start()
    return [w.as_json() for w in weekly_report(windows, downtime, now=now, weeks=weeks, budget=budget, since=first)]


def window_json(w: Window, now: dt.datetime) -> dict:
    return {
        "id": w.id,
        "kind": w.kind,
        "start": w.start.isoformat(),
        "end": None if w.end is None else w.end.isoformat(),
        "minutes": minutes(w.end_or(now) - w.start),
        "reason": w.reason,
        "state": ("cancelled" if not w.counts else "under way" if w.active_at(now)
                  else "announced" if w.start > now else "done"),
        "cancelled_at": None if w.cancelled_at is None else w.cancelled_at.isoformat(),
    }


async def status_document(store: Store, *, now: dt.datetime, budget: dt.timedelta, report: Report | None,
                          weeks: int = 4) -> dict:
    """`/status`: whether the service is ready or in maintenance, the windows announced and
    under way (and those of the past week), the budget, and the weekly availability."""
    windows = await store.maintenance_windows(since=now - WEEK)
    current = active(windows, now)
    used = used_in_last_week(windows, now)
    return {
        "generated_at": now.isoformat(),
        "state": ("maintenance" if current is not None else
                  "ready" if report is None or report.ready else "degraded"),
        "failing": [] if report is None else [c.name for c in report.failing],
        "maintenance": {
            "current": None if current is None else window_json(current, now),
            "announced": [window_json(w, now) for w in windows if w.counts and w.start > now],
            "recent": [window_json(w, now) for w in windows if w.start <= now and w is not current],
            "budget_minutes_per_7_days": minutes(budget),
            "used_minutes_last_7_days": minutes(used),
            "emergency_minutes_last_7_days": minutes(used_in_last_week(windows, now, EMERGENCY)),
        },
        "availability": await availability(store, now=now, weeks=weeks, budget=budget),
        # The newest signed head of the audit trail: whoever keeps a copy can later tell
        # whether the trail's newest records were cut off (`pkirepo audit verify --checkpoint`).
        "audit_checkpoint": await latest_audit_checkpoint(store),
    }


async def latest_audit_checkpoint(store: Store) -> dict | None:
    latest = await store.audit_checkpoints(limit=1)
    return latest[0].json() if latest else None
