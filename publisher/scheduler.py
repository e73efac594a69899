"""The repository's own background work while it serves: at start, issuers from config, the
publication directory matched to the store and catch-up issuance; then, once a second,
whatever is due (the daily CRLs, supplementary CRLs after a change, renewals) and the daily
archive pruning. Errors are logged and the next tick retries."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import AsyncIterator

from .files import remove_stale_temporaries
from .publication import Publication
from .service import Repository
from .tasks import cancel_and_wait

log = logging.getLogger("pkirepo.http")


@contextlib.asynccontextmanager
async def publishing(repo: Repository, publication: Publication, *, interval: float = 1.0) -> AsyncIterator[None]:
    """Start-up, then the publication loop in the background until the block ends."""
    await repo.sync_issuers()
    remove_stale_temporaries(repo.settings.publication_dir)
    # Refuses to start (StoreBehind) when the store is older than what was published.
    await repo.check_published()
    rewritten = await repo.sync_files()
    if rewritten:
        log.warning("publication directory was behind the store: rewrote %d CRL file(s)", rewritten)
    await publication.refresh(force=True)
    task = asyncio.create_task(publication_loop(repo, publication, interval=interval), name="pkirepo-publication")
    try:
        yield
    finally:
        await cancel_and_wait(task)


async def publication_loop(repo: Repository, pub: Publication, *, interval: float = 1.0) -> None:
    """Once a second: notice changes from any process, issue what is due (catch-up on the
    first pass), prune the archive daily."""
    last_prune: dt.date | None = None
    while True:
        try:
            await repo.issue_due()
            # Issuing logs an event, so the change token moves and this picks it up too.
            if await pub.refresh():
                # Another process (a CLI `publish` that died between recording a CRL and
                # writing its file) may have left the directory behind the store.
                await asyncio.to_thread(remove_stale_temporaries, repo.settings.publication_dir)
                repaired = await repo.sync_files()
                if repaired:
                    log.warning("publication directory was behind the store: rewrote %d CRL file(s)", repaired)
            today = repo.clock.now().date()
            if last_prune != today:
                pruned = await repo.prune_archive()
                if pruned:
                    log.info("pruned %d archived CRL(s) past retention", pruned)
                last_prune = today
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("publication loop: will retry")
        await asyncio.sleep(interval)
