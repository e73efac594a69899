"""The embedded default store: one SQLite file in WAL mode, through aiosqlite.

Two connections: a writer, whose transactions are serialised by an asyncio lock (SQLite
allows one writer; other processes wait on busy_timeout), and a reader, so that a long CRL
read never waits behind a write and never sees a half-finished one.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import datetime as dt
import os
import operator
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterable, AsyncIterator, Sequence

import aiosqlite

from . import audit as auditmod
from .crl import Reason, ScopeKind
from .copy_plan import COPY_MARKER, incomplete_message
from .errors import Conflict, NotFound, StoreCorrupt, StoreIncomplete, StoreMissing, Unavailable
from .maintenance import EMERGENCY, SCHEDULED, Downtime, Window, active, check_schedule
from .migrations import MIGRATIONS
from . import trustlist as tlmod
from .notices import NewNotice
from .store import (
    CertRecord,
    IdempotentAnswer,
    abandoned_claim,
    TrustListRecord,
    CrlRecord,
    DocumentRecord,
    NoticeRecord,
    EntrySnapshot,
    Event,
    Issuer,
    NewCert,
    Scope,
    Status,
    StatusChange,
    Store,
    from_serial_key,
    serial_hex,
    serial_key,
    transition,
)

UTC = dt.timezone.utc


def corrupt_message(path: Path, e: BaseException) -> str:
    return (f"{path}: the store is damaged (SQLite: {e}). `pkirepo check` reports what is wrong; "
            f"{RECOVERY_HINT}")


def _ts(when: dt.datetime | int | None) -> int | None:
    if when is None or type(when) is int:  # bulk imports pass Unix seconds (see NewCert)
        return when
    return int(when.timestamp())


def _dt(ts: int | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, UTC)


_READ_MMAP = 1 << 30


class _DryRun(Exception):
    """Raised inside a write transaction to roll back what a dry run did."""
_ISSUER_SERIAL = operator.itemgetter(1, 2)


async def _once(certs: Sequence[NewCert]):
    yield certs


def _rows(chunk: Sequence[NewCert], first_id: int, now: int, counts: dict) -> tuple[list, list]:
    """Insert rows for one chunk, sorted by (issuer, serial) so the indexes mostly grow at
    their end rather than taking inserts at random places."""
    rows = []
    revoked = []
    good = Status.GOOD
    for c in chunk:
        key = serial_key(c.serial)
        k = counts.setdefault(c.issuer_id, [0, False])
        k[0] += 1
        na = _ts(c.not_after)
        if c.status != good:
            if c.entry is None:
                raise ValueError("a revoked or held certificate needs its CRL entry")
            k[1] = True
        rows.append([None, c.issuer_id, key, c.der, c.subject, _ts(c.not_before), na, c.dp_url, int(c.is_ca),
                     int(c.status), None if c.reason is None else int(c.reason), _ts(c.revoked_at),
                     _ts(c.invalidity_at), now, c.entry])
    rows.sort(key=_ISSUER_SERIAL)
    for i, row in enumerate(rows):
        row[0] = first_id + i
        entry = row.pop()
        if entry is not None and row[9] != good:
            revoked.append((row[0], row[1], row[2], row[7], row[8], row[6], entry))
    return rows, revoked

_ISSUER_COLS = "id, name, subject_der, key_id, cert_der, retired_at, keep_published"


def _issuer(row) -> Issuer:
    return Issuer(row[0], row[1], row[2], row[3], row[4], retired_at=_dt(row[5]), keep_published=bool(row[6]))


_CERT_COLS = ("id, issuer_id, serial, der, subject, not_before, not_after, dp_url, is_ca, "
              "status, reason, revoked_at, invalidity_at")


def _cert(row) -> CertRecord:
    return CertRecord(
        id=row[0],
        issuer_id=row[1],
        serial=from_serial_key(row[2]),
        der=row[3],
        subject=row[4],
        not_before=_dt(row[5]),
        not_after=_dt(row[6]),
        dp_url=row[7],
        is_ca=bool(row[8]),
        status=Status(row[9]),
        reason=None if row[10] is None else Reason(row[10]),
        revoked_at=_dt(row[11]),
        invalidity_at=_dt(row[12]),
    )


_CRL_COLS = ("c.id, c.number, c.this_update, c.next_update, c.sha256, c.size, c.entries, "
             "c.covered_event, c.issued_at, c.source, s.id, s.issuer_id, s.kind, s.dp_url, s.name")


def _crl(row) -> CrlRecord:
    return CrlRecord(
        id=row[0],
        number=from_serial_key(row[1]),
        this_update=_dt(row[2]),
        next_update=_dt(row[3]),
        sha256=row[4],
        size=row[5],
        entries=row[6],
        covered_event=row[7],
        issued_at=_dt(row[8]),
        source=row[9],
        scope=Scope(row[10], row[11], ScopeKind(row[12]), row[13], row[14]),
    )


RECOVERY_HINT = ("restore the last backup of the store, or rebuild it from the published CRLs "
                 "with `pkirepo recover` (every revoked serial, reason and date is in them)")


class SQLiteStore(Store):
    """`create=False` refuses a missing or empty file instead of starting a new, empty
    repository there: only explicit commands (`pkirepo init`, `demo init`, `recover`) create."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000, create: bool = True) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._create = create
        self._w: aiosqlite.Connection | None = None
        self._r: aiosqlite.Connection | None = None
        self._wlock = asyncio.Lock()
        self._rlock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            # FULL: a committed change survives power loss too, not only a process crash.
            await conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            await conn.close()  # its thread would keep the process from exiting
            raise
        return conn

    async def open(self) -> None:
        if self._create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                raise StoreMissing(
                    f"{self.path}: no store here. Check store.path in the config; to start a new, "
                    f"empty repository run `pkirepo init`; otherwise {RECOVERY_HINT}") from None
            if size == 0:
                raise StoreMissing(f"{self.path}: the store file is empty; {RECOVERY_HINT}")
        try:
            self._w = await self._connect()
            mode = await (await self._w.execute("PRAGMA journal_mode = WAL")).fetchone()
            if mode[0].lower() != "wal":
                raise Unavailable(f"{self.path}: cannot switch SQLite to WAL mode (got {mode[0]})")
            # Reads the schema: a file that is not a database, or a damaged header, fails here.
            await self._w.execute("SELECT count(*) FROM sqlite_master")
            await self._migrate()
            await self._refuse_incomplete_copy()
            self._r = await self._connect()
            # Reads go through a memory map instead of a read() per page: a million-entry CRL
            # walks tens of megabytes of index. Address space only; the writer is unaffected.
            await self._r.execute(f"PRAGMA mmap_size = {_READ_MMAP}")
        except BaseException as e:
            # Never leave aiosqlite's threads behind: the process would not exit.
            await self.close()
            if type(e) is sqlite3.DatabaseError:  # corruption, not busy or constraint errors
                raise StoreCorrupt(corrupt_message(self.path, e)) from None
            raise

    async def close(self) -> None:
        for conn in (self._r, self._w):
            if conn is not None:
                await conn.close()
        self._r = self._w = None

    async def check(self) -> list[str]:
        """SQLite's own integrity check of every page and index; [] when the store is sound."""
        try:
            rows = await (await self._r.execute("PRAGMA integrity_check")).fetchall()
        except sqlite3.DatabaseError as e:
            return [str(e)]
        problems = [r[0] for r in rows]
        return [] if problems == ["ok"] else problems

    async def _refuse_incomplete_copy(self) -> None:
        row = await (await self._w.execute("SELECT value FROM meta WHERE key = ?", (COPY_MARKER,))).fetchone()
        if row is not None:
            raise StoreIncomplete(incomplete_message(str(self.path), row[0]))

    async def _migrate(self) -> None:
        async with self._wlock:
            (version,) = await (await self._w.execute("PRAGMA user_version")).fetchone()
            if version > len(MIGRATIONS):
                raise Unavailable(
                    f"{self.path}: schema version {version} is newer than this pkirepo knows ({len(MIGRATIONS)})"
                )
            for number in range(version + 1, len(MIGRATIONS) + 1):
                # executescript commits first; the script holds its own BEGIN/COMMIT so the
                # migration and the version bump land together.
                await self._w.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\nPRAGMA user_version = {number};\nCOMMIT;"
                )

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front so that a
        read-then-write never fails half-way with SQLITE_BUSY."""
        async with self._wlock:
            conn = self._w
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise Unavailable(f"store busy: {e}") from e
            try:
                yield conn
            except BaseException as e:
                await conn.execute("ROLLBACK")
                self._corrupt(e)
                raise
            else:
                await conn.execute("COMMIT")

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read transaction: every statement inside sees the same committed state."""
        async with self._rlock:
            conn = self._r
            await conn.execute("BEGIN")
            try:
                yield conn
            except BaseException as e:
                self._corrupt(e)
                raise
            finally:
                await conn.execute("COMMIT")

    def _corrupt(self, e: BaseException) -> None:
        """A damaged page met while serving becomes StoreCorrupt, naming the file."""
        if type(e) is sqlite3.DatabaseError:  # not busy (OperationalError) or constraints
            raise StoreCorrupt(corrupt_message(self.path, e)) from None

    async def _one(self, sql: str, args: Sequence = ()):
        async with self._rlock:
            try:
                return await (await self._r.execute(sql, args)).fetchone()
            except sqlite3.DatabaseError as e:
                self._corrupt(e)
                raise

    async def _all(self, sql: str, args: Sequence = ()):
        async with self._rlock:
            try:
                return await (await self._r.execute(sql, args)).fetchall()
            except sqlite3.DatabaseError as e:
                self._corrupt(e)
                raise

    @staticmethod
    async def _event(conn, kind: str, at: dt.datetime, issuer_id=None, cert_id=None, detail=None) -> int:
        cur = await conn.execute(
            "INSERT INTO events (at, kind, issuer_id, cert_id, detail) VALUES (?, ?, ?, ?, ?)",
            (_ts(at), kind, issuer_id, cert_id, detail),
        )
        return cur.lastrowid

    # Issuers

    async def put_issuer(self, name: str, cert_der: bytes, subject_der: bytes, key_id: bytes) -> Issuer:
        async with self._write() as w:
            row = await (await w.execute("SELECT id, cert_der FROM issuers WHERE name = ?", (name,))).fetchone()
            if row is None:
                cur = await w.execute(
                    "INSERT INTO issuers (name, subject_der, key_id, cert_der) VALUES (?, ?, ?, ?)",
                    (name, subject_der, key_id, cert_der),
                )
                issuer_id = cur.lastrowid
                await self._event(w, "issuer-add", dt.datetime.now(UTC), issuer_id, detail=name)
            else:
                issuer_id = row[0]
                if row[1] != cert_der:
                    await w.execute(
                        "UPDATE issuers SET subject_der = ?, key_id = ?, cert_der = ? WHERE id = ?",
                        (subject_der, key_id, cert_der, issuer_id),
                    )
                    await self._event(w, "issuer-update", dt.datetime.now(UTC), issuer_id, detail=name)
            row = await (await w.execute(f"SELECT {_ISSUER_COLS} FROM issuers WHERE id = ?", (issuer_id,))).fetchone()
        return _issuer(row)

    async def issuers(self) -> list[Issuer]:
        rows = await self._all(f"SELECT {_ISSUER_COLS} FROM issuers ORDER BY id")
        return [_issuer(r) for r in rows]

    async def retire_issuer(self, issuer_id: int, *, at: dt.datetime, keep_published: bool) -> Issuer:
        async with self._write() as w:
            row = await (await w.execute(f"SELECT {_ISSUER_COLS} FROM issuers WHERE id = ?", (issuer_id,))).fetchone()
            if row is None:
                raise NotFound(f"no issuer with id {issuer_id}")
            issuer = _issuer(row)
            if issuer.retired_at is not None:
                raise Conflict(f"CA {issuer.name} was already retired on {issuer.retired_at.isoformat()}")
            await w.execute("UPDATE issuers SET retired_at = ?, keep_published = ? WHERE id = ?",
                            (_ts(at), int(keep_published), issuer_id))
            await self._event(w, "ca-retire", at, issuer_id,
                              detail=f"{issuer.name}{' (kept published)' if keep_published else ''}")
            row = await (await w.execute(f"SELECT {_ISSUER_COLS} FROM issuers WHERE id = ?", (issuer_id,))).fetchone()
        return _issuer(row)

    async def raise_crl_number_floor(self, issuer_id: int, floor: int, *, at: dt.datetime) -> None:
        key = serial_key(floor)
        async with self._write() as w:
            await w.execute(
                "UPDATE issuers SET crl_number_floor = ? WHERE id = ? AND (crl_number_floor IS NULL OR crl_number_floor < ?)",
                (key, issuer_id, key))
            await w.execute(
                "UPDATE scopes SET last_number = ? WHERE issuer_id = ? AND (last_number IS NULL OR last_number < ?)",
                (key, issuer_id, key))
            await self._event(w, "crl-number-floor", at, issuer_id, detail=str(floor))

    # Certificates

    async def add_certificates(self, certs: Sequence[NewCert], *, at: dt.datetime) -> int:
        if not certs:
            return 0
        return await self.add_certificates_stream(_once(certs), at=at)

    async def add_certificates_stream(self, chunks: AsyncIterable[Sequence[NewCert]], *, at: dt.datetime,
                                      dry_run: bool = False) -> int:
        """All chunks in one write transaction. While SQLite inserts one chunk (in
        aiosqlite's thread, which releases the GIL as it steps), the caller's generator
        parses the next: a million-line import costs about max(parse, insert), not the sum."""
        now = _ts(at)
        counts: dict[int, list] = {}
        total = 0
        failed: Sequence[NewCert] = ()
        try:
            async with self._write() as w:
                # Ids are handed out here, inside the write transaction (BEGIN IMMEDIATE: no
                # other writer), so each revoked row names its certificate directly.
                (next_id,) = await (await w.execute("SELECT coalesce(max(id), 0) + 1 FROM certificates")).fetchone()
                # A bulk import touches every index page at random (serials are random): with
                # SQLite's default 2 MiB cache a million rows spill and re-read pages all the
                # way. Up to 1 GiB while it lasts; the cache only grows as pages are used.
                (cache_size,) = await (await w.execute("PRAGMA cache_size")).fetchone()
                await w.execute("PRAGMA cache_size = -1048576")
                pending: asyncio.Future | None = None
                pending_chunk: Sequence[NewCert] = ()
                try:
                    async for chunk in chunks:
                        if not chunk:
                            continue
                        certs_rows, revoked_rows = _rows(chunk, next_id, now, counts)
                        next_id += len(chunk)
                        total += len(chunk)
                        if pending is not None:
                            failed, p, pending = pending_chunk, pending, None
                            await p
                        pending_chunk = chunk
                        pending = asyncio.ensure_future(self._insert_rows(w, certs_rows, revoked_rows))
                        await asyncio.sleep(0)  # hand the chunk to SQLite's thread before parsing on
                    if pending is not None:
                        failed, p, pending = pending_chunk, pending, None
                        await p
                finally:
                    if pending is not None:  # the producer failed: let the insert finish, then roll back
                        await asyncio.gather(pending, return_exceptions=True)
                for issuer_id in sorted(counts):
                    await self._event(w, "cert-add", at, issuer_id, detail=str(counts[issuer_id][0]))
                    if counts[issuer_id][1]:
                        await self._event(w, "import-revoked", at, issuer_id)
                await w.execute(f"PRAGMA cache_size = {int(cache_size)}")
                if dry_run:
                    # Everything was inserted and checked as a real run would; undo it all.
                    raise _DryRun()
        except _DryRun:
            return total
        except sqlite3.IntegrityError as e:
            dup = await self._first_existing(failed)
            what = f"certificate {serial_hex(dup.serial)}" if dup else "a certificate"
            raise Conflict(f"{what} is already in the repository; nothing was added",
                           serial=dup.serial if dup else None) from e
        return total

    @staticmethod
    async def _insert_rows(w, certs_rows, revoked_rows) -> None:
        # executemany: one thread hop per chunk, so the import is bounded by SQLite, not by
        # per-row round trips.
        await w.executemany(
            "INSERT INTO certificates (id, issuer_id, serial, der, subject, not_before, not_after, dp_url,"
            " is_ca, status, reason, revoked_at, invalidity_at, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", certs_rows)
        if revoked_rows:
            await w.executemany(
                "INSERT INTO revoked (cert_id, issuer_id, serial, dp_url, is_ca, not_after, entry)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", revoked_rows)

    async def _first_existing(self, certs: Sequence[NewCert]) -> NewCert | None:
        for c in certs:
            if await self.certificate(c.issuer_id, c.serial) is not None:
                return c
        return None

    async def certificate(self, issuer_id: int, serial: int) -> CertRecord | None:
        row = await self._one(
            f"SELECT {_CERT_COLS} FROM certificates WHERE issuer_id = ? AND serial = ?",
            (issuer_id, serial_key(serial)),
        )
        return None if row is None else _cert(row)

    async def certificates(self, issuer_id: int, *, after_serial: int = -1, limit: int = 1000) -> list[CertRecord]:
        after = b"" if after_serial < 0 else serial_key(after_serial)
        rows = await self._all(
            f"SELECT {_CERT_COLS} FROM certificates WHERE issuer_id = ? AND serial > ? ORDER BY serial LIMIT ?",
            (issuer_id, after, limit),
        )
        return [_cert(r) for r in rows]

    async def list_certificates(self, *, issuer_id=None, status=None, expiring_before=None, after=None,
                                limit: int = 1000) -> list[CertRecord]:
        where, args = [], []
        if after is not None:
            # Keyset paging on the (issuer_id, serial) unique index: every page costs the
            # same however deep into a million certificates it is.
            where.append("(issuer_id, serial) > (?, ?)")
            args += [after[0], serial_key(after[1])]
        if issuer_id is not None:
            where.append("issuer_id = ?")
            args.append(issuer_id)
        if status is not None:
            where.append("status = ?")
            args.append(int(status))
        if expiring_before is not None:
            where.append("not_after < ?")
            args.append(_ts(expiring_before))
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._all(
            f"SELECT {_CERT_COLS} FROM certificates {cond} ORDER BY issuer_id, serial LIMIT ?", (*args, limit))
        return [_cert(r) for r in rows]

    async def last_status_event(self, cert: CertRecord) -> Event | None:
        row = await self._one(
            "SELECT id, at, kind, issuer_id, cert_id, detail FROM events"
            " WHERE issuer_id = ? AND kind IN ('revoke', 'hold', 'release') AND cert_id = ?"
            " ORDER BY id DESC LIMIT 1", (cert.issuer_id, cert.id))
        return None if row is None else Event(row[0], _dt(row[1]), row[2], row[3], row[4], row[5])

    async def change_status(self, change: StatusChange) -> CertRecord:
        key = serial_key(change.serial)
        async with self._write() as w:
            row = await (await w.execute(
                f"SELECT {_CERT_COLS} FROM certificates WHERE issuer_id = ? AND serial = ?",
                (change.issuer_id, key),
            )).fetchone()
            if row is None:
                raise NotFound(f"no certificate with serial {serial_hex(change.serial)} from this issuer")
            cert = _cert(row)
            new = transition(cert.status, change.action, cert.serial_hex)
            if new is Status.GOOD:
                await w.execute(
                    "UPDATE certificates SET status = 0, reason = NULL, revoked_at = NULL, invalidity_at = NULL"
                    " WHERE id = ?", (cert.id,))
                await w.execute("DELETE FROM revoked WHERE cert_id = ?", (cert.id,))
            else:
                if change.entry is None:
                    raise ValueError("a revocation or hold needs its CRL entry")
                reason = None if change.reason is None else int(change.reason)
                await w.execute(
                    "UPDATE certificates SET status = ?, reason = ?, revoked_at = ?, invalidity_at = ? WHERE id = ?",
                    (int(new), reason, _ts(change.at), _ts(change.invalidity_at), cert.id),
                )
                await w.execute(
                    "INSERT OR REPLACE INTO revoked (cert_id, issuer_id, serial, dp_url, is_ca, not_after, entry)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (cert.id, cert.issuer_id, key, cert.dp_url, int(cert.is_ca), _ts(cert.not_after), change.entry),
                )
            await self._event(w, change.action.value, change.at, cert.issuer_id, cert.id, cert.serial_hex)
            row = await (await w.execute(f"SELECT {_CERT_COLS} FROM certificates WHERE id = ?", (cert.id,))).fetchone()
        return _cert(row)

    # The name index

    async def certificates_by_id(self, *, after_id: int = 0, limit: int = 1000) -> list[CertRecord]:
        rows = await self._all(f"SELECT {_CERT_COLS} FROM certificates WHERE id > ? ORDER BY id LIMIT ?",
                               (after_id, limit))
        return [_cert(r) for r in rows]

    async def name_index_position(self) -> tuple[int, int]:
        async with self._snapshot() as r:
            row = await (await r.execute("SELECT value FROM meta WHERE key = 'cert_names_upto'")).fetchone()
            (last,) = await (await r.execute("SELECT coalesce(max(id), 0) FROM certificates")).fetchone()
        return (int(row[0]) if row else 0), last

    async def add_cert_names(self, names: Sequence[tuple[str, str, int]], *, upto: int) -> None:
        async with self._write() as w:
            if names:
                # OR IGNORE: two processes serving the same store may read the same page.
                await w.executemany("INSERT OR IGNORE INTO cert_names (attr, value, cert_id) VALUES (?, ?, ?)",
                                    names)
            await w.execute(
                "INSERT INTO meta (key, value) VALUES ('cert_names_upto', ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(upto),))

    async def certificates_named(self, issuer_id: int, attr: str, value: str, *, after_serial: int = -1,
                                 limit: int = 1000) -> list[CertRecord]:
        after = b"" if after_serial < 0 else serial_key(after_serial)
        cols = ", ".join(f"c.{c.strip()}" for c in _CERT_COLS.split(","))
        rows = await self._all(
            # CROSS JOIN keeps the name index the outer loop: otherwise SQLite may walk the
            # issuer's whole (issuer_id, serial) index for the ORDER BY.
            f"SELECT {cols} FROM cert_names n CROSS JOIN certificates c ON c.id = n.cert_id"
            " WHERE n.attr = ? AND n.value = ? AND c.issuer_id = ? AND c.serial > ? ORDER BY c.serial LIMIT ?",
            (attr, value, issuer_id, after, limit))
        return [_cert(r) for r in rows]

    # CRLs

    async def ensure_scope(self, issuer_id: int, kind: ScopeKind, dp_url: str, name: str) -> Scope:
        async with self._write() as w:
            row = await (await w.execute(
                "SELECT id, name FROM scopes WHERE issuer_id = ? AND kind = ? AND dp_url = ?",
                (issuer_id, kind.value, dp_url),
            )).fetchone()
            if row is not None:
                if row[1] != name:
                    # Renaming a published CRL would break every URL that names it.
                    raise Conflict(f"the {kind.value} CRL {dp_url or ''} is already published as {row[1]!r}, not {name!r}")
                return Scope(row[0], issuer_id, kind, dp_url, name)
            try:
                # A new scope of a CA whose numbering was carried over starts above it too.
                cur = await w.execute(
                    "INSERT INTO scopes (issuer_id, kind, dp_url, name, last_number)"
                    " VALUES (?, ?, ?, ?, (SELECT crl_number_floor FROM issuers WHERE id = ?))",
                    (issuer_id, kind.value, dp_url, name, issuer_id),
                )
            except sqlite3.IntegrityError as e:
                raise Conflict(f"CRL name {name!r} is already used by another CRL scope") from e
            return Scope(cur.lastrowid, issuer_id, kind, dp_url, name)

    async def scopes(self) -> list[Scope]:
        rows = await self._all("SELECT id, issuer_id, kind, dp_url, name FROM scopes ORDER BY id")
        return [Scope(r[0], r[1], ScopeKind(r[2]), r[3], r[4]) for r in rows]

    async def dp_urls(self, issuer_id: int) -> list[str]:
        # One index seek per distinct URL (a handful), not one step per certificate: each
        # round asks for the least URL above the previous one (a "skip scan").
        rows = await self._all(
            "WITH RECURSIVE urls(u) AS ("
            " SELECT (SELECT min(dp_url) FROM certificates"
            "   WHERE issuer_id = ?1 AND is_ca = 0 AND dp_url IS NOT NULL)"
            " UNION ALL"
            " SELECT (SELECT min(dp_url) FROM certificates"
            "   WHERE issuer_id = ?1 AND is_ca = 0 AND dp_url IS NOT NULL AND dp_url > urls.u)"
            " FROM urls WHERE urls.u IS NOT NULL)"
            " SELECT u FROM urls WHERE u IS NOT NULL", (issuer_id,))
        return [r[0] for r in rows]

    async def snapshot_entries(self, scope: Scope, *, expired_before: dt.datetime | None = None) -> EntrySnapshot:
        where = ["issuer_id = ?"]
        args: list = [scope.issuer_id]
        if scope.kind is ScopeKind.PARTITION:
            where += ["dp_url = ?", "is_ca = 0"]
            args.append(scope.dp_url)
        elif scope.kind is ScopeKind.ARL:
            where.append("is_ca = 1")
        if expired_before is not None:
            # Certificates of unknown expiry (index imports) are always kept.
            where.append("(not_after IS NULL OR not_after >= ?)")
            args.append(_ts(expired_before))
        cond = " AND ".join(where)
        # The entries are joined inside SQLite, walking a covering index (migration 3) in
        # serial order: one value crosses into Python instead of a million rows (4.7 s ->
        # 0.3 s for 1M entries). group_concat copies BLOB bytes as they are, in the order
        # the ORDER BY subquery delivers them: SQLite never flattens an ORDER BY subquery
        # into an aggregate query (query flattener, constraint 16), so the order holds.
        sql = (f"SELECT CAST(group_concat(entry, '') AS BLOB), count(*)"
               f" FROM (SELECT entry FROM revoked WHERE {cond} ORDER BY serial)")
        async with self._snapshot() as r:
            (covered,) = await (await r.execute("SELECT coalesce(max(id), 0) FROM events")).fetchone()
            try:
                entries, count = await (await r.execute(sql, args)).fetchone()
            except sqlite3.DataError:  # beyond SQLITE_MAX_LENGTH (1 GB, ~18M entries): row by row
                rows = await (await r.execute(
                    f"SELECT entry FROM revoked WHERE {cond} ORDER BY serial", args)).fetchall()
                entries, count = b"".join(row[0] for row in rows), len(rows)
        return EntrySnapshot(bytes(entries or b""), count, covered)

    async def reserve_crl_number(self, scope: Scope) -> int:
        async with self._write() as w:
            row = await (await w.execute(
                "SELECT s.last_number, (SELECT max(number) FROM crls WHERE scope_id = s.id)"
                " FROM scopes s WHERE s.id = ?", (scope.id,))).fetchone()
            if row is None:
                raise NotFound(f"no CRL scope {scope.name!r}")
            last = max(from_serial_key(k) if k else 0 for k in row)
            number = last + 1
            await w.execute("UPDATE scopes SET last_number = ? WHERE id = ?", (serial_key(number), scope.id))
        return number

    async def record_crl(self, scope, number, this_update, next_update, der, *, entries, covered_event,
                         issued_at, source="signed") -> CrlRecord:
        import hashlib

        # A million-entry CRL is tens of megabytes: hash it off the event loop (hashlib
        # releases the GIL), as it was built and signed.
        sha = await asyncio.to_thread(lambda: hashlib.sha256(der).hexdigest())
        key = serial_key(number)
        async with self._write() as w:
            (highest,) = await (await w.execute(
                "SELECT max(number) FROM crls WHERE scope_id = ?", (scope.id,))).fetchone()
            if highest is not None and key <= highest:
                raise Conflict(
                    f"CRL number {number} of {scope.name} does not exceed the last one issued "
                    f"({from_serial_key(highest)})")
            cur = await w.execute(
                "INSERT INTO crls (scope_id, number, this_update, next_update, sha256, size, entries, covered_event,"
                " issued_at, source, der) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (scope.id, key, _ts(this_update), _ts(next_update), sha, len(der), entries, covered_event,
                 _ts(issued_at), source, der),
            )
            crl_id = cur.lastrowid
            # Keep the counter ahead of handed-in numbers too.
            await w.execute(
                "UPDATE scopes SET last_number = ? WHERE id = ? AND (last_number IS NULL OR last_number < ?)",
                (key, scope.id, key))
            await self._event(w, "crl", issued_at, scope.issuer_id, detail=f"{scope.name} #{number}")
        return CrlRecord(crl_id, scope, number, this_update, next_update, sha, len(der), entries, covered_event,
                         issued_at, source)

    async def current_crls(self) -> list[CrlRecord]:
        rows = await self._all(
            f"SELECT {_CRL_COLS} FROM crls c JOIN scopes s ON s.id = c.scope_id"
            " WHERE c.number = (SELECT max(number) FROM crls WHERE scope_id = c.scope_id) ORDER BY s.id")
        return [_crl(r) for r in rows]

    async def crl_der(self, crl_id: int) -> bytes:
        row = await self._one("SELECT der FROM crls WHERE id = ?", (crl_id,))
        if row is None:
            raise NotFound(f"no CRL with id {crl_id}")
        return row[0]

    async def crl_archive(self, scope_name: str) -> list[CrlRecord]:
        if await self._one("SELECT 1 FROM scopes WHERE name = ?", (scope_name,)) is None:
            raise NotFound(f"no CRL named {scope_name!r}")
        rows = await self._all(
            f"SELECT {_CRL_COLS} FROM crls c JOIN scopes s ON s.id = c.scope_id WHERE s.name = ? ORDER BY c.number",
            (scope_name,))
        return [_crl(r) for r in rows]

    async def crl_by_number(self, scope_name: str, number: int) -> CrlRecord | None:
        row = await self._one(
            f"SELECT {_CRL_COLS} FROM crls c JOIN scopes s ON s.id = c.scope_id WHERE s.name = ? AND c.number = ?",
            (scope_name, serial_key(number)))
        return None if row is None else _crl(row)

    async def prune_crls(self, before: dt.datetime) -> int:
        async with self._write() as w:
            cur = await w.execute(
                "DELETE FROM crls WHERE this_update < ?"
                " AND number < (SELECT max(number) FROM crls c2 WHERE c2.scope_id = crls.scope_id)",
                (_ts(before),))
            return cur.rowcount

    # Disclosure documents

    _DOC_COLUMNS = "id, kind, version, lang, effective, oid, media_type, ext, size, sha256, published_at"

    @staticmethod
    def _document(row) -> DocumentRecord:
        return DocumentRecord(row[0], row[1], row[2], row[3], dt.date.fromisoformat(row[4]), row[5], row[6],
                              row[7], row[8], row[9], _dt(row[10]))

    async def add_document(self, kind, version, lang, *, effective, oid, media_type, ext, data, at):
        async with self._write() as w:
            rows = await (await w.execute(
                "SELECT version, effective FROM documents WHERE kind = ? AND lang = ? ORDER BY id",
                (kind, lang))).fetchall()
            if any(v == version for v, _ in rows):
                raise Conflict(f"{kind} version {version!r} in {lang} is already published; "
                               f"a published version is never replaced: publish a new version")
            if rows and effective < dt.date.fromisoformat(rows[-1][1]):
                raise Conflict(f"effective date {effective.isoformat()} is before {rows[-1][1]}, when the current "
                               f"{kind} ({lang}) version {rows[-1][0]!r} took effect")
            digest = hashlib.sha256(data).hexdigest()
            cur = await w.execute(
                "INSERT INTO documents (kind, version, lang, effective, oid, media_type, ext, size, sha256, "
                "published_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, version, lang, effective.isoformat(), oid, media_type, ext, len(data), digest, _ts(at), data))
            await self._event(w, "document", at, detail=f"{kind} {version} {lang} sha256={digest}")
            row = await (await w.execute(f"SELECT {self._DOC_COLUMNS} FROM documents WHERE id = ?",
                                         (cur.lastrowid,))).fetchone()
        return self._document(row)

    async def documents(self) -> list[DocumentRecord]:
        return [self._document(r) for r in await self._all(f"SELECT {self._DOC_COLUMNS} FROM documents ORDER BY id")]

    async def document_bytes(self, kind: str, version: str, lang: str) -> tuple[DocumentRecord, bytes] | None:
        row = await self._one(f"SELECT {self._DOC_COLUMNS}, data FROM documents WHERE kind = ? AND version = ? "
                              f"AND lang = ?", (kind, version, lang))
        return None if row is None else (self._document(row[:11]), row[11])

    # The trust list of qualifying certificate types

    _TL_COLUMNS = "seq, issued_at, next_update, sha256, length(xml)"

    @staticmethod
    def _trustlist(row) -> TrustListRecord:
        return TrustListRecord(row[0], _dt(row[1]), _dt(row[2]), row[3], row[4])

    @staticmethod
    async def _trust_entries(conn) -> tuple[tlmod.Entry, ...]:
        history: dict[int, list[tlmod.StatusPeriod]] = {}
        for entry_id, status, start in await (await conn.execute(
                "SELECT entry_id, status, start FROM trustlist_statuses ORDER BY entry_id, position")).fetchall():
            history.setdefault(entry_id, []).append(tlmod.StatusPeriod(tlmod.Status(status), _dt(start)))
        rows = await (await conn.execute(
            "SELECT id, ca_name, ca_cert_der, cert_type, policy_oids, cps_url, name_zh_hant, name_en "
            "FROM trustlist_entries ORDER BY id")).fetchall()
        return tuple(tlmod.Entry(r[0], r[1], r[2], tlmod.CertType(r[3]), tuple(r[4].split()), r[5],
                                 (("zh-Hant", r[6]), ("en", r[7])), tuple(history.get(r[0], ())))
                     for r in rows)

    async def trustlist_state(self) -> tuple[int, tuple[tlmod.Entry, ...]]:
        async with self._snapshot() as r:
            (seq,) = await (await r.execute("SELECT coalesce(max(seq), 0) FROM trustlists")).fetchone()
            return seq, await self._trust_entries(r)

    async def add_trustlist(self, *, prev_seq, changed, issued_at, next_update, xml) -> TrustListRecord:
        async with self._write() as w:
            (last,) = await (await w.execute("SELECT coalesce(max(seq), 0) FROM trustlists")).fetchone()
            if last != prev_seq:
                raise Conflict(f"trust list {last} was issued meanwhile (this change was made on list {prev_seq}); "
                               f"run the command again")
            seq = prev_seq + 1
            if changed is not None:
                names = dict(changed.names)
                await w.execute(
                    "INSERT OR IGNORE INTO trustlist_entries (id, ca_name, ca_cert_der, cert_type, policy_oids, "
                    "cps_url, name_zh_hant, name_en) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (changed.id, changed.ca_name, changed.ca_cert_der, changed.cert_type.value,
                     " ".join(changed.policy_oids), changed.cps_url, names["zh-Hant"], names["en"]))
                (stored,) = await (await w.execute(
                    "SELECT count(*) FROM trustlist_statuses WHERE entry_id = ?", (changed.id,))).fetchone()
                await w.executemany(
                    "INSERT INTO trustlist_statuses (entry_id, position, status, start, seq) VALUES (?, ?, ?, ?, ?)",
                    [(changed.id, i, p.status.value, _ts(p.start), seq)
                     for i, p in enumerate(changed.history) if i >= stored])
            digest = hashlib.sha256(xml).hexdigest()
            await w.execute("INSERT INTO trustlists (seq, issued_at, next_update, sha256, xml) VALUES (?, ?, ?, ?, ?)",
                            (seq, _ts(issued_at), _ts(next_update), digest, xml))
            what = "reissued" if changed is None else f"{changed.label} {changed.status.status.value}"
            await self._event(w, "trustlist", issued_at, detail=f"list {seq}: {what} sha256={digest}")
            row = await (await w.execute(f"SELECT {self._TL_COLUMNS} FROM trustlists WHERE seq = ?", (seq,))).fetchone()
        return self._trustlist(row)

    async def trustlists(self) -> list[TrustListRecord]:
        return [self._trustlist(r) for r in await self._all(f"SELECT {self._TL_COLUMNS} FROM trustlists ORDER BY seq")]

    async def trustlist_bytes(self, seq: int | None = None) -> tuple[TrustListRecord, bytes] | None:
        if seq is None:
            row = await self._one(f"SELECT {self._TL_COLUMNS}, xml FROM trustlists ORDER BY seq DESC LIMIT 1")
        else:
            row = await self._one(f"SELECT {self._TL_COLUMNS}, xml FROM trustlists WHERE seq = ?", (seq,))
        return None if row is None else (self._trustlist(row[:5]), row[5])
    # Notices

    _NOTICE_COLUMNS = ("id, kind, title_zh_hant, title_en, body_zh_hant, body_en, starts, ends, published_at, "
                       "withdrawn_at")

    @staticmethod
    def _notice(row) -> NoticeRecord:
        return NoticeRecord(row[0], row[1], {"zh-Hant": row[2], "en": row[3]}, {"zh-Hant": row[4], "en": row[5]},
                            _dt(row[6]), _dt(row[7]), _dt(row[8]), _dt(row[9]))

    async def add_notice(self, notice: NewNotice, *, at: dt.datetime) -> NoticeRecord:
        async with self._write() as w:
            cur = await w.execute(
                "INSERT INTO notices (kind, title_zh_hant, title_en, body_zh_hant, body_en, starts, ends, published_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (notice.kind.value, notice.title["zh-Hant"], notice.title["en"], notice.body["zh-Hant"],
                 notice.body["en"], _ts(notice.starts), _ts(notice.ends), _ts(at)))
            await self._event(w, "notice", at, detail=f"{notice.kind.value} #{cur.lastrowid}")
            row = await (await w.execute(f"SELECT {self._NOTICE_COLUMNS} FROM notices WHERE id = ?",
                                         (cur.lastrowid,))).fetchone()
        return self._notice(row)

    async def withdraw_notice(self, notice_id: int, *, at: dt.datetime) -> NoticeRecord:
        async with self._write() as w:
            row = await (await w.execute(f"SELECT {self._NOTICE_COLUMNS} FROM notices WHERE id = ?",
                                         (notice_id,))).fetchone()
            if row is None:
                raise NotFound(f"no notice {notice_id}")
            if row[9] is not None:
                raise Conflict(f"notice {notice_id} was withdrawn already, at {_dt(row[9]).isoformat()}")
            await w.execute("UPDATE notices SET withdrawn_at = ? WHERE id = ?", (_ts(at), notice_id))
            await self._event(w, "notice", at, detail=f"withdrawn #{notice_id}")
            row = await (await w.execute(f"SELECT {self._NOTICE_COLUMNS} FROM notices WHERE id = ?",
                                         (notice_id,))).fetchone()
        return self._notice(row)

    async def notices(self, *, withdrawn: bool = False, limit: int | None = None) -> list[NoticeRecord]:
        where = "" if withdrawn else " WHERE withdrawn_at IS NULL"
        rows = await self._all(f"SELECT {self._NOTICE_COLUMNS} FROM notices{where} ORDER BY id DESC LIMIT ?",
                               (-1 if limit is None else limit,))
        return [self._notice(r) for r in rows]

    # Change log

    async def change_token(self) -> int:
        (token,) = await self._one("SELECT coalesce(max(id), 0) FROM events")
        return token

    async def last_event(self, issuer_id: int, kinds: Sequence[str]) -> Event | None:
        marks = ",".join("?" * len(kinds))
        row = await self._one(
            f"SELECT id, at, kind, issuer_id, cert_id, detail FROM events WHERE issuer_id = ? AND kind IN ({marks})"
            " ORDER BY id DESC LIMIT 1", (issuer_id, *kinds))
        return None if row is None else Event(row[0], _dt(row[1]), row[2], row[3], row[4], row[5])

    async def events_since(self, event_id: int, *, limit: int = 1000) -> list[Event]:
        rows = await self._all(
            "SELECT id, at, kind, issuer_id, cert_id, detail FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (event_id, limit))
        return [Event(r[0], _dt(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    async def log_event(self, kind: str, *, at: dt.datetime, issuer_id: int | None = None, detail: str | None = None) -> int:
        async with self._write() as w:
            return await self._event(w, kind, at, issuer_id, detail=detail)

    async def certificate_events(self, cert: CertRecord, *, limit: int = 100) -> list[Event]:
        rows = await self._all(
            "SELECT id, at, kind, issuer_id, cert_id, detail FROM events"
            " WHERE issuer_id = ? AND kind IN ('revoke', 'hold', 'release') AND cert_id = ?"
            " ORDER BY id DESC LIMIT ?", (cert.issuer_id, cert.id, limit))
        return [Event(r[0], _dt(r[1]), r[2], r[3], r[4], r[5]) for r in reversed(rows)]

    # Idempotency keys of the admin API

    async def claim_idempotency_key(self, key, actor, request_hash, *, at, expired_before,
                                    abandoned_before=None) -> IdempotentAnswer | None:
        async with self._write() as w:
            await w.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (_ts(expired_before),))
            row = await (await w.execute(
                "SELECT request_hash, status, body, created_at FROM idempotency_keys WHERE actor = ? AND key = ?",
                (actor, key))).fetchone()
            if row is not None and abandoned_claim(row[0], row[1], row[3], request_hash, abandoned_before):
                await w.execute("UPDATE idempotency_keys SET created_at = ? WHERE actor = ? AND key = ?",
                                (_ts(at), actor, key))
                return None
            if row is not None:
                return IdempotentAnswer(key, actor, row[0], row[1], row[2], _dt(row[3]))
            await w.execute("INSERT INTO idempotency_keys (key, actor, request_hash, created_at) VALUES (?, ?, ?, ?)",
                            (key, actor, request_hash, _ts(at)))
            return None

    async def complete_idempotency_key(self, key, actor, status, body) -> None:
        async with self._write() as w:
            await w.execute("UPDATE idempotency_keys SET status = ?, body = ? WHERE actor = ? AND key = ?",
                            (status, body, actor, key))

    async def release_idempotency_key(self, key, actor) -> None:
        async with self._write() as w:
            await w.execute("DELETE FROM idempotency_keys WHERE actor = ? AND key = ? AND status IS NULL",
                            (actor, key))

    # Operations: maintenance windows, heartbeats, the availability ledger, backup.

    _WINDOW_COLS = 'id, start, "end", reason, kind, created_at, cancelled_at'

    @staticmethod
    def _window(row) -> Window:
        return Window(row[0], _dt(row[1]), _dt(row[2]), row[3], row[4], _dt(row[5]), _dt(row[6]))

    async def maintenance_windows(self, *, since: dt.datetime | None = None) -> list[Window]:
        rows = await self._all(f'SELECT {self._WINDOW_COLS} FROM maintenance_windows'
                               f' WHERE "end" IS NULL OR "end" > ? ORDER BY start, id', (_ts(since) or 0,))
        return [self._window(r) for r in rows]

    async def _windows_in(self, w) -> list[Window]:
        rows = await (await w.execute(f"SELECT {self._WINDOW_COLS} FROM maintenance_windows ORDER BY start, id")).fetchall()
        return [self._window(r) for r in rows]

    async def schedule_maintenance(self, start, end, reason, *, budget, at) -> Window:
        async with self._write() as w:
            check_schedule(await self._windows_in(w), start, end, budget, at)
            cur = await w.execute('INSERT INTO maintenance_windows (start, "end", reason, kind, created_at)'
                                  ' VALUES (?, ?, ?, ?, ?)', (_ts(start), _ts(end), reason, SCHEDULED, _ts(at)))
            await self._event(w, "maintenance", at, detail=f"scheduled {start.isoformat()} to {end.isoformat()}")
            return Window(cur.lastrowid, start, end, reason, SCHEDULED, at)

    async def cancel_maintenance(self, window_id: int, *, at: dt.datetime) -> Window:
        async with self._write() as w:
            row = await (await w.execute(f"SELECT {self._WINDOW_COLS} FROM maintenance_windows WHERE id = ?",
                                         (window_id,))).fetchone()
            if row is None:
                raise NotFound(f"no maintenance window {window_id} (`pkirepo maintenance list` shows them)")
            win = self._window(row)
            if win.cancelled_at is not None:
                raise Conflict(f"maintenance window {window_id} was already cancelled at {win.cancelled_at.isoformat()}")
            if win.start <= at:
                raise Conflict(f"maintenance window {window_id} started at {win.start.isoformat()}: "
                               f"end it with `pkirepo maintenance end` instead")
            await w.execute("UPDATE maintenance_windows SET cancelled_at = ? WHERE id = ?", (_ts(at), window_id))
            await self._event(w, "maintenance", at, detail=f"cancelled window {window_id}")
        return dataclasses.replace(win, cancelled_at=at)

    async def start_emergency_maintenance(self, reason: str, *, at: dt.datetime) -> Window:
        async with self._write() as w:
            current = active(await self._windows_in(w), at)
            if current is not None:
                raise Conflict(f"maintenance window {current.id} is under way ({current.kind}, since "
                               f"{current.start.isoformat()}: {current.reason})")
            cur = await w.execute('INSERT INTO maintenance_windows (start, "end", reason, kind, created_at)'
                                  ' VALUES (?, NULL, ?, ?, ?)', (_ts(at), reason, EMERGENCY, _ts(at)))
            await self._event(w, "maintenance", at, detail=f"emergency maintenance started: {reason}")
            return Window(cur.lastrowid, at, None, reason, EMERGENCY, at)

    async def end_maintenance(self, reason: str | None, *, at: dt.datetime) -> Window:
        async with self._write() as w:
            current = active(await self._windows_in(w), at)
            if current is None:
                raise NotFound("no maintenance window is under way")
            text = current.reason if not reason else f"{current.reason}; ended: {reason}"
            await w.execute('UPDATE maintenance_windows SET "end" = ?, reason = ? WHERE id = ?',
                            (_ts(at), text, current.id))
            await self._event(w, "maintenance", at, detail=f"window {current.id} ended")
        return dataclasses.replace(current, end=at, reason=text)

    async def start_heartbeat(self, *, at: dt.datetime, alive_within: dt.timedelta) -> tuple[int, Downtime | None]:
        now = _ts(at)
        async with self._write() as w:
            rows = await (await w.execute("SELECT beat_at, stopped_at FROM heartbeats")).fetchall()
            alive = [b for b, s in rows if s is None and b >= now - alive_within.total_seconds()]
            gap = None
            if rows and not alive:
                last = max(s if s is not None else b for b, s in rows)
                crashed = [b for b, s in rows if s is None and b == last]
                if last < now:
                    cause = (f"not running: crashed (last heartbeat {_dt(last).isoformat()})" if crashed
                             else f"not running: stopped at {_dt(last).isoformat()}")
                    cur = await w.execute('INSERT INTO downtime (start, "end", cause) VALUES (?, ?, ?)',
                                          (last, now, cause))
                    gap = Downtime(cur.lastrowid, _dt(last), at, cause)
            # A process that died without stopping is now accounted for.
            await w.execute("UPDATE heartbeats SET stopped_at = beat_at WHERE stopped_at IS NULL AND beat_at < ?",
                            (now - alive_within.total_seconds(),))
            cur = await w.execute("INSERT INTO heartbeats (started_at, beat_at) VALUES (?, ?)", (now, now))
            return cur.lastrowid, gap

    async def beat(self, heartbeat_id: int, *, at: dt.datetime, stopped: bool = False) -> None:
        async with self._write() as w:
            await w.execute("UPDATE heartbeats SET beat_at = ?, stopped_at = ? WHERE id = ?",
                            (_ts(at), _ts(at) if stopped else None, heartbeat_id))

    async def open_downtime(self, cause: str, *, at: dt.datetime) -> int:
        async with self._write() as w:
            cur = await w.execute('INSERT INTO downtime (start, "end", cause) VALUES (?, NULL, ?)', (_ts(at), cause))
            return cur.lastrowid

    async def close_downtime(self, downtime_id: int, *, at: dt.datetime) -> None:
        async with self._write() as w:
            await w.execute('UPDATE downtime SET "end" = ? WHERE id = ? AND "end" IS NULL', (_ts(at), downtime_id))

    async def downtime(self, *, since: dt.datetime | None = None) -> list[Downtime]:
        rows = await self._all('SELECT id, start, "end", cause FROM downtime WHERE "end" IS NULL OR "end" > ?'
                               ' ORDER BY start, id', (_ts(since) or 0,))
        return [Downtime(r[0], _dt(r[1]), _dt(r[2]), r[3]) for r in rows]

    async def first_start(self) -> dt.datetime | None:
        (first,) = await self._one("SELECT min(started_at) FROM heartbeats")
        return _dt(first)

    async def backup_to(self, path, *, progress=None, pages: int = 1024) -> int:
        """SQLite's online backup API, a few pages at a time: the server's writes go on between
        steps (a write restarts the copy of what changed). The copy goes to a temporary file
        beside `path`, then is renamed, so an interrupted backup never leaves a partial file
        under the name given."""
        target = Path(path)
        tmp = target.with_name(target.name + ".partial")
        tmp.unlink(missing_ok=True)
        done = {"pages": 0}

        def run() -> None:
            src = sqlite3.connect(self.path)
            dst = sqlite3.connect(tmp)
            try:
                src.execute(f"PRAGMA busy_timeout = {int(self._busy)}")

                def step(status, remaining, total):
                    done["pages"] = total
                    if progress is not None:
                        progress(total - remaining, total)

                src.backup(dst, pages=pages, progress=step, sleep=0.005)
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                dst.close()
                src.close()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)

        try:
            await asyncio.to_thread(run)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return done["pages"]

    async def schema_version(self) -> tuple[int, int]:
        (version,) = await self._one("PRAGMA user_version")
        return version, len(MIGRATIONS)

    async def archived_crls(self, *, after_id: int = 0, limit: int = 100) -> list[tuple[CrlRecord, bytes]]:
        rows = await self._all(
            f"SELECT {_CRL_COLS}, c.der FROM crls c JOIN scopes s ON s.id = c.scope_id WHERE c.id > ?"
            " ORDER BY c.id LIMIT ?", (after_id, limit))
        return [(_crl(r[:-1]), r[-1]) for r in rows]

    # The audit trail

    async def append_audit(self, entry: auditmod.Entry) -> auditmod.Record:
        async with self._write() as w:
            head = await (await w.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")).fetchone()
            if head is None:
                head = await (await w.execute("SELECT upto, head FROM audit_pruned")).fetchone()
            rec = auditmod.seal(entry, after=None if head is None else (head[0], head[1]))
            e = rec.entry
            await w.execute(
                f"INSERT INTO audit ({auditmod.COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.seq, _ts(e.at), e.actor_kind, e.actor_name, e.actor_source, e.action, e.obj, e.result,
                 e.detail, rec.prev, rec.hash))
        return rec

    async def audit_records(self, *, after_seq: int = 0, since: dt.datetime | None = None,
                            until: dt.datetime | None = None, limit: int = 1000) -> list[auditmod.Record]:
        where, args = ["seq > ?"], [after_seq]
        if since is not None:
            where.append("at >= ?")
            args.append(_ts(since))
        if until is not None:
            where.append("at < ?")
            args.append(_ts(until))
        rows = await self._all(f"SELECT {auditmod.COLUMNS} FROM audit WHERE {' AND '.join(where)}"
                               f" ORDER BY seq LIMIT ?", (*args, limit))
        return [auditmod.Record.from_row(r) for r in rows]

    async def audit_bounds(self) -> tuple[int, int, tuple[int, str] | None]:
        async with self._snapshot() as r:
            lo, hi = await (await r.execute("SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM audit")).fetchone()
            pruned = await (await r.execute("SELECT upto, head FROM audit_pruned")).fetchone()
        return lo, hi, None if pruned is None else (pruned[0], pruned[1])

    async def add_audit_checkpoint(self, checkpoint: auditmod.Checkpoint) -> None:
        c = checkpoint
        async with self._write() as w:
            await w.execute("INSERT INTO audit_checkpoints (seq, head, at, key_id, algorithm, signature)"
                            " VALUES (?, ?, ?, ?, ?, ?)", (c.seq, c.head, _ts(c.at), c.key_id, c.algorithm, c.signature))

    async def audit_checkpoints(self, *, limit: int | None = None) -> list[auditmod.Checkpoint]:
        rows = await self._all("SELECT seq, head, at, key_id, algorithm, signature FROM audit_checkpoints"
                               " ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,))
        return [auditmod.Checkpoint(r[0], r[1], _dt(r[2]), r[3], r[4], bytes(r[5])) for r in reversed(rows)]

    async def prune_audit(self, before: dt.datetime) -> int:
        async with self._write() as w:
            # The newest checkpoint past the retention whose record is still there, unchanged.
            row = await (await w.execute(
                "SELECT c.seq, c.head FROM audit_checkpoints c JOIN audit a ON a.seq = c.seq AND a.hash = c.head"
                " WHERE a.at < ? ORDER BY c.seq DESC LIMIT 1", (_ts(before),))).fetchone()
            if row is None:
                return 0
            cur = await w.execute("DELETE FROM audit WHERE seq <= ?", (row[0],))
            await w.execute("INSERT INTO audit_pruned (one, upto, head) VALUES (1, ?, ?)"
                            " ON CONFLICT (one) DO UPDATE SET upto = excluded.upto, head = excluded.head", row)
            return cur.rowcount

