"""`AnswerSigner`: signs OCSP answers, off the event loop.

`plan()` turns a certificate's state, its CA's responder and `now` into a `SignJob`, its
nextUpdate capped by the responder certificate and by the CA's current CRL (`crl_caps`).
`sign_entries()` has a batch of jobs signed by the `SigningPool` (worker processes by
default) and makes `Entry`s of the results; `sign_entry_async()` does the same for one.
`sign_response()` signs a nonce answer in a thread, so requests go on being answered
meanwhile.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
from collections.abc import Mapping, Sequence

from publisher.store import Status

from .batch_signer import SignJob
from .config import NeverIssued, OcspSettings
from .entry import HASH_BY_NAME, Entry, EntryKey
from .errors import ResponderNotReady
from .request import Nonce
from .responders import IssuerResponder
from .response import ResponderIdentity, build_response
from .sign_pool import SigningPool
from .source import CertState, cert_state

UTC = dt.timezone.utc


class AnswerSigner:
    """Signs answers under one `OcspSettings`; inline until `start()` makes its pools."""

    def __init__(self, settings: OcspSettings, responders: Mapping[int, IssuerResponder] | None = None) -> None:
        self.settings = settings
        #: The earliest nextUpdate among each issuer's current CRLs: an OCSP answer should
        #: not outlive the CRL that says the same thing.
        self.crl_caps: dict[int, dt.datetime] = {}
        #: How many entries were signed.
        self.signed = 0
        self.responders: Mapping[int, IssuerResponder] = responders or {}
        self.pool = SigningPool(settings.sign_workers)
        self.pool.set_responders(self.responders)
        # Nonce answers are signed here: cryptography releases the GIL while it signs, so
        # the event loop goes on decoding and answering meanwhile.
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def start(self) -> None:
        self.pool.start(self.responders)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocsp-nonce")

    def close(self) -> None:
        self.pool.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def plan(self, key: EntryKey, state: CertState, responder: IssuerResponder, now: dt.datetime) -> SignJob:
        """What to sign about one certificate now; ResponderNotReady when nothing valid can be."""
        issuer_id, serial, hash_alg = key
        if responder.identity is None:
            raise ResponderNotReady(responder.problem or "no responder")
        if issuer_id not in self.responders:  # a responder handed in by a caller: sign for it too
            self.responders = {**self.responders, issuer_id: responder}
            self.pool.set_responders(self.responders)
        next_update = now + self.settings.validity
        cap = self.crl_caps.get(issuer_id)
        if cap is not None and cap > now:
            next_update = min(next_update, cap)
        if responder.not_after is not None:
            next_update = min(next_update, responder.not_after)
        this_ts, next_ts = int(now.timestamp()), int(next_update.timestamp())
        if next_ts <= this_ts:
            raise ResponderNotReady(f"no valid nextUpdate for {responder.name}: responder or CRL expired")
        extended = not state.issued and self.settings.never_issued is NeverIssued.REVOKED
        revoked_at = None if state.revoked_at is None else int(state.revoked_at.timestamp())
        return SignJob(issuer_id, serial, hash_alg.hashlib_name, None if state.status is None else int(state.status),
                       state.reason, revoked_at, this_ts, next_ts, extended)

    def entry(self, job: SignJob, signed: bytes) -> Entry:
        """The `Entry` for a signed job."""
        identity = self.responders[job.issuer_id].identity
        state = cert_state(
            None if job.status is None else Status(job.status), job.reason,
            None if job.revoked_at is None else dt.datetime.fromtimestamp(job.revoked_at, UTC),
        )
        return Entry.make(job.issuer_id, job.serial, HASH_BY_NAME[job.hash_name], state, identity.key_hash,
                          dt.datetime.fromtimestamp(job.this_update, UTC),
                          dt.datetime.fromtimestamp(job.next_update, UTC), signed, identity.certs_der, job.extended)

    async def sign_entries(self, jobs: Sequence[SignJob]) -> list[Entry]:
        """Sign a batch in the pool; only the jobs and the results pass through the loop."""
        signed = await self.pool.sign(jobs)
        self.signed += len(signed)
        return [self.entry(j, s) for j, s in zip(jobs, signed)]

    async def sign_entry_async(self, key: EntryKey, state: CertState, responder: IssuerResponder,
                               now: dt.datetime) -> Entry:
        """Sign one answer a request waits for, off the event loop (in a thread, never queued
        behind pre-signing batches), so that requests go on while it signs."""
        job = self.plan(key, state, responder, now)
        (signed,) = await self.pool.sign_now([job])
        self.signed += 1
        return self.entry(job, signed)

    def sign_entry(self, key: EntryKey, state: CertState, responder: IssuerResponder, now: dt.datetime) -> Entry:
        """Sign one answer now, in this thread."""
        job = self.plan(key, state, responder, now)
        (signed,) = self.pool.sign_inline([job])
        self.signed += 1
        return self.entry(job, signed)

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
