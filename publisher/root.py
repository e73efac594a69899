"""The composition root: the only module that knows every part.

It reads the whole config once into one frozen `Settings` (the repository's own sections
plus each front-end's), builds the store and the port beside it, the signers and the clock,
and hands each front-end exactly what it uses: `setup(app, <its settings>, *, <its
dependencies>) -> list[str]` (the URL lines it serves). Front-ends never import this module
or each other; a new one (web pages, metrics, the admin API) is one more `setup` call in
`create_app` and one more section in `Settings`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from aiohttp import web

import ldap.build
import ldap.service
import ocsp.http
from ldap.settings import LdapSettings, load_ldap_settings
from ocsp.config import OcspSettings, load_ocsp_settings
from ocsp.responders import load_responders

from cryptography.hazmat.primitives.serialization import Encoding

from . import certs as certmod
from . import admin_api, http, httpedge, logs, trustlist_web
from .actor import Actor, AuditSink
from .admin_settings import AdminSettings, load_admin_settings
from .audit_settings import AuditSettings, load_audit_settings, load_checkpoint_key, load_checkpoint_keys
from .audit_trail import AuditTrail, TrailReader, checkpoint_loop, try_record, window_loop
from .clock import Clock
from .config import RepositorySettings, read_config, repository_settings
from .connections import ConnectionGuard, ServerLog
from .health import PublicationHealth
from . import worker_status
from .leader import Leadership, lock_path
from .pg_leader import DatabaseLeadership
from .metrics import Metrics
from .operations import (MaintenanceWatch, OpsSettings, heartbeat, load_ops_settings,
                         register_repository_checks, status_document)
from .readiness import Component, Readiness
from . import prewarm
from .gcpause import GcPauses
from .stallwatch import StallWatch
from .looplag import LoopLag, LoopProbeSettings, load_loop_probe_settings
from .publication import Publication
from .scheduler import publishing
from .errors import ConfigError, MalformedInput, RepoError, StoreMissing
from .service import Repository
from .signer import Signer, load_key_signer
from .pg_presigned import PgPresignedPort
from .pg_store import PgStore
from .db_settings import redact
from .sqlite_presigned import SQLitePresignedPort
from .sqlite_store import SQLiteStore
from .startup import DeferredStart
from .tasks import cancel_and_wait
from .crl import ScopeKind
from .store import CrlRecord, Issuer, PresignedPort, Store
from .trustlist_service import TrustListService
from .trustlist_settings import TrustListSettings, load_trustlist_settings, load_trustlist_signer


@dataclass(frozen=True)
class Settings(RepositorySettings):
    """The whole config: the repository's settings and one typed section per front-end."""

    ocsp: OcspSettings = field(default_factory=OcspSettings)
    ldap: LdapSettings = field(default_factory=LdapSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    trustlist: TrustListSettings | None = None  # None: no [trustlist] section, no trust list
    loop_probe: LoopProbeSettings = field(default_factory=LoopProbeSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)


def load_settings(path: Path) -> Settings:
    """Read and validate the config file; ConfigError names file, key and reason. Every
    part reads its own keys from one tree, then any key nobody read is refused as a typo."""
    top = read_config(path)
    repo = repository_settings(top)
    ocsp_settings = load_ocsp_settings(top, repo.cas)
    ldap_settings = load_ldap_settings(top, repo.cas)
    ops_settings = load_ops_settings(top, budget_minutes=repo.policy.max_maintenance_minutes_per_week)
    trustlist_settings = load_trustlist_settings(top)
    probe_settings = load_loop_probe_settings(top)
    audit_settings = load_audit_settings(top, state_dir=repo.store_path.parent)
    admin_settings = load_admin_settings(top, http_listen=repo.http.listen)
    top.check_tree()
    core = {f.name: getattr(repo, f.name) for f in dataclasses.fields(RepositorySettings)}
    return Settings(**core, ocsp=ocsp_settings, ldap=ldap_settings, ops=ops_settings, trustlist=trustlist_settings,
                    loop_probe=probe_settings, audit=audit_settings, admin=admin_settings)


def audit_trail(settings: Settings, *, store: Store, clock: Clock, signing: bool = True) -> AuditTrail:
    """The audit trail over the store; with `signing`, it signs checkpoints with the
    configured key (ConfigError naming `audit.checkpoint_key` when it cannot be loaded)."""
    key = load_checkpoint_key(settings.audit) if signing else None
    previous = load_checkpoint_keys(settings.audit).keys if key is not None else ()
    return AuditTrail(store, clock, key=key, previous=previous, checkpoint_file=settings.audit.checkpoint_file)


def trust_list_service(settings: Settings, *, store: Store, repository: Repository, clock: Clock,
                       signing: bool = False) -> TrustListService | None:
    """The trust list's service, or None without a `[trustlist]` section; `signing` loads the
    list's key (commands that change the list), serving needs none."""
    if settings.trustlist is None:
        return None
    signer = load_trustlist_signer(settings.trustlist) if signing else None
    return TrustListService(settings.trustlist, store=store, clock=clock, base_url=settings.http.base_url,
                            ca_certificate=lambda name: repository.issuer_certificate(name).public_bytes(Encoding.DER),
                            ca_names=repository.ca_names, signer=signer, audit=repository.audit)


@dataclass(frozen=True)
class ConfigReport:
    """What `pkirepo config check` found: the settings (None when the file itself does not
    load), every problem, and a line per part that was checked."""

    settings: Settings | None
    problems: list[str]
    summary: list[str]


def check_config(path: Path, now) -> ConfigReport:
    """Load and validate everything `pkirepo serve` would, without starting and without the
    store: the settings and policy, each CA certificate and signing key (with its
    passphrase), and each CA's OCSP responder. Problems of one part do not hide another's."""
    try:
        settings = load_settings(path)
    except ConfigError as e:
        return ConfigReport(None, e.message.split("\n"), [])
    problems: list[str] = []
    summary: list[str] = []
    issuers: list[Issuer] = []
    signers: dict[str, Signer] = {}
    for i, ca in enumerate(settings.cas):
        where = f"{settings.source}: ca[{i}]"
        try:
            cert = certmod.split_certificates(ca.certificate.read_bytes(), str(ca.certificate))[0]
        except OSError as e:
            problems.append(f"{where}.certificate: cannot read {ca.certificate}: {e.strerror}")
            continue
        except MalformedInput as e:
            problems.append(f"{where}.certificate: {e.message}")
            continue
        if not certmod.is_ca(cert):
            problems.append(f"{where}.certificate: {ca.certificate} is not a CA certificate (basicConstraints cA)")
            continue
        if now >= cert.not_valid_after_utc:
            problems.append(f"{where}.certificate: {ca.certificate} expired at {cert.not_valid_after_utc.isoformat()}")
        # Ids stand in for the store's: the responders only need each CA's name and certificate.
        issuers.append(Issuer(i + 1, ca.name, certmod.subject_der(cert), certmod.key_identifier(cert),
                              cert.public_bytes(Encoding.DER)))
        what = "key offline (CRLs handed in)"
        if ca.key is not None:
            try:
                signer = load_key_signer(ca.key, passphrase_file=ca.key_passphrase_file,
                                         passphrase_env=ca.key_passphrase_env, what=f"{where}.key")
            except ConfigError as e:
                problems.append(e.message)
                continue
            if signer.public_key().public_numbers() != cert.public_key().public_numbers():
                problems.append(f"{where}.key: {ca.key} does not belong to {ca.certificate}")
                continue
            signers[ca.name] = signer
            what = "signing key loaded"
        scopes = [n for n in (ca.full_crl, ca.arl) if n] + (["partitions"] if ca.partitions else [])
        summary.append(f"CA {ca.name}: {cert.subject.rfc4514_string()}, {what}; CRLs: {', '.join(scopes) or 'none'}")
    if settings.ocsp.enabled:
        # The responders' own log lines would repeat the problems reported below.
        ocsp_log = logging.getLogger("pkirepo.ocsp")
        level = ocsp_log.level
        ocsp_log.setLevel(logging.CRITICAL)
        try:
            responders = load_responders(settings.ocsp, issuers, signers)
        finally:
            ocsp_log.setLevel(level)
        for r in responders.values():
            problem = r.problem_at(now)
            if problem is not None:
                problems.append(f"{settings.source}: OCSP for {r.name}: {problem}")
            else:
                summary.append(f"OCSP {r.name}: responder ready until {r.not_after.isoformat() if r.not_after else '?'}")
    if settings.trustlist is not None:
        try:
            tl_signer = load_trustlist_signer(settings.trustlist)
        except ConfigError as e:
            problems.append(e.message)
        else:
            cert = tl_signer.certificate
            if now >= cert.not_valid_after_utc:
                problems.append(f"{settings.source}: trustlist.certificate: {settings.trustlist.certificate} expired "
                                f"at {cert.not_valid_after_utc.isoformat()}")
            summary.append(f"trust list: signed by {cert.subject.rfc4514_string()}, next update "
                           f"{settings.trustlist.next_update.days} days after each list")
    if settings.admin.enabled:
        problems += _check_admin(settings.admin, now, summary)
    try:
        key = load_checkpoint_key(settings.audit)
        previous = load_checkpoint_keys(settings.audit).keys
    except ConfigError as e:
        problems.append(e.message)
    else:
        a = settings.audit
        retired = f"; {len(previous)} retired key(s) still verify" if previous else ""
        summary.append(f"audit trail: kept {a.retention.days} days; " + (
            f"checkpoints every {int(a.checkpoint_interval.total_seconds() // 60)} min to {a.checkpoint_file}"
            if key is not None else "no checkpoint key (audit.checkpoint_key): truncation is not detectable")
            + retired)
    p = settings.policy
    summary.append(f"policy: nextUpdate <= {p.max_next_update_hours} h, revocations published within "
                   f"{p.max_revocation_publication_hours} h, ARL at least every {p.min_arl_frequency_days} days, "
                   f"archive >= {p.min_archive_years} years")
    summary.append(f"HTTP {settings.http.base_url}; LDAP {settings.ldap.listen or 'off'}; store {store_location(settings)}")
    return ConfigReport(settings, problems, summary)


def _check_admin(a: AdminSettings, now, summary: list[str]) -> list[str]:
    """The admin listener's TLS as `serve` loads it, and the dates of its certificate and
    client CAs."""
    try:
        admin_api.server_context(a)
    except ConfigError as e:
        return [e.message]
    problems = []
    cert = certmod.split_certificates(a.certificate.read_bytes(), str(a.certificate))[0]
    for key, c in [("admin.certificate", cert)] + [("admin.client_cas", ca) for ca in a.client_ca_certs]:
        if now >= c.not_valid_after_utc:
            problems.append(f"{a.source}: {key}: {c.subject.rfc4514_string()} expired at "
                            f"{c.not_valid_after_utc.isoformat()}")
    summary.append(f"admin API: https://{a.listen[0]}:{a.listen[1]}/admin/v1/, certificate until "
                   f"{cert.not_valid_after_utc.isoformat()}, {len(a.client_ca_certs)} client CA(s), "
                   f"{len(a.clients)} client grant(s), {len(a.tokens)} token(s)")
    return problems


@dataclass
class Backend:
    """The store and the port beside it, opened together and closed together."""

    store: Store
    presigned: PresignedPort | None

    async def close(self) -> None:
        await self.store.close()


async def open_backend(settings: RepositorySettings, *, create: bool = False) -> Backend:
    """Open the configured store; a missing one is an error unless `create` (explicit
    commands only: `pkirepo init`, `recover`)."""
    if settings.database is not None:
        db = settings.database
        pg = PgStore(db.url, password=db.password(), create=create, max_size=db.pool_size,
                     connect_timeout=db.connect_timeout)
        await pg.open()
        return Backend(pg, PgPresignedPort(pg))
    store = SQLiteStore(settings.store_path, create=create)
    await store.open()
    return Backend(store, SQLitePresignedPort(settings.store_path))


def make_leader(settings: RepositorySettings, backend: Backend, *,
                workers: bool) -> Leadership | DatabaseLeadership | None:
    """Who runs the background work (publication, pre-signing, pruning) in `pkirepo serve`.
    SQLite: the node's file lock among the workers of `serve --workers` (None for a single
    process). PostgreSQL: the database-wide lock, competed for by the process holding the
    node's file lock; its `run()` must run while the app does."""
    local = Leadership(lock_path(settings.store_path))
    if settings.database is None:
        return local if workers else None
    store = backend.store
    assert isinstance(store, PgStore)
    return DatabaseLeadership(store.dedicated_connection, where=store.where,
                              timeout=settings.database.leader_timeout, local=local, workers=workers)


def store_location(settings: RepositorySettings) -> str:
    """The store as messages name it: the SQLite file, or the database URL (no password)."""
    return str(settings.store_path) if settings.database is None else redact(settings.database.url)


async def repository_exists(settings: RepositorySettings) -> str | None:
    """Where the configured store already holds a repository (for `pkirepo init`, which
    only ever starts a new one), or None. SQLite: a non-empty file at store.path."""
    if settings.database is None:
        path = settings.store_path
        return str(path) if path.exists() and path.stat().st_size > 0 else None
    db = settings.database
    store = PgStore(db.url, password=db.password(), create=False, max_size=1, connect_timeout=db.connect_timeout)
    try:
        await store.open()
    except StoreMissing:
        return None
    await store.close()
    return store.where


def make_runner(app: web.Application, settings: Settings, *, shutdown_timeout: float = 10.0) -> web.AppRunner:
    """The runner `pkirepo serve` uses: aiohttp's keep-alive timer from config, and a server
    log that notes a client's malformed request in one rate-limited line."""
    return web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                         keepalive_timeout=settings.http.keepalive_timeout,
                         logger=ServerLog(logging.getLogger("pkirepo.http")))


