"""`ChangeFollower`: applies the store's change log to the answers kept in memory.

Every request first asks the change probe whether anything was committed since the last
look (a few microseconds). If so, the change log is read, once for all waiting requests,
and every answer about a certificate that changed is dropped from the `AnswerCache` before
the request goes on. Without a probe the log itself is read each time. Changed certificates
are collected in `changed` for the pre-signer, which `wake` calls; a new CRL reloads the
nextUpdate caps the `AnswerSigner` applies.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging

from publisher.store import CERT_EVENTS, ChangeProbe, Store

from .answer_cache import AnswerCache
from .answer_signer import AnswerSigner

log = logging.getLogger("pkirepo.ocsp")

# Change-log kinds that alter what an OCSP answer says.
ISSUER_EVENTS = frozenset({"cert-add", "import-revoked", "issuer-update"})
_PAGE = 1000


class ChangeFollower:
    """Follows `store`'s change log from `start()` on, dropping what changed from `cache`."""

    def __init__(self, *, store: Store, watch: ChangeProbe | None, cache: AnswerCache, signer: AnswerSigner) -> None:
        self.store = store
        self.watch = watch
        self.cache = cache
        self.signer = signer
        #: (issuer id, serial) of certificates whose state changed, to be signed again.
        self.changed: set[tuple[int, int]] = set()
        #: Set when certificates were added: the pre-signer looks for answers missing.
        self.added = False
        #: Set when answers were dropped, so that the pre-signer does not wait for its tick.
        self.wake = asyncio.Event()
        self._event_id = 0
        self._synced_version: int | None = None
        self._sync_lock = asyncio.Lock()

    async def start(self) -> None:
        """Remember where the change log is, so that everything after it is applied."""
        if self.watch is not None:
            self._synced_version = self.watch.version()
        self._event_id = await self.store.change_token()
        await self.load_crl_caps()

    async def load_crl_caps(self) -> None:
        caps: dict[int, dt.datetime] = {}
        for rec in await self.store.current_crls():
            issuer = rec.scope.issuer_id
            caps[issuer] = min(caps.get(issuer, rec.next_update), rec.next_update)
        self.signer.crl_caps = caps

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
        cache = self.cache
        dropped = False
        crl = False
        while True:
            events = await self.store.events_since(self._event_id, limit=_PAGE)
            for ev in events:
                self._event_id = ev.id
                if ev.kind in CERT_EVENTS:
                    cert = ev.certificate()
                    if cert is None:
                        # The log does not say which certificate: forget every answer.
                        log.warning("OCSP: change-log event %d (%s) names no certificate", ev.id, ev.kind)
                        cache.drop_all()
                    else:
                        cache.drop_cert(*cert)
                        self.changed.add(cert)
                    dropped = True
                elif ev.kind in ISSUER_EVENTS:
                    # Added certificates (imported revoked or not) were "unknown" a moment ago:
                    # those answers go. A changed CA certificate voids everything it signed for.
                    everything = ev.kind == "issuer-update"
                    self.added = True
                    if ev.issuer_id is None:
                        cache.drop_all(unknown_only=not everything)
                    else:
                        cache.drop_issuer(ev.issuer_id, unknown_only=not everything)
                    dropped = True
                elif ev.kind == "crl":
                    crl = True
            if len(events) < _PAGE:
                break
        if dropped:
            self.wake.set()
        if crl:
            await self.load_crl_caps()
