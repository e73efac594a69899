"""`PreSigner`: the background loop that keeps pre-signed answers ready before anyone asks.

Each round signs, in bounded batches:
1. the certificates the change log named (revoked, held, released): O(changed);
2. the certificates that have no answer yet (at start, and after certificates were added):
   an index walk in the store, never a walk over Python objects on the event loop;
3. the answers whose refresh time has come, earliest first (an index on `refresh_at`). Refresh
   times are spread per serial, so a steady state signs a trickle, not a burst.
Signing happens in the `SigningPool` (worker processes); the loop only plans jobs, receives
bytes and hands rows to the store's thread. Saves are conditional on the certificate's state
at signing time, and memory is only warmed when no change was applied meanwhile, so that a
revocation racing a batch is never overwritten by a stale "good" answer.

Without a shared table (no `presigned` port) only the changed certificates are signed ahead;
everything else is signed on first request and kept in the bounded cache.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from publisher.clock import Clock
from publisher.store import DueAnswer, PresignedResponses, Status, Store

from .answer_cache import AnswerCache
from .answer_signer import AnswerSigner
from .batch_signer import SignJob
from .change_follower import ChangeFollower
from .config import OcspSettings
from .entry import HASH_BY_NAME, Entry
from .errors import ResponderNotReady
from .responders import IssuerResponder
from .source import CertState, StatusSource

log = logging.getLogger("pkirepo.ocsp")

#: Answers per batch: what the loop handles between two awaits is proportional to this
#: (about 10 µs per answer: planning, the Entry, the row), so a batch stays a few ms.
BATCH = 128
#: Batches of due answers per round at most; the next round goes on where this one stopped.
MAX_DUE_BATCHES = 400
#: Seconds between two counts of the store's answers (a count reads the whole index).
COUNT_EVERY = 60.0


@dataclass
class Coverage:
    """How far pre-signing is: answers stored, answers wanted (certificates × CertID hashes),
    answers due now, and whether a walk for missing answers has found none left."""

    answers: int = 0
    wanted: int = 0
    due: int = 0
    complete: bool = False
    counted: bool = False
    # Another worker or node pre-signs (it holds the background work): this process's own
    # figures would be those of a pre-signer that never ran.
    elsewhere: bool = False

    @property
    def backlog(self) -> int:
        return max(0, self.wanted - self.answers) + self.due

    def figures(self) -> dict[str, int | str]:
        """The numbers behind `line`, for readiness and metrics; none while another process
        pre-signs (only who does), so that this one's zeros never stand for its figures."""
        if self.elsewhere:
            return {"presigning": "by the worker or node that runs the background work"}
        return {"presigned_answers": self.answers, "presigned_wanted": self.wanted,
                "presign_backlog": self.backlog, "presign_complete": int(self.complete)}

    def line(self) -> str:
        if self.elsewhere:
            return ("pre-signing: done by the worker or node that runs the background work; "
                    "this one answers from the answers it stores")
        if not self.counted:
            return "pre-signing: starting"
        state = "complete" if self.complete else "in progress"
        return f"pre-signing: {state}, {self.answers} of {self.wanted} answers stored, backlog {self.backlog}"


