"""Beside the PostgreSQL store: the pre-signed OCSP answers (`ocsp_responses`), on the
store's connection pool. The composition root builds this port next to `PgStore`.

The change probe is the store's change listener (pg_listen.py): its version moves with
every notification of a commit by any node, on every reconnection, and when its periodic
look at the change log finds something new; reading it never leaves the event loop.
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import asyncpg

from .errors import Unavailable
from .pg_store import GONE, PgStore, _dt, _ts
from .store import ChangeProbe, DueAnswer, PresignedResponse, from_serial_key, serial_key

_PRESIGNED_COLS = ("issuer_id, serial, hash, status, reason, revoked_at, responder_key_hash, this_update,"
                   " next_update, refresh_at, signed")

# A row is saved only while its certificate still has the state the answer says. FOR SHARE
# waits for a status change under way and then re-reads the row, so a revocation committed
# between reading the state and saving the answer is never overwritten by it.
_PUT = (f"INSERT INTO ocsp_responses ({_PRESIGNED_COLS})"
        " SELECT v.issuer_id, v.serial, v.hash, v.status, v.reason, v.revoked_at, v.key_hash, v.this_update,"
        " v.next_update, v.refresh_at, v.signed"
        " FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::smallint[], $5::smallint[], $6::bigint[],"
        " $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[])"
        " AS v(issuer_id, serial, hash, status, reason, revoked_at, key_hash, this_update, next_update,"
        " refresh_at, signed)"
        " JOIN certificates c ON c.issuer_id = v.issuer_id AND c.serial = v.serial"
        " WHERE c.status = v.status AND c.reason IS NOT DISTINCT FROM v.reason"
        " AND c.revoked_at IS NOT DISTINCT FROM v.revoked_at"
        " FOR SHARE OF c"
        " ON CONFLICT (issuer_id, serial, hash) DO UPDATE SET status = excluded.status, reason = excluded.reason,"
        " revoked_at = excluded.revoked_at, responder_key_hash = excluded.responder_key_hash,"
        " this_update = excluded.this_update, next_update = excluded.next_update,"
        " refresh_at = excluded.refresh_at, signed = excluded.signed")

_DUE = ("SELECT o.issuer_id, o.serial, o.hash, c.status, c.reason, c.revoked_at FROM ocsp_responses o"
        " JOIN certificates c ON c.issuer_id = o.issuer_id AND c.serial = o.serial"
        " WHERE o.refresh_at <= $1 AND o.issuer_id = ANY($2::bigint[]) AND o.hash = ANY($3::text[])"
        " ORDER BY o.refresh_at LIMIT $4")

_MISSING = ("SELECT c.serial, c.status, c.reason, c.revoked_at FROM certificates c"
            " WHERE c.issuer_id = $1 AND c.serial > $2 AND NOT EXISTS (SELECT 1 FROM ocsp_responses o"
            " WHERE o.issuer_id = c.issuer_id AND o.serial = c.serial AND o.hash = $3)"
            " ORDER BY c.serial LIMIT $4")

# One statement: the rows found stale are made due in the same snapshot.
_STALE = ("UPDATE ocsp_responses o SET refresh_at = 0 WHERE o.issuer_id = $1 AND o.refresh_at > 0 AND"
          " (o.responder_key_hash != $2 OR NOT EXISTS (SELECT 1 FROM certificates c WHERE c.issuer_id = o.issuer_id"
          " AND c.serial = o.serial AND c.status = o.status AND c.reason IS NOT DISTINCT FROM o.reason"
          " AND c.revoked_at IS NOT DISTINCT FROM o.revoked_at))")


def _presigned(row) -> PresignedResponse:
    return PresignedResponse(row[0], from_serial_key(row[1]), row[2], row[3], row[4], _dt(row[5]), row[6],
                             _dt(row[7]), _dt(row[8]), _dt(row[9]), row[10])


_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PgPresignedPort:
    """`PresignedPort` over the store's database."""

    def __init__(self, store: PgStore) -> None:
        self._store = store

    async def open_table(self) -> "PgPresignedResponses":
        return PgPresignedResponses(self._store)

    def change_probe(self) -> ChangeProbe | None:
        return self._store.change_listener().probe()


class PgPresignedResponses:
    """Shares the store's pool: a table on its own pool would only add connections."""

    def __init__(self, store: PgStore) -> None:
        self._store = store

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._store._pool

    async def close(self) -> None:
        """The pool belongs to the store."""

    async def _read(self, how: str, sql: str, *args):
        try:
            return await getattr(self._pool, how)(sql, *args)
        except GONE as e:
            raise Unavailable(f"{self._store.where}: pre-signed OCSP answers unavailable: {e}") from e

    async def get(self, issuer_id: int, serial: int, hash_name: str) -> PresignedResponse | None:
        row = await self._read(
            "fetchrow", f"SELECT {_PRESIGNED_COLS} FROM ocsp_responses WHERE issuer_id = $1 AND serial = $2 AND hash = $3",
            issuer_id, serial_key(serial), hash_name)
        return None if row is None else _presigned(row)

    async def put_many(self, rows: Sequence[PresignedResponse]) -> int:
        """Save rows (see `PresignedResponses.put_many`) in one statement, one transaction;
        Unavailable with the server's reason when they cannot be written."""
        if not rows:
            return 0
        columns: list[list] = [[] for _ in range(11)]
        for r in rows:
            values = (r.issuer_id, serial_key(r.serial), r.hash_name, r.status, r.reason, _ts(r.revoked_at),
                      r.responder_key_hash, _ts(r.this_update), _ts(r.next_update), _ts(r.refresh_at), r.signed)
            for column, value in zip(columns, values):
                column.append(value)
        try:
            status = await self._pool.execute(_PUT, *columns)
        except _FAILURES as e:
            raise Unavailable(f"cannot save pre-signed OCSP answers: {e}") from e
        return int(status.split()[-1])

    async def due(self, now: dt.datetime, issuers: Sequence[int], hashes: Sequence[str],
                  limit: int) -> list[DueAnswer]:
        if not issuers or not hashes:
            return []
        rows = await self._read("fetch", _DUE, _ts(now), list(issuers), list(hashes), limit)
        return [DueAnswer(r[0], from_serial_key(r[1]), r[2], r[3], r[4], _dt(r[5])) for r in rows]

    async def missing(self, issuer_id: int, hash_name: str, after_serial: int, limit: int) -> list[DueAnswer]:
        after = b"" if after_serial < 0 else serial_key(after_serial)
        rows = await self._read("fetch", _MISSING, issuer_id, after, hash_name, limit)
        return [DueAnswer(issuer_id, from_serial_key(r[0]), hash_name, r[1], r[2], _dt(r[3])) for r in rows]

    async def mark_stale(self, issuer_id: int, key_hash: bytes) -> int:
        try:
            status = await self._pool.execute(_STALE, issuer_id, key_hash)
        except _FAILURES as e:
            raise Unavailable(f"cannot save pre-signed OCSP answers: {e}") from e
        return int(status.split()[-1])

    async def coverage(self, hashes: Sequence[str], now: dt.datetime) -> tuple[int, int, int]:
        if not hashes:
            return 0, 0, 0
        answers, certs, due = await self._read(
            "fetchrow", "SELECT (SELECT count(*) FROM ocsp_responses WHERE hash = ANY($1::text[])),"
            " (SELECT count(*) FROM certificates),"
            " (SELECT count(*) FROM ocsp_responses WHERE refresh_at <= $2 AND hash = ANY($1::text[]))",
            list(hashes), _ts(now))
        return answers, certs * len(hashes), due
