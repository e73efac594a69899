"""Signing pre-signable answers in batches: what a signing worker runs.

Pure apart from the signature itself: a `SignJob` says everything an answer depends on (CA,
serial, CertID hash, the certificate's state, thisUpdate and nextUpdate, as plain values that
cross a process boundary cheaply), and `BatchSigner.sign()` returns the stored form of each
answer (`response.signed_part`: tbsResponseData, algorithm, signature). The event loop only
plans jobs and receives bytes; building and signing happen here, in a worker process, in a
thread, or inline.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization

from publisher.crl import Reason
from publisher.signer import KeySigner, Signer

from .issuers import issuer_hashes
from .request import HashAlgorithm
from .response import EPOCH, CertStatus, SingleResponse, cert_id_der, response_data, signed_part

UTC = dt.timezone.utc
_HASH_BY_NAME = {h.hashlib_name: h for h in HashAlgorithm}


class SignJob(NamedTuple):
    """One answer to sign. Times are Unix seconds; `status` is the store's (0 good, 1
    revoked, 2 on hold) or None for a serial never issued (answered "unknown", or revoked
    with the Extended Revoked Definition when `extended`)."""

    issuer_id: int
    serial: int
    hash_name: str
    status: int | None
    reason: int | None
    revoked_at: int | None
    this_update: int
    next_update: int
    extended: bool = False


def single_response(job: SignJob, cid: bytes) -> SingleResponse:
    this_update = dt.datetime.fromtimestamp(job.this_update, UTC)
    next_update = dt.datetime.fromtimestamp(job.next_update, UTC)
    if job.extended:  # RFC 6960 §2.2: never issued, answered revoked
        return SingleResponse(cid, CertStatus.REVOKED, this_update, next_update, revocation_time=EPOCH,
                              reason=Reason.certificateHold)
    if job.status is None:
        return SingleResponse(cid, CertStatus.UNKNOWN, this_update, next_update)
    if job.status == 0:
        return SingleResponse(cid, CertStatus.GOOD, this_update, next_update)
    revoked_at = None if job.revoked_at is None else dt.datetime.fromtimestamp(job.revoked_at, UTC)
    if job.status == 2:
        reason = Reason.certificateHold
    else:
        # RFC 5280 §5.3.1 leaves `unspecified` out; an absent reason says the same in OCSP.
        reason = None if job.reason in (None, 0) else Reason(job.reason)
    return SingleResponse(cid, CertStatus.REVOKED, this_update, next_update, revocation_time=revoked_at,
                          reason=reason)


@dataclass(frozen=True)
class WorkerKey:
    """What a worker needs to sign for one CA: the responder key (PKCS#8 DER, handed over a
    pipe, never written), its SHA-1 key hash, and the CA certificate for the CertID hashes."""

    issuer_id: int
    key_der: bytes
    key_hash: bytes
    ca_certificate_der: bytes


class BatchSigner:
    """Signs `SignJob`s for the CAs it was given signers for."""

    def __init__(self, signers: Iterable[tuple[int, Signer, bytes, bytes]]) -> None:
        # issuer id -> (signer, responder key hash, {hash name: (issuerNameHash, issuerKeyHash)})
        self._cas = {}
        for issuer_id, signer, key_hash, ca_der in signers:
            hashes = {}
            for alg in HashAlgorithm:
                h = issuer_hashes(ca_der, alg)
                hashes[alg.hashlib_name] = (alg, h.name_hash, h.key_hash)
            self._cas[issuer_id] = (signer, key_hash, hashes)

    @classmethod
    def from_keys(cls, keys: Sequence[WorkerKey]) -> BatchSigner:
        return cls(
            (k.issuer_id, KeySigner(serialization.load_der_private_key(k.key_der, password=None)), k.key_hash,
             k.ca_certificate_der)
            for k in keys
        )

    def sign_one(self, job: SignJob) -> bytes:
        signer, key_hash, hashes = self._cas[job.issuer_id]
        alg, name_hash, issuer_key_hash = hashes[job.hash_name]
        cid = cert_id_der(alg, name_hash, issuer_key_hash, job.serial)
        tbs = response_data(key_hash, dt.datetime.fromtimestamp(job.this_update, UTC),
                            [single_response(job, cid).der()], extended_revoke=job.extended)
        return signed_part(tbs, signer.algorithm_der, signer.sign(tbs))

    def sign(self, jobs: Sequence[SignJob]) -> list[bytes]:
        return [self.sign_one(j) for j in jobs]
