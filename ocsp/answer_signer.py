"""`AnswerSigner`: signs OCSP answers, off the event loop.

`sign_entry()` builds a pre-signable `Entry` from a certificate's state, its CA's responder
and `now`, its nextUpdate capped by the responder certificate and by the CA's current CRL
(`crl_caps`). `sign_entry_async()` and `sign_response()` run the signing in a small thread
pool once `start()` has made it, so requests go on being answered meanwhile.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
from collections.abc import Sequence

from .config import NeverIssued, OcspSettings
from .entry import Entry, EntryKey
from .errors import ResponderNotReady
from .request import Nonce
from .responders import IssuerResponder
from .response import ResponderIdentity, SingleResponse, build_response, cert_id_der, never_issued
from .source import CertState


class AnswerSigner:
    """Signs answers under one `OcspSettings`; inline until `start()` makes its thread pool."""

    def __init__(self, settings: OcspSettings) -> None:
        self.settings = settings
        #: The earliest nextUpdate among each issuer's current CRLs: an OCSP answer should
        #: not outlive the CRL that says the same thing.
        self.crl_caps: dict[int, dt.datetime] = {}
        #: How many entries were signed.
        self.signed = 0
        # Signing runs here: cryptography releases the GIL while it signs, so the event loop
        # goes on decoding and answering meanwhile.
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocsp-sign")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def sign_entry_async(self, key: EntryKey, state: CertState, responder: IssuerResponder,
                               now: dt.datetime) -> Entry:
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
        cap = self.crl_caps.get(issuer_id)
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
        self.signed += 1
        return Entry.make(issuer_id, serial, hash_alg, state, identity.key_hash, now, next_update, single_der, der,
                          extended)

    async def sign_response(self, identity: ResponderIdentity, now: dt.datetime, entries: Sequence[Entry],
                            nonce: Nonce | None) -> bytes:
        """A response for this request only: the entries' SingleResponses signed afresh
        with the nonce, off the event loop."""
        sign = functools.partial(
            build_response,
            identity,
            now,
            [e.single_der for e in entries],
            nonce=nonce,
            extended_revoke=any(e.extended_revoke for e in entries),
        )
        if self._executor is None:
            return sign()
        return await asyncio.get_running_loop().run_in_executor(self._executor, sign)