def make_loop_probe(settings: Settings) -> LoopLag | None:
    """The event-loop lag probe `pkirepo serve` runs, or None when `[loop_probe] enabled`
    is false."""
    if not settings.loop_probe.enabled:
        return None
    pauses = GcPauses()
    pauses.install()
    stall_ms = settings.loop_probe.stall_ms
    # Checking twice per threshold finds every stall that long at half the wake-ups.
    stalls = StallWatch(stall_ms, period_ms=max(1, stall_ms // 2)) if stall_ms else None
    return LoopLag(settings.loop_probe, gc_pauses=pauses, stalls=stalls)


REPO = web.AppKey("repository", Repository)
PUBLICATION = web.AppKey("publication", Publication)
SERVED = web.AppKey("served_urls", tuple)
CONNECTIONS = web.AppKey("connections", ConnectionGuard)
READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", Metrics)
AUDIT = web.AppKey("audit", AuditTrail)


def create_app(
    settings: Settings,
    *,
    store: Store,
    signers: Mapping[str, Signer],
    clock: Clock,
    presigned: PresignedPort | None = None,
    ldap_listen: str | None = None,
    leader: Leadership | DatabaseLeadership | None = None,
    ldap_fd: int | None = None,
    loop_probe: LoopLag | None = None,
    deferred: DeferredStart | None = None,
    admin_fd: int | None = None,
    audit: AuditSink | None = None,
    audit_reader: admin_api.AuditReader | None = None,
) -> web.Application:
    """The one application. `store` must be open; the caller owns it. Without `presigned`,
    OCSP pre-signs in this process only. LDAP listens only when `ldap_listen` is given
    (`pkirepo serve` passes the configured or command-line address; "" turns it off).
    A worker of `serve --workers` passes `leader` (background work only while it holds it)
    and `ldap_fd`, the LDAP socket it inherited.
    `loop_probe` (from `make_loop_probe`) runs while the app does and is served at
    /healthz/loop and in /metrics.
    With `deferred`, the front-ends' start-ups (OCSP, LDAP: each loads from the whole store)
    run in the background so that HTTP listens at once; the caller waits on `deferred`.
    `audit` receives the admin API's refusals (the store's audit trail when None);
    `audit_reader` serves the trail at /admin/v1/audit (the store's when None)."""
    guard = ConnectionGuard(settings.http)
    metrics = Metrics()
    app = web.Application(middlewares=[logs.request_ids, guard.middleware, metrics.middleware(),
                                       http.errors_middleware],
                          client_max_size=httpedge.MAX_BODY_BYTES)
    app[CONNECTIONS] = guard
    app[METRICS] = metrics
    trail = audit_trail(settings, store=store, clock=clock)
    app[AUDIT] = trail
    repo = Repository(settings, store=store, signers=signers, clock=clock, audit=trail)
    publication = Publication(repo)
    health = PublicationHealth()
    app[REPO] = repo
    app[PUBLICATION] = publication
    ops = settings.ops
    readiness = Readiness(ops.readiness)
    app[READINESS] = readiness
    watch = MaintenanceWatch(store, clock)
    register_repository_checks(readiness, store=store, publication=publication, health=health, signers=signers,
                               watch=watch)
    if leader is not None and leader.workers:
        # A worker of `serve --workers`: the supervisor's state (crash loop, workers missing).
        readiness.register("workers", worker_status.readiness_check(worker_status.status_path(settings.store_path)))
    if isinstance(leader, DatabaseLeadership):
        readiness.register("publisher", publisher_check(leader))

    async def repository_context(app: web.Application):
        # First of the contexts: the issuers are in the store before OCSP and LDAP start.
        # During a maintenance window publication pauses; reads go on.
        async with publishing(repo, publication, health=health, paused=watch.paused, leader=leader):
            yield

    async def audit_context(app: web.Application):
        # No reload path: each process reads the config once, at start, and says so.
        try:
            digest = hashlib.sha256(await asyncio.to_thread(settings.source.read_bytes)).hexdigest()
        except OSError:
            digest = None  # read at start already; gone since
        await try_record(trail, Actor("system", "pkirepo"), "config-load", f"config {settings.source}", "ok",
                         {"sha256": digest})
        a = settings.audit
        leading = None if leader is None else leader.try_acquire
        tasks = [asyncio.create_task(checkpoint_loop(trail, a.checkpoint_interval, a.retention, leading=leading),
                                     name="pkirepo-audit-checkpoints"),
                 asyncio.create_task(window_loop(trail, leading=leading), name="pkirepo-audit-windows")]
        try:
            yield
        finally:
            await cancel_and_wait(*tasks)

    async def ledger_context(app: web.Application):
        async with heartbeat(store, clock, readiness, ops.heartbeat):
            yield

    async def status(now):
        return await status_document(store, now=now, budget=ops.maintenance_budget,
                                     report=await readiness.report(now))

    async def sample(m: Metrics) -> None:
        now = clock.now()
        for name, p in publication.crls.items():
            if p.served(now):
                m.crl_seconds.labels(name).set((p.record.next_update - now).total_seconds())
                m.crl_number.labels(name).set(p.record.number)
        report = await readiness.report(now)
        m.ready.set(1 if report.ready else 0)
        for c in report.components:
            m.component.labels(c.name).set(1 if c.ready else 0)
            if c.name == "ocsp:presigned":
                # Whatever figures the responder reports (hits, signed, loaded, nonce; coverage
                # and backlog once it reports them).
                for figure, value in c.figures.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        m.presign.labels(figure).set(value)
        m.maintenance_active.set(1 if report.maintenance else 0)
        doc = await status_document(store, now=now, budget=ops.maintenance_budget, report=report, weeks=1)
        m.maintenance_minutes.labels("scheduled").set(doc["maintenance"]["used_minutes_last_7_days"])
        m.maintenance_minutes.labels("emergency").set(doc["maintenance"]["emergency_minutes_last_7_days"])
        m.maintenance_budget.set(doc["maintenance"]["budget_minutes_per_7_days"])

    metrics.add_sampler(sample)
    metrics.loop_probe = loop_probe
    if loop_probe is not None:
        async def loop_probe_context(app: web.Application):
            # First, so that it measures the start-up of everything after it too.
            task = asyncio.create_task(loop_probe.run(), name="pkirepo-loop-probe")
            try:
                yield
            finally:
                await cancel_and_wait(task)

        app.cleanup_ctx.append(loop_probe_context)
    if settings.database is None and settings.store_prewarm:
        app.cleanup_ctx.append(store_prewarm_context(settings.store_path))
    app.cleanup_ctx.append(audit_context)
    app.cleanup_ctx.append(repository_context)
    ldap_settings = settings.ldap.listening_on(ldap_listen) if ldap_listen is not None else None
    lines = http.setup(app, settings.http, repository=repo, publication=publication, clock=clock,
                       health=health, readiness=readiness, status=status, metrics=metrics,
                       loop_probe=loop_probe,
                       ocsp_url=f"{settings.http.base_url}/ocsp" if settings.ocsp.enabled else None,
                       crl_ldap_url=(crl_ldap_urls(ldap_settings, settings.http.base_url, repo)
                                     if ldap_settings is not None and ldap_settings.enabled else None))
    own = len(app.cleanup_ctx)
    lines += ocsp.http.setup(app, settings.ocsp, store=store, presigned=presigned, signers=signers,
                             ca_names=repo.ca_names, clock=clock, base_url=settings.http.base_url,
                             readiness=readiness, observe=metrics.observe_ocsp, audit=trail,
                             leading=None if leader is None else leader.try_acquire)
    if ldap_settings is not None:
        lines += ldap.service.setup(app, ldap_settings, store=store,
                                    base_url=settings.http.base_url, readiness=readiness,
                                    observe=metrics.observe_ldap, listen_fd=ldap_fd)
    if deferred is not None:
        # Only the contexts OCSP and LDAP registered just above: they load from the whole
        # store. Parts registered after this must not be deferred with them.
        for i in range(own, len(app.cleanup_ctx)):
            ctx = app.cleanup_ctx[i]
            app.cleanup_ctx[i] = deferred.defer(ctx, getattr(ctx, "__name__", f"part {i}").removesuffix("_context"))
    lines += trustlist_web.setup(app, settings.trustlist, clock=clock, base_url=settings.http.base_url,
                                 service=trust_list_service(settings, store=store, repository=repo, clock=clock))
    # The admin API: its own TLS listener (a worker of `serve --workers` inherits it as
    # `admin_fd`, like HTTP), changes through the same service layer as the CLI.
    lines += admin_api.setup(app, settings.admin, repository=repo, clock=clock, audit=audit or trail,
                             trustlist=(trust_list_service(settings, store=store, repository=repo, clock=clock,
                                                           signing=True) if settings.admin.enabled else None),
                             audit_reader=audit_reader or TrailReader(store), listen_fd=admin_fd, http_port=settings.http.listen[1])
    # Last of the contexts: the ledger counts the service up once HTTP listens (OCSP and LDAP
    # may still be starting: readiness says so), and its heartbeat stops first at shutdown.
    app.cleanup_ctx.append(ledger_context)
    app[SERVED] = tuple(lines)
    return app


def publisher_check(leader: DatabaseLeadership):
    """Whether this node publishes for the shared store (informational: a node that does
    not is as ready as one that does)."""
    async def check(now) -> list[Component]:
        publishing = leader.try_acquire()
        figures = {"publishing": publishing}
        if publishing and leader.acquired_at is not None:
            figures["since"] = dt.datetime.fromtimestamp(leader.acquired_at, dt.timezone.utc).isoformat()
        return [Component("publisher", True, "this node" if publishing else "another node", None, figures,
                          informational=True)]

    return check


def store_prewarm_context(store_path: Path):
    """Reads the store file into the page cache in a child process while the server serves
    (never in this one: see publisher.prewarm on POSIX locks)."""
    async def store_prewarm(app: web.Application):
        log = logging.getLogger("pkirepo")
        proc = await asyncio.create_subprocess_exec(
            *prewarm.command(store_path), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)

        async def report() -> None:
            out, _ = await proc.communicate()
            fields = out.decode(errors="replace").split()
            if proc.returncode == 0 and len(fields) == 2:
                log.info("store file read into the page cache: %.0f MB in %s s", int(fields[0]) / 1e6, fields[1])
            elif proc.returncode and proc.returncode > 0:
                log.warning("reading the store file into the page cache failed (exit code %d)", proc.returncode)

        task = asyncio.create_task(report(), name="pkirepo-store-prewarm")
        try:
            yield
        finally:
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            await cancel_and_wait(task)
            try:
                await proc.wait()
            except Exception:  # noqa: BLE001 - already gone
                pass
    return store_prewarm


def crl_ldap_urls(ldap_settings: LdapSettings, base_url: str, repo: Repository) -> Callable[[CrlRecord], str | None]:
    """The ldap:// URL (RFC 4516) of each CRL's directory entry, for the web pages: the same
    DN the directory gives it, on the HTTP host name and the LDAP port."""
    from urllib.parse import quote, urlsplit

    host = urlsplit(base_url).hostname or ldap_settings.host_port[0]
    shown = f"[{host}]" if ":" in host else host
    port = ldap_settings.host_port[1]
    layout = ldap_settings.layout
    # A scope's entry never moves while the process runs (its CA's certificate and the
    # layout are fixed at start): computed once per scope, not on every page view.
    known: dict[int, str] = {}

    def url(record: CrlRecord) -> str | None:
        if record.scope.id in known:
            return known[record.scope.id]
        try:
            issuers = ldap.build.configured_issuers(layout, [repo.issuer(n) for n in repo.ca_names])
        except RepoError:  # a CA not in the store yet: the page shows the CRL without it
            return None
        _, base = ldap.build.default_suffix_base(layout, issuers)
        info = next((i for i in ldap.build.ca_infos(layout, issuers, base) if i.issuer.id == record.scope.issuer_id),
                    None)
        if info is None:
            return None
        dn = ldap.build.crl_dn(layout, info, record, base)
        attr = ("authorityRevocationList;binary" if record.scope.kind is ScopeKind.ARL
                else "certificateRevocationList;binary")
        known[record.scope.id] = f"ldap://{shown}:{port}/{quote(dn, safe='=,')}?{quote(attr, safe=';')}?base"
        return known[record.scope.id]

    return url
