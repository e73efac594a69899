"""The OCSP responder: answers from pre-signed responses, signs only when it must.

`OcspResponder` composes the parts and routes each request to its CA:
- `RequestDecoder` (request_decoder.py): bytes to a request, cached; signature check;
- `ChangeFollower` (change_follower.py): applies the store's change log before answering;
- `AnswerCache` (answer_cache.py): answers in memory, else loaded from the store or signed;
- `AnswerSigner` (answer_signer.py): signs entries and nonce answers off the event loop;
- `PreSigner` (presigner.py): the background loop that signs ahead of requests.

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
the cache's `epoch` counter tells.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from publisher.clock import Clock
from publisher.errors import RepoError
from publisher.ratelimit import RateLimit, suffix
from publisher.store import ChangeProbe, PresignedResponses, Store

from .answer_cache import AnswerCache
from .answer_signer import AnswerSigner
from .change_follower import ChangeFollower
from .config import OcspSettings
from .entry import Entry
from .errors import InternalResponderError, ResponderNotReady, UnknownIssuer
from .issuers import IssuerIndex
from .presigner import PreSigner
from .request_decoder import RequestDecoder
from .responders import IssuerResponder
from .response import ResponseStatus, unsuccessful
from .source import StatusSource

log = logging.getLogger("pkirepo.ocsp")


@dataclass(frozen=True)
class Answer:
    """What to send: the OCSPResponse bytes, and the pre-signed entry when caching applies."""

    body: bytes
    status: ResponseStatus
    entry: Entry | None = None
    error: RepoError | None = None


class OcspResponder:
    """The OCSP service for the CAs in `responders`: `answer()` for requests, `run()` in the
    background; `start()` before either, `close()` after."""

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
        self.clock = clock
        self.responders = responders
        self.index: IssuerIndex[int] = IssuerIndex((r.issuer_id, r.ca_certificate_der) for r in responders.values())
        self.decoder = RequestDecoder(
            settings.limits,
            require_signed=settings.require_signed_requests,
            ca_certificates=[r.ca_certificate_der for r in responders.values()],
        )
        self.signer = AnswerSigner(settings, responders)
        self.cache = AnswerCache(settings, source=source, clock=clock, signer=self.signer, table=table)
        self.follower = ChangeFollower(store=store, watch=watch, cache=self.cache, signer=self.signer)
        self.presigner = PreSigner(settings, store=store, source=source, clock=clock, responders=responders,
                                   table=table, cache=self.cache, signer=self.signer, follower=self.follower)
        self._hits = 0
        self._nonce = 0
        # Refused requests are the clients' mistakes: a few lines a second at most.
        self._refusals = RateLimit(rate=2.0, burst=10, clock=time.monotonic)

    async def start(self) -> None:
        """Remember where the change log is, so that everything after it is applied."""
        await self.follower.start()
        self.signer.start()

    def close(self) -> None:
        self.signer.close()

    def readiness(self) -> list[str]:
        """Problems that keep some CA's OCSP answers from being served, or from being saved
        for other processes and restarts; empty when ready."""
        now = self.clock.now()
        problems = [p for r in self.responders.values() if (p := r.problem_at(now)) is not None]
        if self.cache.save_problem is not None:
            problems.append(self.cache.save_problem)
        return problems

    def coverage(self) -> str:
        """One line on how far pre-signing is (answers stored of those wanted, backlog)."""
        return self.presigner.coverage.line()

    @property
    def stats(self) -> dict[str, int | str]:
        """Counters: requests answered with a pre-signed entry (hits) and with a fresh signature
        (nonce); entries signed, and entries loaded from the pre-signed table; and how far
        pre-signing is (answers stored and wanted, backlog, complete)."""
        return {"hits": self._hits, "signed": self.signer.signed, "loaded": self.cache.loaded, "nonce": self._nonce,
                **self.presigner.coverage.figures()}

    async def answer(self, data: bytes) -> Answer:
        """Answer one DER request. Never raises: every failure is an OCSP status."""
        try:
            req = self.decoder.read(data)
            await self.follower.ensure_current()
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
                entry = await self.cache.get(issuer_id, req.cert_ids[0], responder, now)
                self._hits += 1
                return Answer(entry.der, ResponseStatus.SUCCESSFUL, entry=entry)
            entries = [await self.cache.get(issuer_id, cid, responder, now) for cid in req.cert_ids]
            self._nonce += 1
            body = await self.signer.sign_response(responder.identity, now, entries, nonce)
            return Answer(body, ResponseStatus.SUCCESSFUL)
        except RepoError as e:
            if e.http_status >= 500 and not isinstance(e, ResponderNotReady):
                log.error("OCSP: %s", e.message)
            elif (dropped := self._refusals.allow()) is not None:
                log.info("OCSP request refused (%s): %s%s", type(e).__name__, e.message, suffix(dropped))
            return Answer(unsuccessful(e.ocsp_status), ResponseStatus(e.ocsp_status), error=e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("OCSP: unexpected error answering a request")
            err = InternalResponderError("internal error")
            return Answer(unsuccessful(ResponseStatus.INTERNAL_ERROR), ResponseStatus.INTERNAL_ERROR, error=err)

    async def run(self, *, jitter: float = 1.0, sleep: Callable[[float], object] = asyncio.sleep) -> None:
        """The pre-signing loop (see `PreSigner.run`); runs until cancelled."""
        await self.presigner.run(jitter=jitter, sleep=sleep)

    async def run_once(self, *, full: bool = False) -> int:
        """One pre-signing round (see `PreSigner.run_once`); returns how many answers were signed."""
        return await self.presigner.run_once(full=full)


__all__ = ["Answer", "Entry", "OcspResponder"]
