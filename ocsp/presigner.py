"""`PreSigner`: the background loop that keeps pre-signed answers ready before anyone asks.

Each round signs the certificates the change log named first, then, every `scan_interval`,
walks every certificate page by page: an answer with a usable pre-signed row is kept, any
other is signed and saved; both warm the memory cache while it has room. Errors are logged
and the next round retries.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable

from publisher.clock import Clock
from publisher.store import PresignedResponses, Store

from .answer_cache import AnswerCache
from .answer_signer import AnswerSigner
from .change_follower import ChangeFollower
from .config import OcspSettings
from .entry import HASH_BY_NAME, Entry, row_usable
from .responders import IssuerResponder
from .source import CertState, StatusSource

log = logging.getLogger("pkirepo.ocsp")


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
        self._next_scan: dt.datetime | None = None

    async def run(self, *, jitter: float = 1.0, sleep: Callable[[float], object] = asyncio.sleep) -> None:
        """The background loop: re-sign changed certificates at once, everything else when
        its refresh comes. Errors are logged; the next round retries."""
        await sleep(random.uniform(0, jitter))
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("OCSP pre-signing: will retry")
            self.follower.wake.clear()
            timeout = min(60.0, self.settings.scan_interval.total_seconds())
            try:
                await asyncio.wait_for(self.follower.wake.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    async def run_once(self, *, full: bool = False) -> int:
        """One round: changed certificates first, then (when due, or with `full`) a scan of
        every certificate. Returns how many answers were signed."""
        await self.follower.ensure_current()
        changed = self.follower.changed
        signed = 0
        while changed:
            issuer_id, serial = changed.pop()
            signed += await self._presign_cert(issuer_id, serial)
        now = self.clock.now()
        if full or self._next_scan is None or now >= self._next_scan:
            signed += await self._scan()
            self._next_scan = now + self.settings.scan_interval
        return signed

    async def _presign_cert(self, issuer_id: int, serial: int) -> int:
        responder = self.responders.get(issuer_id)
        if responder is None or responder.problem_at(self.clock.now()) is not None:
            return 0
        epoch = self.cache.epoch
        state = await self.source.state(issuer_id, serial)
        now = self.clock.now()
        entries = [await self.signer.sign_entry_async((issuer_id, serial, alg), state, responder, now)
                   for alg in self.settings.presign_hashes]
        if state.issued:
            await self.cache.save([e.stored() for e in entries])
        if epoch == self.cache.epoch:
            for e in entries:
                self.cache.remember(e)
        return len(entries)

    async def _scan(self, page: int = 500) -> int:
        """Walk every certificate; sign what has no usable pre-signed answer; keep memory warm."""
        signed = 0
        for issuer_id, responder in self.responders.items():
            if responder.problem_at(self.clock.now()) is not None:
                continue
            after = -1
            while True:
                certs = await self.store.certificates(issuer_id, after_serial=after, limit=page)
                if not certs:
                    break
                after = certs[-1].serial
                epoch = self.cache.epoch
                rows = {}
                if self.table is not None:
                    for row in await self.table.between(issuer_id, certs[0].serial, certs[-1].serial):
                        if row.hash_name in HASH_BY_NAME:
                            rows[(row.serial, HASH_BY_NAME[row.hash_name])] = row
                now = self.clock.now()
                fresh: list[Entry] = []
                keep: list[Entry] = []
                for rec in certs:
                    state = CertState(rec.status, None if rec.reason is None else int(rec.reason), rec.revoked_at)
                    for alg in self.settings.presign_hashes:
                        row = rows.get((rec.serial, alg))
                        if row is not None and row_usable(row, state, responder.identity.key_hash, now,
                                                         self.settings.refresh):
                            keep.append(Entry.from_row(row))
                        else:
                            fresh.append(await self.signer.sign_entry_async((issuer_id, rec.serial, alg), state,
                                                                            responder, now))
                            signed += 1
                await self.cache.save([e.stored() for e in fresh])
                if epoch == self.cache.epoch:
                    self.cache.warm(keep + fresh)
                if len(certs) < page:
                    break
        if signed:
            log.info("OCSP: pre-signed %d response(s)", signed)
        return signed
