"""Readiness: one report from every part of the service, each saying whether it can do its
job and with which figures. The composition root creates a `Readiness`, registers the
repository's own checks and hands it to each front-end's `setup`, which registers its own;
`/readyz`, `pkirepo health` and the availability ledger read the same report. Pure: checks
are callables given `now`; nothing here does I/O itself."""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .errors import RepoError


@dataclass(frozen=True)
class ReadinessSettings:
    """`[ops]` keys that say what ready means."""

    # A CRL is current while now is before its nextUpdate minus this margin.
    crl_margin: dt.timedelta = dt.timedelta(minutes=60)
    # An OCSP responder certificate must stay valid for more than this.
    responder_min_validity: dt.timedelta = dt.timedelta(days=7)
    # A signing key's test signature is redone at most this often.
    signing_check_interval: dt.timedelta = dt.timedelta(minutes=10)
    # A check that takes longer than this counts as failing.
    check_timeout: float = 5.0


@dataclass(frozen=True)
class Component:
    """One part's state: `ready`, a short `state`, the `problem` when not ready, and figures."""

    name: str
    ready: bool
    state: str = "ok"
    problem: str | None = None
    figures: dict = field(default_factory=dict)
    # True for a component that reports and never fails readiness (the maintenance state).
    informational: bool = False

    def as_json(self) -> dict:
        out: dict = {"ready": self.ready, "state": self.state}
        if self.problem:
            out["problem"] = self.problem
        out.update(self.figures)
        return out


Check = Callable[[dt.datetime], Awaitable[list[Component]]]


@dataclass(frozen=True)
class Report:
    checked_at: dt.datetime
    components: tuple[Component, ...]
    maintenance_until: dt.datetime | None = None
    maintenance: bool = False

    @property
    def failing(self) -> list[Component]:
        return [c for c in self.components if not c.ready]

    @property
    def ready(self) -> bool:
        return not self.failing

    @property
    def http_status(self) -> int:
        """503 naming the failing components; during maintenance 200 (reads are served)."""
        return 200 if self.ready or self.maintenance else 503

    def as_json(self) -> dict:
        return {
            "ready": self.ready,
            "maintenance": self.maintenance,
            "maintenance_until": None if self.maintenance_until is None else self.maintenance_until.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "failing": [f"{c.name}: {c.problem or c.state}" for c in self.failing],
            "components": {c.name: c.as_json() for c in self.components},
        }


class Readiness:
    """The registry of readiness checks. A check that raises or overruns its time is one
    failing component naming why, never a failed report."""

    def __init__(self, settings: ReadinessSettings | None = None) -> None:
        self.settings = settings or ReadinessSettings()
        self._checks: list[tuple[str, Check]] = []

    def register(self, name: str, check: Check) -> None:
        self._checks.append((name, check))

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self._checks]

    async def report(self, now: dt.datetime) -> Report:
        async def run(name: str, check: Check) -> list[Component]:
            try:
                return await asyncio.wait_for(check(now), self.settings.check_timeout)
            except asyncio.TimeoutError:
                return [Component(name, False, "timeout", f"no answer within {self.settings.check_timeout:g} s")]
            except RepoError as e:
                return [Component(name, False, "failing", e.message)]
            except Exception as e:
                return [Component(name, False, "failing", f"{type(e).__name__}: {e}")]

        results = await asyncio.gather(*(run(n, c) for n, c in self._checks))
        components = tuple(c for group in results for c in group)
        maintenance = next((c for c in components if c.name == "maintenance"), None)
        until = None
        active = False
        if maintenance is not None and maintenance.figures.get("active"):
            active = True
            text = maintenance.figures.get("until")
            until = dt.datetime.fromisoformat(text) if text else None
        return Report(now, components, until, active)


def crl_component(name: str, *, number: int, next_update: dt.datetime, now: dt.datetime,
                  margin: dt.timedelta, failure: str | None = None) -> Component:
    """A published CRL is current while now is before its nextUpdate minus `margin`, and its
    scope's issuance is not failing."""
    left = (next_update - now).total_seconds()
    figures = {"crl_number": number, "next_update": next_update.isoformat(), "seconds_to_next_update": int(left)}
    if now >= next_update - margin:
        return Component(f"crl:{name}", False, "stale",
                         f"nextUpdate {next_update.isoformat()} is within the readiness margin of "
                         f"{int(margin.total_seconds() // 60)} min" if left > 0 else
                         f"expired: nextUpdate {next_update.isoformat()} has passed", figures)
    if failure is not None:
        return Component(f"crl:{name}", False, "failing", failure, figures)
    return Component(f"crl:{name}", True, "current", None, figures)
