"""Prometheus metrics (`GET /metrics`, text format, with prometheus-client).

Counters and histograms move as requests are answered; gauges (seconds to each CRL's
nextUpdate, CRL numbers, maintenance minutes, readiness, pre-signing figures, event-loop
lag) are set from samplers run just before each scrape, so nothing is computed between
scrapes. With `PROMETHEUS_MULTIPROC_DIR` set before the process starts, prometheus-client
keeps the values in files shared by worker processes and a scrape merges them; that mode
allows no custom collectors, Info, Enum or `set_function`, so none are used."""
from __future__ import annotations

import os
import time
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Latency buckets in seconds: OCSP and CRL answers are served in milliseconds; the top
# buckets catch a loop held up.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Sampler = Callable[["Metrics"], Awaitable[None]]


class Metrics:
    """The service's metrics on a registry of their own (several applications in one test
    process never clash); in multiprocess mode the values go to the shared files and a
    scrape collects them from there."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = None if MULTIPROCESS else self.registry
        gauge_mode = {"multiprocess_mode": "mostrecent"} if MULTIPROCESS else {}
        self.requests = Counter("pkirepo_http_requests", "HTTP requests answered, by route and status",
                                ["route", "method", "status"], registry=reg)
        self.latency = Histogram("pkirepo_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                                 ["route"], buckets=BUCKETS, registry=reg)
        self.ocsp = Counter("pkirepo_ocsp_responses", "OCSP answers by responseStatus and by how they were made "
                            "(presigned, fresh, error)", ["status", "source"], registry=reg)
        self.ldap = Counter("pkirepo_ldap_operations", "LDAP operations answered, by type and result code",
                            ["operation", "result"], registry=reg)
        self.crl_seconds = Gauge("pkirepo_crl_seconds_to_next_update", "Seconds until a published CRL's nextUpdate",
                                 ["crl"], registry=reg, **gauge_mode)
        self.crl_number = Gauge("pkirepo_crl_number", "CRL number of the published CRL", ["crl"], registry=reg,
                                **gauge_mode)
        self.ready = Gauge("pkirepo_ready", "1 when every component is ready", registry=reg, **gauge_mode)
        self.component = Gauge("pkirepo_component_ready", "1 when the component is ready", ["component"],
                               registry=reg, **gauge_mode)
        self.maintenance_active = Gauge("pkirepo_maintenance_active", "1 during a maintenance window", registry=reg,
                                        **gauge_mode)
        self.maintenance_minutes = Gauge("pkirepo_maintenance_minutes_7d",
                                         "Maintenance minutes in the rolling 7 days, by kind", ["kind"],
                                         registry=reg, **gauge_mode)
        self.maintenance_budget = Gauge("pkirepo_maintenance_budget_minutes",
                                        "Scheduled maintenance allowed in any rolling 7 days", registry=reg,
                                        **gauge_mode)
        self.presign = Gauge("pkirepo_ocsp_presign", "OCSP pre-signing figures: hits, signed, loaded, nonce, and "
                             "coverage and backlog when the responder reports them", ["figure"], registry=reg,
                             **gauge_mode)
        self.loop_lag = Gauge("pkirepo_event_loop_lag_seconds", "Worst event-loop lag seen by the in-server probe",
                              registry=reg, **gauge_mode)
        self.start_time = Gauge("pkirepo_process_start_time_seconds", "Start time of the process, Unix seconds",
                                registry=reg, **({"multiprocess_mode": "min"} if MULTIPROCESS else {}))
        self.start_time.set(time.time())
        self._samplers: list[Sampler] = []
        # A loop-lag probe (an object with `worst_ms`) the composition root may attach.
        self.loop_probe: object | None = None

    def add_sampler(self, sampler: Sampler) -> None:
        self._samplers.append(sampler)

    def observe_ocsp(self, status: str, source: str) -> None:
        self.ocsp.labels(status, source).inc()

    def observe_ldap(self, operation: str, result: str) -> None:
        self.ldap.labels(operation, result).inc()

    async def render(self) -> bytes:
        for sampler in self._samplers:
            await sampler(self)
        worst = getattr(self.loop_probe, "worst_ms", None)
        if worst is not None:
            self.loop_lag.set(worst / 1000)
        if MULTIPROCESS:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def middleware(self):
        """Counts and times every request by its route (the pattern, never the raw path: a
        label per URL would grow without bound)."""

        @web.middleware
        async def count(request: web.Request, handler):
            t0 = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as e:
                status = e.status
                raise
            finally:
                info = request.match_info.route.resource if request.match_info is not None else None
                route = info.canonical if info is not None else "(unmatched)"
                self.requests.labels(route, request.method if request.method in _METHODS else "other",
                                     str(status)).inc()
                self.latency.labels(route).observe(time.perf_counter() - t0)

        return count

    async def handler(self, request: web.Request) -> web.Response:
        body = await self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
