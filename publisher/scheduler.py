"""The repository's own background work while it serves: at start, issuers from config, the
publication directory matched to the store and catch-up issuance; then, once a second,
whatever is due (the daily CRLs, supplementary CRLs after a change, renewals) and the daily
archive pruning. Errors are logged (at a bounded rate) and shown in the publication
health; the next tick retries, and a failing scope never holds up the others."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable

from .errors import RepoError
from .health import PublicationHealth
from .publication import Publication
from .service import Repository
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .leader import Leadership

log = logging.getLogger("pkirepo.http")


@contextlib.asynccontextmanager
async def publishing(repo: Repository, publication: Publication, *, interval: float = 1.0,
                     health: PublicationHealth | None = None,
                     paused: Callable[[], Awaitable[bool]] | None = None,
                     leader: Leadership | None = None) -> AsyncIterator[None]:
    """Start-up, then the publication loop in the background until the block ends; `health`
    receives how each round went; while `paused()` (a maintenance window) nothing is issued.
    With `leader` (several workers on one store), only the worker holding it issues, repairs
    and prunes; every worker follows what is published."""
    await repo.sync_issuers()
    # Refuses to start (StoreBehind) when the store is older than what was published.
    await repo.check_published()
    # Every node keeps its own publication directory: the process that owns it repairs it,
    # whether or not it publishes (with PostgreSQL another node may).
    if leader is None or leader.owns_directory():
        await _repair(repo)
    await publication.refresh(force=True)
    task = asyncio.create_task(publication_loop(repo, publication, interval=interval, health=health,
                                                paused=paused, leader=leader),
                               name="pkirepo-publication")
    try:
        yield
    finally:
        await cancel_and_wait(task)


async def _repair(repo: Repository) -> None:
    crls, documents = await repo.repair_published()
    for n, what in ((crls, "CRL"), (documents, "document")):
        if n:
            log.warning("publication directory was behind the store: rewrote %d %s file(s)", n, what)


async def publication_loop(repo: Repository, pub: Publication, *, interval: float = 1.0,
                           health: PublicationHealth | None = None,
                           paused: Callable[[], Awaitable[bool]] | None = None,
                           leader: Leadership | None = None) -> None:
    """Once a second: notice changes from any process, issue what is due (catch-up on the
    first pass), prune the archive daily. Each scope is issued on its own: one that fails is
    reported in `health` and the log, and the others go on. With `leader`, a worker that
    does not hold it only notices changes; it tries to take the lock at every round, so it
    takes over within a round of the holder's death."""
    health = health if health is not None else PublicationHealth()
    last_prune: dt.date | None = None
    while True:
        problems: dict[str, str] = {}
        errors: dict[str, BaseException] = {}
        try:
            if paused is not None and await paused():
                # Maintenance: what is due is issued once the window ends. The publication
                # shown stays current with other processes' changes meanwhile.
                await pub.refresh()
                await repo.store.wait_for_change(interval)
                continue
            leading = leader is None or leader.try_acquire()
            if leading:
                # Asked again before each CRL: a node that lost its leadership stops at once.
                result = await repo.publish_due(leading=None if leader is None else leader.try_acquire)
                for name, e in result.failed.items():
                    problems[name], errors[name] = _cause(e), e
                for name, why in result.unconfigured.items():
                    problems[name] = f"{why} (this server runs with the configuration it started with)"
            # Issuing logs an event, so the change token moves and this picks it up too.
            if await pub.refresh() and (leader is None or leader.owns_directory()):
                # Another process (a CLI `publish` that died between recording a CRL and
                # writing its file) may have left the directory behind the store; with
                # PostgreSQL, another node may have issued the CRL: its file is written here.
                await _repair(repo)
            today = repo.clock.now().date()
            if leading and last_prune != today:
                pruned = await repo.prune_archive()
                if pruned:
                    log.info("pruned %d archived CRL(s) past retention", pruned)
                last_prune = today
        except asyncio.CancelledError:
            raise
        except Exception as e:
            problems[WHOLE_ROUND], errors[WHOLE_ROUND] = _cause(e), e
        for line in health.record(repo.clock.now(), problems):
            e = errors.get(line.scope)
            # A traceback helps only for a fault of ours, and only the first time.
            trace = e if line.first and e is not None and not isinstance(e, RepoError) else None
            if line.level == "info":
                log.info("publication: %s", line.text)
            else:
                log.error("publication: %s", line.text, exc_info=trace)
        # The next round comes at the next change by any process or node (a revocation that
        # makes a supplementary CRL due), or after `interval`.
        await repo.store.wait_for_change(interval)


WHOLE_ROUND = "publication"


def _cause(e: BaseException) -> str:
    return e.message if isinstance(e, RepoError) else f"internal error ({type(e).__name__}: {e})"
