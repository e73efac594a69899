"""Beside the SQLite store: the pre-signed OCSP answers (`ocsp_responses`, migration 2) and
a cheap commit probe, both on the same file. The composition root builds this port next to
`SQLiteStore`; the OCSP responder uses it to share answers and notice commits between
processes without polling."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import aiosqlite

from .errors import Unavailable
from .sqlite_store import _dt, _ts
from .store import PresignedResponse, from_serial_key, serial_key


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


# Pre-signed OCSP responses: the `ocsp_responses` table (migration 2), through a connection
# of its own (WAL lets it read while the repository's writer writes) with synchronous=NORMAL:
# a row lost to a power cut is only signed again.

_PRESIGNED_COLS = ("issuer_id, serial, hash, status, reason, revoked_at, responder_key_hash, this_update,"
                   " next_update, single_der, der")


def _presigned(row) -> PresignedResponse:
    return PresignedResponse(row[0], from_serial_key(row[1]), row[2], row[3], row[4], _dt(row[5]), row[6],
                             _dt(row[7]), _dt(row[8]), row[9], row[10])


class SQLitePresignedResponses:
    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None

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
        cur = await self._conn.execute(
            f"SELECT {_PRESIGNED_COLS} FROM ocsp_responses WHERE issuer_id = ? AND serial = ? AND hash = ?",
            (issuer_id, serial_key(serial), hash_name))
        row = await cur.fetchone()
        return None if row is None else _presigned(row)

    async def between(self, issuer_id: int, first: int, last: int) -> list[PresignedResponse]:
        """Every row of the issuer with first <= serial <= last (one page of a scan)."""
        cur = await self._conn.execute(
            f"SELECT {_PRESIGNED_COLS} FROM ocsp_responses WHERE issuer_id = ? AND serial >= ? AND serial <= ?",
            (issuer_id, serial_key(first), serial_key(last)))
        return [_presigned(row) for row in await cur.fetchall()]

    async def put_many(self, rows: Sequence[PresignedResponse]) -> None:
        """Save rows; Unavailable (with SQLite's reason: disk full, read-only, locked) when
        they cannot be written."""
        if not rows:
            return
        try:
            await self._put_many(rows)
        except sqlite3.Error as e:
            raise Unavailable(f"cannot save pre-signed OCSP answers: {e}") from e

    async def _put_many(self, rows: Sequence[PresignedResponse]) -> None:
        await self._conn.executemany(
            f"INSERT OR REPLACE INTO ocsp_responses ({_PRESIGNED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.issuer_id, serial_key(r.serial), r.hash_name, r.status, r.reason, _ts(r.revoked_at),
              r.responder_key_hash, _ts(r.this_update), _ts(r.next_update), r.single_der, r.der) for r in rows])


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