class PreSigner:
    """Signs ahead of requests into `table` and `cache`, for every CA in `responders`."""

    def __init__(
        self,
        settings: OcspSettings,
        *,
        store: Store,
        source: StatusSource,
        clock: Clock,
        responders: dict[int, IssuerResponder],
        table: PresignedResponses | None,
        cache: AnswerCache,
        signer: AnswerSigner,
        follower: ChangeFollower,
        batch: int = BATCH,
    ) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.clock = clock
        self.responders = responders
        self.table = table
        self.cache = cache
        self.signer = signer
        self.follower = follower
        self.batch = batch
        self.coverage = Coverage()
        self._walk_missing = True
        self._check_stale = True
        self._counted_at: float | None = None
        self._hashes = [h.hashlib_name for h in settings.presign_hashes]
        # Set when a round stopped with answers still due, so that the next starts at once.
        self._more = False

    async def run(self, *, jitter: float = 1.0, sleep: Callable[[float], object] = asyncio.sleep) -> None:
        """The background loop: re-sign changed certificates at once, everything else when
        its refresh comes. Errors are logged; the next round retries."""
        await sleep(random.uniform(0, jitter))
        while True:
            more = False
            try:
                await self.run_once()
                more = self._more
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("OCSP pre-signing: will retry")
            self.follower.wake.clear()
            if more:
                continue
            timeout = min(60.0, self.settings.scan_interval.total_seconds())
            try:
                await asyncio.wait_for(self.follower.wake.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    async def run_once(self, *, full: bool = False) -> int:
        """One round: changed certificates first, then (at start, after additions, or with
        `full`) the missing answers, then the due ones. Returns how many answers were signed."""
        await self.follower.ensure_current()
        signed = await self._presign_changed()
        self._more = False
        if self.table is None:
            return signed
        now = self.clock.now()
        signable = {i: r for i, r in self.responders.items() if r.problem_at(now) is None}
        if self._check_stale:
            for issuer_id, r in signable.items():
                n = await self.table.mark_stale(issuer_id, r.identity.key_hash)
                if n:
                    log.info("OCSP: %d stored answer(s) for %s changed while not followed: signing again", n, r.name)
            self._check_stale = False
        if full or self._walk_missing or self.follower.added:
            self.follower.added = False
            self._walk_missing = False
            signed += await self._presign_missing(signable)
        signed += await self._presign_due(signable)
        await self._count()
        if signed:
            log.info("OCSP: pre-signed %d response(s); %s", signed, self.coverage.line())
        return signed

    # Planning and signing

    def _jobs(self, rows: Sequence[DueAnswer], now: dt.datetime) -> list[SignJob]:
        jobs = []
        for row in rows:
            responder = self.responders.get(row.issuer_id)
            alg = HASH_BY_NAME.get(row.hash_name)
            if responder is None or alg is None:
                continue
            state = CertState(Status(row.status), row.reason, row.revoked_at)
            try:
                jobs.append(self.signer.plan((row.issuer_id, row.serial, alg), state, responder, now))
            except ResponderNotReady:
                continue
        return jobs

    async def _sign(self, jobs: Sequence[SignJob]) -> list[Entry]:
        return await self.signer.sign_entries(jobs)

    async def _keep(self, entries: Sequence[Entry], epoch: int, *, remember: bool = False) -> int | None:
        """Save entries (conditionally on their certificates' state) and keep them in memory
        unless a change was applied since their states were read."""
        await asyncio.sleep(0)  # let requests in between making the entries and the rows
        saved = await self.cache.save(entries)
        await self.follower.ensure_current()  # applies any change committed meanwhile (bumps epoch)
        if epoch == self.cache.epoch:
            if remember:
                for e in entries:
                    self.cache.remember(e)
            else:
                self.cache.warm(entries)
        return saved

    async def _presign_changed(self) -> int:
        changed = self.follower.changed
        signed = 0
        while changed:
            epoch = self.cache.epoch
            pairs = [changed.pop() for _ in range(min(len(changed), self.batch // max(1, len(self._hashes))))]
            now = self.clock.now()
            jobs = []
            for issuer_id, serial in pairs:
                responder = self.responders.get(issuer_id)
                if responder is None or responder.problem_at(now) is not None:
                    continue
                state = await self.source.state(issuer_id, serial)
                for alg in self.settings.presign_hashes:
                    jobs.append(self.signer.plan((issuer_id, serial, alg), state, responder, now))
            entries = await self._sign(jobs)
            await self._keep([e for e in entries if e.state.issued], epoch, remember=True)
            signed += len(entries)
        return signed

    async def _presign_missing(self, signable: dict[int, IssuerResponder]) -> int:
        """Walk the store for certificates without answers, signing one batch while the
        previous one is saved."""
        signed = 0
        complete = True
        saving: asyncio.Task | None = None
        try:
            for issuer_id in signable:
                for hash_name in self._hashes:
                    after = -1
                    while True:
                        epoch = self.cache.epoch
                        rows = await self.table.missing(issuer_id, hash_name, after, self.batch)
                        if not rows:
                            break
                        after = rows[-1].serial
                        entries = await self._sign(self._jobs(rows, self.clock.now()))
                        signed += len(entries)
                        if saving is not None and await saving is None:
                            complete = False
                        saving = asyncio.create_task(self._keep(entries, epoch))
                        if len(rows) < self.batch:
                            break
            if saving is not None and await saving is None:
                complete = False
            saving = None
        finally:
            if saving is not None:
                saving.cancel()
        self.coverage.complete = complete
        self._counted_at = None  # count again now
        return signed

    async def _presign_due(self, signable: dict[int, IssuerResponder]) -> int:
        signed = 0
        issuers = list(signable)
        for _ in range(MAX_DUE_BATCHES):
            epoch = self.cache.epoch
            now = self.clock.now()
            rows = await self.table.due(now, issuers, self._hashes, self.batch)
            if not rows:
                return signed
            jobs = self._jobs(rows, now)
            if not jobs:
                return signed
            entries = await self._sign(jobs)
            signed += len(entries)
            if await self._keep(entries, epoch) is None:  # the store cannot be written: retry later
                return signed
            if len(rows) < self.batch:
                return signed
        self._more = True  # a large backlog: go on at once, after a look at the change log
        return signed

    async def _count(self) -> None:
        mono = time.monotonic()
        if self._counted_at is not None and mono - self._counted_at < COUNT_EVERY:
            return
        self._counted_at = mono
        answers, wanted, due = await self.table.coverage(self._hashes, self.clock.now())
        c = self.coverage
        c.answers, c.wanted, c.due, c.counted = answers, wanted, due, True
