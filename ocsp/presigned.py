"""Pre-signed OCSP responses in the store, and a cheap way to notice other processes' commits.

The `ocsp_responses` table (migration 2 in publisher/migrations.py) lives in the same
SQLite file as the rest of the repository, so every worker process and every restart
shares the signing work. This module opens its own connections to that file: SQLite in
WAL mode lets them read while the repository's writer writes.

A row records the status it answers (status, reason, revocation time) and the key that
signed it. A reader compares those with the certificate's current row and the current
responder key, and ignores a row that no longer matches, so a row left behind by a crash,
an offline `pkirepo revoke` or a responder key change is never served.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from publisher.store import serial_key

from .request import HashAlgorithm

UTC = dt.timezone.utc


def _ts(when: dt.datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())


def _dt(ts: int | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, UTC)


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


_COLS = ("issuer_id, serial, hash, status, reason, revoked_at, responder_key_hash, this_update, next_update,"
         " single_der, der")
_BY_NAME = {h.hashlib_name: h for h in HashAlgorithm}


def _row(row, serial: int) -> StoredResponse:
    return StoredResponse(row[0], serial, _BY_NAME[row[2]], row[3], row[4], _dt(row[5]), row[6], _dt(row[7]),
                          _dt(row[8]), row[9], row[10])


class PresignedTable:
    """Reads and writes `ocsp_responses` through a connection of its own."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {int(self._busy)}")
        await conn.execute("PRAGMA synchronous = NORMAL")  # a lost row is only signed again
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def get(self, issuer_id: int, serial: int, hash_algorithm: HashAlgorithm) -> StoredResponse | None:
        cur = await self._conn.execute(
            f"SELECT {_COLS} FROM ocsp_responses WHERE issuer_id = ? AND serial = ? AND hash = ?",
            (issuer_id, serial_key(serial), hash_algorithm.hashlib_name),
        )
        row = await cur.fetchone()
        return None if row is None else _row(row, serial)

    async def between(self, issuer_id: int, first: int, last: int) -> list[StoredResponse]:
        """Every row of the issuer with first <= serial <= last (one page of a scan)."""
        cur = await self._conn.execute(
            f"SELECT {_COLS} FROM ocsp_responses WHERE issuer_id = ? AND serial >= ? AND serial <= ?",
            (issuer_id, serial_key(first), serial_key(last)),
        )
        out = []
        for row in await cur.fetchall():
            out.append(_row(row, int.from_bytes(row[1][1:], "big")))
        return out

    async def put_many(self, rows: list[StoredResponse]) -> None:
        if not rows:
            return
        await self._conn.executemany(
            f"INSERT OR REPLACE INTO ocsp_responses ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.issuer_id, serial_key(r.serial), r.hash_algorithm.hashlib_name, r.status, r.reason,
                 _ts(r.revoked_at), r.responder_key_hash, _ts(r.this_update), _ts(r.next_update), r.single_der,
                 r.der)
                for r in rows
            ],
        )

    async def count(self) -> int:
        cur = await self._conn.execute("SELECT count(*) FROM ocsp_responses")
        (n,) = await cur.fetchone()
        return n


class DataVersionWatch:
    """Tells, in a few microseconds and without leaving the event loop, whether any other
    connection (another process's `pkirepo revoke`, or the repository's own writer) has
    committed to the database since the last look.

    `PRAGMA data_version` reads SQLite's shared-memory WAL index: no disk I/O and no lock
    wait, which is why it is called synchronously on every request. A change only means
    "look at the change log now"; the log says what changed.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)

    def version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()
