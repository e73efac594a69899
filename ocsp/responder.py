"""The OCSP responder: answers from pre-signed responses, signs only when it must.

Paths through `OcspResponder.answer()`:
- Hot path (no nonce, one CertID, the usual case): the request bytes are looked up in a
  decode cache, the change watch is read (a few microseconds), and the pre-signed response
  is returned from memory. Nothing is signed, nothing awaited.
- Nonce path: the SingleResponses kept with the pre-signed answers are signed afresh
  together with the nonce (so the nonce path costs one signature, never a store read).
- Miss: the pre-signed row is read from the store and checked against the certificate's
  current state; if absent, stale or about something that changed, a new one is signed
  and saved for every process.

No stale good answer after a change: every request first asks the change watch whether
anything was committed since the last look. If so, the change log is read (once, for all
waiting requests) and every answer about a certificate that changed is dropped before the
request goes on. An answer signed from a read that raced such a change is never kept:
the `epoch` counter tells.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from publisher.clock import Clock
from publisher.errors import RepoError
from publisher.store import ChangeProbe, PresignedResponses, Store

from .config import NeverIssued, OcspSettings
from .entry import HASH_BY_NAME, Entry, EntryKey, row_usable
from .errors import InternalResponderError, ResponderNotReady, UnknownIssuer
from .issuers import IssuerIndex
from .request import CertID, HashAlgorithm, OCSPRequest
from .request_decoder import RequestDecoder
from .responders import IssuerResponder
from .response import (
    ResponseStatus,
    SingleResponse,
    build_response,
    cert_id_der,
    never_issued,
    unsuccessful,
)
from .source import CertState, StatusSource

log = logging.getLogger("pkirepo.ocsp")

# Change-log kinds that alter what an OCSP answer says.
_CERT_EVENTS = frozenset({"revoke", "hold", "release"})
_ISSUER_EVENTS = frozenset({"cert-add", "import-revoked", "issuer-update"})


@dataclass(frozen=True)
class Answer:
    """What to send: the OCSPResponse bytes, and the pre-signed entry when caching applies."""

    body: bytes
    status: ResponseStatus
    entry: Entry | None = None
    error: RepoError | None = None


class OcspResponder:
    def __init__(
        self,
        settings: OcspSettings,
        *,
        store: Store,
        source: StatusSource,
        clock: Clock,
        responders: dict[int, IssuerResponder],
        table: PresignedResponses | None = None,
        watch: ChangeProbe | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.clock = clock
        self.responders = responders
        self.table = table
        self.watch = watch
        self.index: IssuerIndex[int] = IssuerIndex((r.issuer_id, r.ca_certificate_der) for r in responders.values())
        self.limits = settings.limits
        self.decoder = RequestDecoder(
            settings.limits,
            require_signed=settings.require_signed_requests,
            ca_certificates=[r.ca_certificate_der for r in responders.values()],
        )
        # Signing with a nonce runs here: cryptography releases the GIL while it signs, so
        # the event loop goes on decoding and answering meanwhile.
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._entries: dict[EntryKey, Entry] = {}
        self._unknown: dict[EntryKey, Entry] = {}  # never-issued serials: bounded apart, flooding them evicts nothing else
        self._inflight: dict[EntryKey, asyncio.Future] = {}
        self._crl_caps: dict[int, dt.datetime] = {}
        self._event_id = 0
        self._synced_version: int | None = None
        self._sync_lock = asyncio.Lock()
        #: Bumped whenever answers are dropped because something changed.
        self.epoch = 0
        self._resign: set[tuple[int, int]] = set()
        self._wake = asyncio.Event()
        self._next_scan: dt.datetime | None = None
        self.stats = {"hits": 0, "signed": 0, "loaded": 0, "nonce": 0}

    # Start-up

    async def start(self) -> None:
        """Remember where the change log is, so that everything after it is applied."""
        if self.watch is not None:
            self._synced_version = self.watch.version()
        self._event_id = await self.store.change_token()
        await self._load_crl_caps()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocsp-sign")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def _load_crl_caps(self) -> None:
        caps: dict[int, dt.datetime] = {}
        for rec in await self.store.current_crls():
            issuer = rec.scope.issuer_id
            caps[issuer] = min(caps.get(issuer, rec.next_update), rec.next_update)
        self._crl_caps = caps

    def readiness(self) -> list[str]:
        """Problems that keep some CA's OCSP answers from being served; empty when ready."""
        now = self.clock.now()
        return [p for r in self.responders.values() if (p := r.problem_at(now)) is not None]

    # Answering

    async def answer(self, data: bytes) -> Answer:
        """Answer one DER request. Never raises: every failure is an OCSP status."""
        try:
            req = self.decoder.read(data)
            return await self._answer(req)
        except RepoError as e:
            if e.http_status >= 500 and not isinstance(e, ResponderNotReady):
                log.error("OCSP: %s", e.message)
            else:
                log.info("OCSP request refused (%s): %s", type(e).__name__, e.message)
            return Answer(unsuccessful(e.ocsp_status), ResponseStatus(e.ocsp_status), error=e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("OCSP: unexpected error answering a request")
            err = InternalResponderError("internal error")
            return Answer(unsuccessful(ResponseStatus.INTERNAL_ERROR), ResponseStatus.INTERNAL_ERROR, error=err)

    async def _answer(self, req: OCSPRequest) -> Answer:
        await self.ensure_current()
        now = self.clock.now()
        issuer_ids = {self.index.find(cid) for cid in req.cert_ids}
        if None in issuer_ids:
            raise UnknownIssuer("a CertID names an issuer this responder does not serve")
        if len(issuer_ids) > 1:
            # One response has one signer, and each CA has its own delegated responder.
            raise UnknownIssuer("CertIDs of several CAs in one request: ask each CA's responder separately")
        (issuer_id,) = issuer_ids
        responder = self.responders[issuer_id]
        problem = responder.problem_at(now)
        if problem is not None:
            raise ResponderNotReady(problem)
        nonce = None if self.settings.ignore_nonce else req.nonce
        if nonce is None and len(req.cert_ids) == 1:
            entry = await self._entry(issuer_id, req.cert_ids[0], responder, now)
            self.stats["hits"] += 1
            return Answer(entry.der, ResponseStatus.SUCCESSFUL, entry=entry)
        entries = [await self._entry(issuer_id, cid, responder, now) for cid in req.cert_ids]
        self.stats["nonce"] += 1
        sign = functools.partial(
            build_response,
            responder.identity,
            now,
            [e.single_der for e in entries],
            nonce=nonce,
            extended_revoke=any(e.extended_revoke for e in entries),
        )
        body = sign() if self._executor is None else await asyncio.get_running_loop().run_in_executor(self._executor, sign)
        return Answer(body, ResponseStatus.SUCCESSFUL)

    async def _entry(self, issuer_id: int, cid: CertID, responder: IssuerResponder, now: dt.datetime) -> Entry:
        key = (issuer_id, cid.serial, cid.hash_algorithm)
        entry = self._entries.get(key) or self._unknown.get(key)
        if (
            entry is not None
            and now < entry.next_update
            and entry.responder_key_hash == responder.identity.key_hash
        ):
            return entry
        fut = self._inflight.get(key)
        if fut is not None:  # someone is signing this one already
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            entry = await self._load_or_sign(key, responder)
            fut.set_result(entry)
            return entry
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[key]

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
                entry = Entry.from_row(row)
                self.stats["loaded"] += 1
        if entry is None:
            entry = await self._sign(key, state, responder, now)
            if persist:
                await self.table.put_many([entry.stored()])
        if epoch == self.epoch:
            self._remember(entry)
        return entry

    def _remember(self, entry: Entry) -> None:
        key = (entry.issuer_id, entry.serial, entry.hash_algorithm)
        cache, limit = (
            (self._entries, self.settings.cache_entries)
            if entry.state.issued
            else (self._unknown, max(1, self.settings.cache_entries // 10))
        )
        if limit <= 0:
            return
        if key not in cache and len(cache) >= limit:
            cache.pop(next(iter(cache)))  # oldest first
        cache[key] = entry

    async def _sign(self, key: EntryKey, state: CertState, responder: IssuerResponder, now: dt.datetime) -> Entry:
        """sign_entry() off the event loop, so that requests go on while it signs."""
        if self._executor is None:
            return self.sign_entry(key, state, responder, now)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.sign_entry, key, state, responder, now
        )

    def sign_entry(self, key: EntryKey, state: CertState, responder: IssuerResponder, now: dt.datetime) -> Entry:
        """Sign a pre-signable answer about one certificate now."""
        issuer_id, serial, hash_alg = key
        identity = responder.identity
        if identity is None:
            raise ResponderNotReady(responder.problem or "no responder")
        next_update = now + self.settings.validity
        cap = self._crl_caps.get(issuer_id)
        if cap is not None and cap > now:
            next_update = min(next_update, cap)
        if responder.not_after is not None:
            next_update = min(next_update, responder.not_after)
        if next_update <= now:
            raise ResponderNotReady(f"no valid nextUpdate for {responder.name}: responder or CRL expired")
        name_hash, key_hash = responder.issuer_name_key_hashes(hash_alg)
        cid = cert_id_der(hash_alg, name_hash, key_hash, serial)
        extended = False
        if not state.issued and self.settings.never_issued is NeverIssued.REVOKED:
            single = never_issued(cid, now, next_update)
            extended = True
        else:
            status, revoked_at, reason = state.answer()
            single = SingleResponse(cid, status, now, next_update, revocation_time=revoked_at, reason=reason)
        single_der = single.der()
        der = build_response(identity, now, [single_der], extended_revoke=extended)
        self.stats["signed"] += 1
        return Entry.make(issuer_id, serial, hash_alg, state, identity.key_hash, now, next_update, single_der, der,
                          extended)

    # Noticing changes

    async def ensure_current(self) -> None:
        """Apply every change committed before this call; cheap when there is none."""
        if self.watch is not None:
            if self.watch.version() == self._synced_version:
                return
        async with self._sync_lock:
            if self.watch is not None:
                version = self.watch.version()  # read before the log: a later commit changes it again
                if version == self._synced_version:
                    return
            await self._apply_events()
            if self.watch is not None:
                self._synced_version = version

    async def _apply_events(self) -> None:
        dropped = False
        crl = False
        while True:
            events = await self.store.events_since(self._event_id, limit=1000)
            for ev in events:
                self._event_id = ev.id
                if ev.kind in _CERT_EVENTS:
                    try:
                        serial = int(ev.detail or "", 16)
                    except ValueError:
                        serial = None
                    if ev.issuer_id is None or serial is None:
                        # The log does not say which certificate: forget every answer.
                        log.warning("OCSP: change-log event %d (%s) names no certificate", ev.id, ev.kind)
                        self._entries.clear()
                        self._unknown.clear()
                    else:
                        self._drop_cert(ev.issuer_id, serial)
                        self._resign.add((ev.issuer_id, serial))
                    dropped = True
                elif ev.kind in _ISSUER_EVENTS:
                    # Added certificates (imported revoked or not) were "unknown" a moment ago:
                    # those answers go. A changed CA certificate voids everything it signed for.
                    everything = ev.kind == "issuer-update"
                    if ev.issuer_id is None:
                        self._unknown.clear()
                        if everything:
                            self._entries.clear()
                    else:
                        self._drop_issuer(ev.issuer_id, unknown_only=not everything)
                    dropped = True
                elif ev.kind == "crl":
                    crl = True
            if len(events) < 1000:
                break
        if dropped:
            self.epoch += 1
            self._wake.set()
        if crl:
            await self._load_crl_caps()

    def _drop_cert(self, issuer_id: int, serial: int) -> None:
        for alg in HashAlgorithm:
            self._entries.pop((issuer_id, serial, alg), None)
            self._unknown.pop((issuer_id, serial, alg), None)

    def _drop_issuer(self, issuer_id: int, *, unknown_only: bool = False) -> None:
        self._unknown = {k: v for k, v in self._unknown.items() if k[0] != issuer_id}
        if not unknown_only and any(k[0] == issuer_id for k in self._entries):
            self._entries = {k: v for k, v in self._entries.items() if k[0] != issuer_id}

    # Pre-signing

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
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(60.0, self.settings.scan_interval.total_seconds()))
            except asyncio.TimeoutError:
                pass

    async def run_once(self, *, full: bool = False) -> int:
        """One round: changed certificates first, then (when due, or with `full`) a scan of
        every certificate. Returns how many answers were signed."""
        await self.ensure_current()
        signed = 0
        while self._resign:
            issuer_id, serial = self._resign.pop()
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
        epoch = self.epoch
        state = await self.source.state(issuer_id, serial)
        now = self.clock.now()
        entries = [await self._sign((issuer_id, serial, alg), state, responder, now) for alg in self.settings.presign_hashes]
        if self.table is not None and state.issued:
            await self.table.put_many([e.stored() for e in entries])
        if epoch == self.epoch:
            for e in entries:
                self._remember(e)
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
                epoch = self.epoch
                rows = {}
                if self.table is not None:
                    for row in await self.table.between(issuer_id, certs[0].serial, certs[-1].serial):
                        if row.hash_name in HASH_BY_NAME:
                            rows[(row.serial, HASH_BY_NAME[row.hash_name])] = row
                now = self.clock.now()
                fresh, keep = [], []
                for rec in certs:
                    state = CertState(rec.status, None if rec.reason is None else int(rec.reason), rec.revoked_at)
                    for alg in self.settings.presign_hashes:
                        row = rows.get((rec.serial, alg))
                        if row is not None and row_usable(row, state, responder.identity.key_hash, now,
                                                         self.settings.refresh):
                            keep.append(Entry.from_row(row))
                        else:
                            fresh.append(await self._sign((issuer_id, rec.serial, alg), state, responder, now))
                            signed += 1
                if self.table is not None:
                    await self.table.put_many([e.stored() for e in fresh])
                if epoch == self.epoch:
                    # Warm the memory cache while there is room; a scan never evicts hot answers.
                    for e in keep + fresh:
                        k = (e.issuer_id, e.serial, e.hash_algorithm)
                        if k in self._entries or len(self._entries) < self.settings.cache_entries:
                            self._entries[k] = e
                if len(certs) < page:
                    break
        if signed:
            log.info("OCSP: pre-signed %d response(s)", signed)
        return signed


__all__ = ["Answer", "Entry", "OcspResponder"]
