"""Pre-signed OCSP responses, as the responder sees them: rows of the store's shared table
(`Store.presigned_responses()`), with the CertID hash as our HashAlgorithm.

A row records the status it answers (status, reason, revocation time) and the key that
signed it. A reader compares those with the certificate's current row and the current
responder key, and ignores a row that no longer matches, so a row left behind by a crash,
an offline `pkirepo revoke` or a responder key change is never served.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from publisher.store import PresignedResponse, PresignedResponses, Store

from .request import HashAlgorithm

_BY_NAME = {h.hashlib_name: h for h in HashAlgorithm}


@dataclass(frozen=True)
class StoredResponse:
    issuer_id: int
    serial: int
    hash_algorithm: HashAlgorithm
    status: int
    reason: int | None
    revoked_at: dt.datetime | None
    responder_key_hash: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    single_der: bytes
    der: bytes


def _ours(r: PresignedResponse) -> StoredResponse | None:
    alg = _BY_NAME.get(r.hash_name)
    if alg is None:
        return None
    return StoredResponse(r.issuer_id, r.serial, alg, r.status, r.reason, r.revoked_at, r.responder_key_hash,
                          r.this_update, r.next_update, r.single_der, r.der)


def _theirs(r: StoredResponse) -> PresignedResponse:
    return PresignedResponse(r.issuer_id, r.serial, r.hash_algorithm.hashlib_name, r.status, r.reason, r.revoked_at,
                             r.responder_key_hash, r.this_update, r.next_update, r.single_der, r.der)


class PresignedTable:
    """The store's pre-signed responses table, in OCSP terms."""

    def __init__(self, table: PresignedResponses) -> None:
        self._table = table

    @classmethod
    async def of(cls, store: Store) -> "PresignedTable | None":
        table = await store.presigned_responses()
        return None if table is None else cls(table)

    async def close(self) -> None:
        await self._table.close()

    async def get(self, issuer_id: int, serial: int, hash_algorithm: HashAlgorithm) -> StoredResponse | None:
        row = await self._table.get(issuer_id, serial, hash_algorithm.hashlib_name)
        return None if row is None else _ours(row)

    async def between(self, issuer_id: int, first: int, last: int) -> list[StoredResponse]:
        return [r for r in map(_ours, await self._table.between(issuer_id, first, last)) if r is not None]

    async def put_many(self, rows: list[StoredResponse]) -> None:
        await self._table.put_many([_theirs(r) for r in rows])
