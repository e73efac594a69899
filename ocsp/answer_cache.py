"""`AnswerCache`: the pre-signed answers kept in memory, and how a missing one is got.

Holds the entries about issued certificates, least recently used first and at most
`cache_entries` of them (the store keeps every answer), and, bounded apart, those about
never-issued serials (so that a flood of made-up serials evicts nothing else); the
in-flight table that lets concurrent requests for the same certificate share one store
read and one signature;
and `epoch`, bumped whenever answers are dropped because something changed, so that an
answer signed from a read that raced such a change is never kept.

A miss reads the certificate's state, takes the pre-signed row from the store if it still
holds, and otherwise signs a new answer and saves it for every process.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from publisher.clock import Clock
from publisher.errors import Unavailable
from publisher.ratelimit import RateLimit, suffix
from publisher.store import PresignedResponses

from .answer_signer import AnswerSigner
from .config import OcspSettings
from .entry import Entry, EntryKey, cache_key, row_usable
from .request import CertID, HashAlgorithm
from .responders import IssuerResponder
from .source import StatusSource


log = logging.getLogger("pkirepo.ocsp")


class AnswerCache:
    """Answers in memory by (issuer id, serial, CertID hash); misses go to `table` or `signer`."""

    def __init__(
        self,
        settings: OcspSettings,
        *,
        source: StatusSource,
        clock: Clock,
        signer: AnswerSigner,
        table: PresignedResponses | None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        self.signer = signer
        self.table = table
        # Least recently used first: a hit moves an answer to the end, and the first one goes
        # when the bound is reached. The store holds every answer; memory holds the hot ones.
        # Keyed by `cache_key`, holding `Entry.packed()` tuples: plain tuples of plain values,
        # which the garbage collector stops tracking, so that its full collections do not walk
        # every cached answer with the event loop held.
        self.entries: OrderedDict[tuple, tuple] = OrderedDict()
        self.unknown: OrderedDict[tuple, tuple] = OrderedDict()  # never-issued serials
        self.inflight: dict[EntryKey, asyncio.Future] = {}
        #: Bumped whenever answers are dropped because something changed.
        self.epoch = 0
        #: How many answers were taken from the pre-signed table.
        self.loaded = 0
        #: Why the latest save to the pre-signed table failed; None once one succeeds.
        self.save_problem: str | None = None
        self._save_log = RateLimit(rate=1 / 60, burst=1, clock=time.monotonic)

    async def save(self, entries: Sequence[Entry]) -> int | None:
        """Share answers with other processes and restarts; how many were saved (those whose
        certificate changed meanwhile are not), None if the store could not be written.
        A store that cannot be written (full disk, read-only) costs only that: the answers
        are served from memory all the same, readiness reports the problem, and the next
        save tries again."""
        if self.table is None or not entries:
            return 0
        try:
            saved = await self.table.put_many([e.stored(self.settings.refresh) for e in entries])
        except Unavailable as e:
            self.save_problem = e.message
            dropped = self._save_log.allow()
            if dropped is not None:
                log.error("OCSP: %s; answers are served from memory%s", e.message, suffix(dropped))
            return None
        self.save_problem = None
        return saved

    async def get(self, issuer_id: int, cid: CertID, responder: IssuerResponder, now: dt.datetime) -> Entry:
        """A current answer about `cid` from `responder`: from memory, else loaded or signed."""
        key = (issuer_id, cid.serial, cid.hash_algorithm)
        ck = cache_key(issuer_id, cid.serial, cid.hash_algorithm)
        packed = self.entries.get(ck)
        if packed is not None:
            self.entries.move_to_end(ck)
        else:
            packed = self.unknown.get(ck)
        # Packed: [6] responder key hash, [8] nextUpdate.
        if packed is not None and now < packed[8] and packed[6] == responder.identity.key_hash:
            return Entry.unpack(packed)
        fut = self.inflight.get(key)
        if fut is not None:  # someone is signing this one already
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self.inflight[key] = fut
        try:
            entry = await self._load_or_sign(key, responder)
            fut.set_result(entry)
            return entry
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self.inflight[key]

    async def _load_or_sign(self, key: EntryKey, responder: IssuerResponder) -> Entry:
        epoch = self.epoch
        issuer_id, serial, hash_alg = key
        state = await self.source.state(issuer_id, serial)
        now = self.clock.now()
        entry = None
        persist = self.table is not None and state.issued and hash_alg in self.settings.presign_hashes
        if persist:
            row = await self.table.get(issuer_id, serial, hash_alg.hashlib_name)
            if row is not None and row_usable(row, state, responder.identity.key_hash, now, self.settings.refresh):
                entry = Entry.from_row(row, responder.identity.certs_der)
                self.loaded += 1
        if entry is None:
            entry = await self.signer.sign_entry_async(key, state, responder, now)
            if persist:
                await self.save([entry])
        if epoch == self.epoch:
            self.remember(entry)
        return entry

    def remember(self, entry: Entry) -> None:
        """Keep an answer a request asked for, evicting the oldest when full."""
        key = entry.cache_key
        cache, limit = (
            (self.entries, self.settings.cache_entries)
            if entry.state.issued
            else (self.unknown, max(1, self.settings.cache_entries // 10))
        )
        if limit <= 0:
            return
        if key in cache:
            cache.move_to_end(key)
        elif len(cache) >= limit:
            cache.popitem(last=False)  # least recently used
        cache[key] = entry.packed()

    def warm(self, entries: Iterable[Entry]) -> None:
        """Replace answers already in memory and fill free room; unlike `remember`, never
        evicts, so that background signing cannot push out what requests use."""
        room = self.settings.cache_entries - len(self.entries)
        for e in entries:
            k = e.cache_key
            if k in self.entries:
                self.entries[k] = e.packed()  # keeps its place in the LRU order
            elif room > 0 and e.state.issued:
                self.entries[k] = e.packed()
                room -= 1

    # Dropping what changed. Each drop bumps `epoch`, so that answers signed from reads made
    # before it are not kept.

    def drop_cert(self, issuer_id: int, serial: int) -> None:
        for alg in HashAlgorithm:
            self.entries.pop(cache_key(issuer_id, serial, alg), None)
            self.unknown.pop(cache_key(issuer_id, serial, alg), None)
        self.epoch += 1

    def drop_issuer(self, issuer_id: int, *, unknown_only: bool = False) -> None:
        self.unknown = OrderedDict((k, v) for k, v in self.unknown.items() if k[0] != issuer_id)
        if not unknown_only and any(k[0] == issuer_id for k in self.entries):
            self.entries = OrderedDict((k, v) for k, v in self.entries.items() if k[0] != issuer_id)
        self.epoch += 1

    def drop_all(self, *, unknown_only: bool = False) -> None:
        self.unknown.clear()
        if not unknown_only:
            self.entries.clear()
        self.epoch += 1
