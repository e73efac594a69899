"""Beside the SQLite store: the pre-signed OCSP answers (`ocsp_responses`) and
a cheap commit probe, both on the same file. The composition root builds this port next to
`SQLiteStore`; the OCSP responder uses it to share answers and notice commits between
processes without polling."""
from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Sequence

import aiosqlite

from .errors import Unavailable
from .sqlite_store import _dt, _ts
from .store import DueAnswer, PresignedResponse, from_serial_key, serial_key


class SQLitePresignedPort:
    """`PresignedPort` over one SQLite file."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms

    async def open_table(self) -> "SQLitePresignedResponses":
        table = SQLitePresignedResponses(self.path, busy_timeout_ms=self._busy)
        await table.open()
        return table

    def change_probe(self) -> "DataVersionProbe":
        return DataVersionProbe(self.path)


# Pre-signed OCSP responses: the `ocsp_responses` table (migration 6), through a connection
# of its own (WAL lets it read while the repository's writer writes) with synchronous=NORMAL:
# a row lost to a power cut is only signed again.

_PRESIGNED_COLS = ("issuer_id, serial, hash, status, reason, revoked_at, responder_key_hash, this_update,"
                   " next_update, refresh_at, signed")

# A row is saved only while its certificate still has the state the answer says: a revocation
# committed between reading the state and saving the answer is never overwritten by it.
_PUT = (f"INSERT OR REPLACE INTO ocsp_responses ({_PRESIGNED_COLS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM certificates c WHERE c.issuer_id = ? AND c.serial = ? AND c.status = ?"
        " AND c.reason IS ? AND c.revoked_at IS ?)")

_DUE = ("SELECT o.issuer_id, o.serial, o.hash, c.status, c.reason, c.revoked_at FROM ocsp_responses o"
        " JOIN certificates c ON c.issuer_id = o.issuer_id AND c.serial = o.serial"
        " WHERE o.refresh_at <= ? AND o.issuer_id IN ({issuers}) AND o.hash IN ({hashes})"
        " ORDER BY o.refresh_at LIMIT ?")

_MISSING = ("SELECT c.serial, c.status, c.reason, c.revoked_at FROM certificates c"
            " WHERE c.issuer_id = ? AND c.serial > ? AND NOT EXISTS (SELECT 1 FROM ocsp_responses o"
            " WHERE o.issuer_id = c.issuer_id AND o.serial = c.serial AND o.hash = ?)"
            " ORDER BY c.serial LIMIT ?")

_STALE = ("SELECT o.serial, o.hash FROM ocsp_responses o"
          " LEFT JOIN certificates c ON c.issuer_id = o.issuer_id AND c.serial = o.serial"
          " WHERE o.issuer_id = ? AND o.refresh_at > 0 AND (o.responder_key_hash != ? OR c.status IS NULL"
          " OR c.status != o.status OR c.reason IS NOT o.reason OR c.revoked_at IS NOT o.revoked_at)")


def _presigned(row) -> PresignedResponse:
    return PresignedResponse(row[0], from_serial_key(row[1]), row[2], row[3], row[4], _dt(row[5]), row[6],
                             _dt(row[7]), _dt(row[8]), _dt(row[9]), row[10])


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SQLitePresignedResponses:
    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # Everything on this connection takes turns: a read let in between a save's BEGIN and
        # its INSERT would open the save's snapshot early, and the save would then fail at once
        # ("database is locked") whenever another connection committed meanwhile, which at a
        # million certificates (the LDAP name index filling) was nine saves in ten.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy)}")
            await conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            await conn.close()  # its thread would keep the process from exiting
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def get(self, issuer_id: int, serial: int, hash_name: str) -> PresignedResponse | None:
        async with self._lock:
            cur = await self._conn.execute(
                f"SELECT {_PRESIGNED_COLS} FROM ocsp_responses WHERE issuer_id = ? AND serial = ? AND hash = ?",
                (issuer_id, serial_key(serial), hash_name))
            row = await cur.fetchone()
        return None if row is None else _presigned(row)

    async def put_many(self, rows: Sequence[PresignedResponse]) -> int:
        """Save rows (see `PresignedResponses.put_many`); Unavailable (with SQLite's reason:
        disk full, read-only, locked) when they cannot be written."""
        if not rows:
            return 0
        try:
            async with self._lock:
                return await self._put_many(rows)
        except sqlite3.Error as e:
            raise Unavailable(f"cannot save pre-signed OCSP answers: {e}") from e

    async def _put_many(self, rows: Sequence[PresignedResponse]) -> int:
        params = []
        for r in rows:
            key = serial_key(r.serial)
            revoked_at = _ts(r.revoked_at)
            params.append((r.issuer_id, key, r.hash_name, r.status, r.reason, revoked_at, r.responder_key_hash,
                           _ts(r.this_update), _ts(r.next_update), _ts(r.refresh_at), r.signed,
                           r.issuer_id, key, r.status, r.reason, revoked_at))
        # IMMEDIATE: the write lock first (waiting up to the busy timeout), never a read
        # snapshot to upgrade.
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            cur = await self._conn.executemany(_PUT, params)
            await self._conn.execute("COMMIT")
        except BaseException:
            await self._conn.execute("ROLLBACK")
            raise
        return max(0, cur.rowcount)

    async def due(self, now: dt.datetime, issuers: Sequence[int], hashes: Sequence[str],
                  limit: int) -> list[DueAnswer]:
        if not issuers or not hashes:
            return []
        sql = _DUE.format(issuers=_marks(len(issuers)), hashes=_marks(len(hashes)))
        async with self._lock:
            cur = await self._conn.execute(sql, (_ts(now), *issuers, *hashes, limit))
            rows = await cur.fetchall()
        return [DueAnswer(r[0], from_serial_key(r[1]), r[2], r[3], r[4], _dt(r[5])) for r in rows]

    async def missing(self, issuer_id: int, hash_name: str, after_serial: int, limit: int) -> list[DueAnswer]:
        after = b"" if after_serial < 0 else serial_key(after_serial)
        async with self._lock:
            cur = await self._conn.execute(_MISSING, (issuer_id, after, hash_name, limit))
            rows = await cur.fetchall()
        return [DueAnswer(issuer_id, from_serial_key(r[0]), hash_name, r[1], r[2], _dt(r[3])) for r in rows]

    async def mark_stale(self, issuer_id: int, key_hash: bytes) -> int:
        # Found by a read (which does not hold up the repository's writer), then made due
        # by key: usually there is nothing or little to update.
        async with self._lock:
            cur = await self._conn.execute(_STALE, (issuer_id, key_hash))
            stale = await cur.fetchall()
        if not stale:
            return 0
        try:
            async with self._lock:
                await self._conn.executemany(
                    "UPDATE ocsp_responses SET refresh_at = 0 WHERE issuer_id = ? AND serial = ? AND hash = ?",
                    [(issuer_id, s, h) for s, h in stale])
        except sqlite3.Error as e:
            raise Unavailable(f"cannot save pre-signed OCSP answers: {e}") from e
        return len(stale)

    async def coverage(self, hashes: Sequence[str], now: dt.datetime) -> tuple[int, int, int]:
        if not hashes:
            return 0, 0, 0
        marks = _marks(len(hashes))
        async with self._lock:
            cur = await self._conn.execute(
                f"SELECT (SELECT count(*) FROM ocsp_responses WHERE hash IN ({marks})),"
                " (SELECT count(*) FROM certificates),"
                f" (SELECT count(*) FROM ocsp_responses WHERE refresh_at <= ? AND hash IN ({marks}))",
                (*hashes, _ts(now), *hashes))
            answers, certs, due = await cur.fetchone()
        return answers, certs * len(hashes), due


class DataVersionProbe:
    """Tells, in a few microseconds and without leaving the event loop, whether any other
    connection (another process's `pkirepo revoke`, or the repository's own writer) has
    committed since the last look. `PRAGMA data_version` reads SQLite's shared-memory WAL
    index: no disk I/O and no lock wait. A change only means "look at the change log now"."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)

    def version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()
