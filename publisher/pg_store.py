"""The PostgreSQL store: the same `Store` as sqlite_store.py, on a server database that
several repository nodes share.

Driver: asyncpg. It speaks PostgreSQL's binary protocol (bytea and bigint arrive as bytes
and int without text parsing, which matters for million-entry CRL reads), has its own
connection pool, COPY for bulk imports, and LISTEN support on a pool connection, which the
change notification across nodes will use. psycopg 3's async mode would give SQL-standard
placeholders, but a pool and LISTEN would need more parts.

Semantics mirror the SQLite store exactly (same columns, same sort keys, same errors). Every
mutation is one transaction that first takes the store's write lock, a transaction-level
advisory lock: writers are serialised as SQLite's are, so change-log ids, certificate ids
and CRL numbers become visible in the order they were handed out, and a read-then-write
(a status transition, a CRL number check) cannot race another node's. The lock is released
by the commit or by the server when a node's connection dies.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from contextlib import asynccontextmanager
from typing import AsyncIterable, AsyncIterator, Sequence

import asyncpg

from . import audit as auditmod
from .crl import Reason, ScopeKind
from .copy_plan import COPY_MARKER, incomplete_message
from .db_settings import redact
from .errors import Conflict, NotAllowed, NotFound, StoreIncomplete, StoreMissing, StoreUnreachable, Unavailable
from .notices import NewNotice
from .maintenance import EMERGENCY, SCHEDULED, Downtime, Window, active, check_schedule
from .pg_listen import CHANNEL, ChangeListener
from .pg_migrations import PG_MIGRATIONS
from . import trustlist as tlmod
from .store import (
    CertRecord,
    IdempotentAnswer,
    abandoned_claim,
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
    TrustListRecord,
    from_serial_key,
    serial_hex,
    serial_key,
    transition,
)

UTC = dt.timezone.utc

# The store's write lock (pg_advisory_xact_lock key): "pkirepo" and 1. Later locks (the
# publisher's leadership) take other keys of the same prefix.
WRITE_LOCK = 0x706B6972_65706F01


def _ts(when: dt.datetime | int | None) -> int | None:
    if when is None or type(when) is int:  # bulk imports pass Unix seconds (see NewCert)
        return when
    return int(when.timestamp())


def _dt(ts: int | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, UTC)


class _DryRun(Exception):
    """Raised inside a write transaction to roll back what a dry run did."""


async def _once(certs: Sequence[NewCert]):
    yield certs


_ISSUER_COLS = "id, name, subject_der, key_id, cert_der, retired_at, keep_published"


def _issuer(row) -> Issuer:
    return Issuer(row[0], row[1], row[2], row[3], row[4], retired_at=_dt(row[5]), keep_published=bool(row[6]))


_CERT_COLS = ("id, issuer_id, serial, der, subject, not_before, not_after, dp_url, is_ca, "
              "status, reason, revoked_at, invalidity_at")


def _cert(row) -> CertRecord:
    return CertRecord(
        id=row[0], issuer_id=row[1], serial=from_serial_key(row[2]), der=row[3], subject=row[4],
        not_before=_dt(row[5]), not_after=_dt(row[6]), dp_url=row[7], is_ca=bool(row[8]),
        status=Status(row[9]), reason=None if row[10] is None else Reason(row[10]),
        revoked_at=_dt(row[11]), invalidity_at=_dt(row[12]),
    )


# PostgreSQL has no max() over bytea: the newest CRL of a scope is the first one down the
# (scope_id, number) unique index, which is also the cheapest way to find it.
_CRL_COLS = ("c.id, c.number, c.this_update, c.next_update, c.sha256, c.size, c.entries, "
             "c.covered_event, c.issued_at, c.source, s.id, s.issuer_id, s.kind, s.dp_url, s.name")


def _crl(row) -> CrlRecord:
    return CrlRecord(
        id=row[0], number=from_serial_key(row[1]), this_update=_dt(row[2]), next_update=_dt(row[3]),
        sha256=row[4], size=row[5], entries=row[6], covered_event=row[7], issued_at=_dt(row[8]),
        source=row[9], scope=Scope(row[10], row[11], ScopeKind(row[12]), row[13], row[14]),
    )


def _event_rec(r) -> Event:
    return Event(r[0], _dt(r[1]), r[2], r[3], r[4], r[5])


_CERT_COPY_COLS = ("id", "issuer_id", "serial", "der", "subject", "not_before", "not_after", "dp_url", "is_ca",
                   "status", "reason", "revoked_at", "invalidity_at", "added_at")
_REVOKED_COPY_COLS = ("cert_id", "issuer_id", "serial", "dp_url", "is_ca", "not_after", "entry")


def _rows(chunk: Sequence[NewCert], first_id: int, now: int, counts: dict) -> tuple[list, list]:
    """COPY rows for one chunk, sorted by (issuer, serial) as the SQLite store does, so that
    ids follow serial order within a chunk in both backends."""
    rows = []
    revoked = []
    good = Status.GOOD
    for c in chunk:
        k = counts.setdefault(c.issuer_id, [0, False])
        k[0] += 1
        if c.status != good:
            if c.entry is None:
                raise ValueError("a revoked or held certificate needs its CRL entry")
            k[1] = True
        rows.append([None, c.issuer_id, serial_key(c.serial), c.der, c.subject, _ts(c.not_before), _ts(c.not_after),
                     c.dp_url, bool(c.is_ca), int(c.status), None if c.reason is None else int(c.reason),
                     _ts(c.revoked_at), _ts(c.invalidity_at), now, c.entry])
    rows.sort(key=lambda r: (r[1], r[2]))
    for i, row in enumerate(rows):
        row[0] = first_id + i
        entry = row.pop()
        if entry is not None and row[9] != good:
            revoked.append((row[0], row[1], row[2], row[7], row[8], row[6], entry))
    return rows, revoked


# The server went away, was shut down or restarted, ran out of resources, or a statement
# timed out: the store is unavailable for now (503 / tryLater / unavailable), the pool
# reconnects on the next call.
GONE = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InsufficientResourcesError)


class PgStore(Store):
    """`create=False` refuses a database without the repository's schema instead of starting
    a new, empty repository there: only explicit commands (`pkirepo init`, `recover`)
    create. The database itself is made by the DBA (`createdb`); the store makes its tables.
    """

    def __init__(self, dsn: str, *, password: str | None = None, create: bool = True,
                 min_size: int = 1, max_size: int = 10, command_timeout: float = 60.0,
                 connect_timeout: float = 10.0) -> None:
        self.dsn = dsn
        self._password = password
        self._create = create
        self._min = min_size
        self._max = max_size
        self._timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._listener: ChangeListener | None = None

    @property
    def where(self) -> str:
        return redact(self.dsn)

    async def open(self) -> None:
        try:
            # The connect timeout bounds a start against an unreachable host (asyncpg's own
            # default is a minute) and every reconnection of the pool later.
            self._pool = await asyncpg.create_pool(
                self.dsn, password=self._password, min_size=self._min, max_size=self._max,
                command_timeout=self._timeout, timeout=self._connect_timeout)
        except asyncpg.InvalidCatalogNameError as e:
            raise StoreMissing(f"{self.where}: no such database ({e}); create it with `createdb`, then "
                               f"`pkirepo init`") from None
        except asyncpg.InvalidPasswordError as e:
            raise NotAllowed(f"{self.where}: the server refused the login ({e}); check store.password_file "
                             f"or store.password_env") from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as e:
            why = str(e) or f"no answer within {self._connect_timeout:g} s"
            raise StoreUnreachable(f"store.url: {self.where}: cannot connect to PostgreSQL: {why}") from None
        try:
            await self._migrate()
            marker = await self._pool.fetchval("SELECT value FROM meta WHERE key = $1", COPY_MARKER)
            if marker is not None:
                raise StoreIncomplete(incomplete_message(self.where, marker))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
                if not exists:
                    if not self._create:
                        raise StoreMissing(
                            f"{self.where}: no repository in this database. Check store.url in the config; to "
                            f"start a new, empty repository run `pkirepo init`")
                    await conn.execute("CREATE TABLE schema_version (version integer NOT NULL);"
                                       " INSERT INTO schema_version VALUES (0)")
                version = await conn.fetchval("SELECT version FROM schema_version FOR UPDATE")
                if version > len(PG_MIGRATIONS):
                    raise StoreUnreachable(f"store.url: {self.where}: schema version {version} is newer than this "
                                           f"pkirepo knows ({len(PG_MIGRATIONS)}); run the pkirepo version that "
                                           f"wrote it")
            # One transaction per migration, with its version bump (DDL is transactional).
            for number in range(version + 1, len(PG_MIGRATIONS) + 1):
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                    if await conn.fetchval("SELECT version FROM schema_version FOR UPDATE") >= number:
                        continue  # another node migrated meanwhile
                    await conn.execute(PG_MIGRATIONS[number - 1])
                    await conn.execute("UPDATE schema_version SET version = $1", number)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[asyncpg.Connection]:
        """One write transaction under the store's write lock (see the module docstring)."""
        try:
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                    yield conn
        except GONE as e:
            raise Unavailable(f"{self.where}: store unavailable: {e}") from e

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read transaction: every statement inside sees the same committed state."""
        try:
            async with self._pool.acquire() as conn:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    yield conn
        except GONE as e:
            raise Unavailable(f"{self.where}: store unavailable: {e}") from e

    async def _one(self, sql: str, *args):
        try:
            return await self._pool.fetchrow(sql, *args)
        except GONE as e:
            raise Unavailable(f"{self.where}: store unavailable: {e}") from e

    async def _all(self, sql: str, *args):
        try:
            return await self._pool.fetch(sql, *args)
        except GONE as e:
            raise Unavailable(f"{self.where}: store unavailable: {e}") from e

    @staticmethod
    async def _event(conn, kind: str, at: dt.datetime, issuer_id=None, cert_id=None, detail=None) -> int:
        # The notification is part of the transaction: the server sends it on commit only,
        # so a listener never hears of a change it cannot read yet (see pg_listen.py).
        return await conn.fetchval(
            "WITH e AS (INSERT INTO events (at, kind, issuer_id, cert_id, detail) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING id) SELECT id, pg_notify($6, id::text) FROM e",
            _ts(at), kind, issuer_id, cert_id, detail, CHANNEL)

    async def dedicated_connection(self) -> asyncpg.Connection:
        """A new connection outside the pool, for a session of its own (the change listener,
        the publisher's leadership lock); the caller closes it."""
        return await asyncpg.connect(self.dsn, password=self._password, timeout=self._connect_timeout)

    def change_listener(self) -> ChangeListener:
        """This process's listener for changes by any node (started on first use, inside
        the running loop; closed with the store)."""
        if self._listener is None:
            self._listener = ChangeListener(self.dedicated_connection, where=self.where)
            self._listener.start()
        return self._listener

    async def wait_for_change(self, timeout: float) -> None:
        await self.change_listener().wait(timeout)

    async def check(self) -> list[str]:
        """The server checksums and recovers its own pages; what is checked here is what
        the store promises on top: the CRL-ready view agrees with the certificates' status
        (every revoked or held certificate has its entry, no other has one). Runs on the
        server, in one snapshot."""
        async with self._snapshot() as r:
            missing = await r.fetchval(
                "SELECT count(*) FROM certificates c WHERE c.status <> 0"
                " AND NOT EXISTS (SELECT 1 FROM revoked v WHERE v.cert_id = c.id)")
            extra = await r.fetchval(
                "SELECT count(*) FROM revoked v JOIN certificates c ON c.id = v.cert_id"
                " WHERE c.status = 0 OR v.serial <> c.serial OR v.issuer_id <> c.issuer_id")
        problems = []
        if missing:
            problems.append(f"{missing} revoked or held certificate(s) have no CRL entry")
        if extra:
            problems.append(f"{extra} CRL entr(y/ies) for certificates that are not revoked or held, or that "
                            f"name another serial")
        return problems

    # Issuers

    async def put_issuer(self, name: str, cert_der: bytes, subject_der: bytes, key_id: bytes) -> Issuer:
        async with self._write() as w:
            row = await w.fetchrow("SELECT id, cert_der FROM issuers WHERE name = $1", name)
            if row is None:
                issuer_id = await w.fetchval(
                    "INSERT INTO issuers (name, subject_der, key_id, cert_der) VALUES ($1, $2, $3, $4) RETURNING id",
                    name, subject_der, key_id, cert_der)
                await self._event(w, "issuer-add", dt.datetime.now(UTC), issuer_id, detail=name)
            else:
                issuer_id = row[0]
                if row[1] != cert_der:
                    await w.execute("UPDATE issuers SET subject_der = $1, key_id = $2, cert_der = $3 WHERE id = $4",
                                    subject_der, key_id, cert_der, issuer_id)
                    await self._event(w, "issuer-update", dt.datetime.now(UTC), issuer_id, detail=name)
            row = await w.fetchrow(f"SELECT {_ISSUER_COLS} FROM issuers WHERE id = $1", issuer_id)
        return _issuer(row)

    async def issuers(self) -> list[Issuer]:
        return [_issuer(r) for r in await self._all(f"SELECT {_ISSUER_COLS} FROM issuers ORDER BY id")]

    async def retire_issuer(self, issuer_id: int, *, at: dt.datetime, keep_published: bool) -> Issuer:
        async with self._write() as w:
            row = await w.fetchrow(f"SELECT {_ISSUER_COLS} FROM issuers WHERE id = $1", issuer_id)
            if row is None:
                raise NotFound(f"no issuer with id {issuer_id}")
            issuer = _issuer(row)
            if issuer.retired_at is not None:
                raise Conflict(f"CA {issuer.name} was already retired on {issuer.retired_at.isoformat()}")
            await w.execute("UPDATE issuers SET retired_at = $1, keep_published = $2 WHERE id = $3",
                            _ts(at), bool(keep_published), issuer_id)
            await self._event(w, "ca-retire", at, issuer_id,
                              detail=f"{issuer.name}{' (kept published)' if keep_published else ''}")
            row = await w.fetchrow(f"SELECT {_ISSUER_COLS} FROM issuers WHERE id = $1", issuer_id)
        return _issuer(row)

    async def raise_crl_number_floor(self, issuer_id: int, floor: int, *, at: dt.datetime) -> None:
        key = serial_key(floor)
        async with self._write() as w:
            await w.execute("UPDATE issuers SET crl_number_floor = $1 WHERE id = $2"
                            " AND (crl_number_floor IS NULL OR crl_number_floor < $1)", key, issuer_id)
            await w.execute("UPDATE scopes SET last_number = $1 WHERE issuer_id = $2"
                            " AND (last_number IS NULL OR last_number < $1)", key, issuer_id)
            await self._event(w, "crl-number-floor", at, issuer_id, detail=str(floor))

    # Certificates

    async def add_certificates(self, certs: Sequence[NewCert], *, at: dt.datetime) -> int:
        if not certs:
            return 0
        return await self.add_certificates_stream(_once(certs), at=at)

    async def add_certificates_stream(self, chunks: AsyncIterable[Sequence[NewCert]], *, at: dt.datetime,
                                      dry_run: bool = False) -> int:
        """All chunks in one transaction, each sent with COPY (binary): one round trip per
        chunk. The producer's next chunk is parsed while the server writes this one."""
        now = _ts(at)
        counts: dict[int, list] = {}
        total = 0
        failed: Sequence[NewCert] = ()
        try:
            async with self._write() as w:
                next_id = await w.fetchval("SELECT coalesce(max(id), 0) + 1 FROM certificates")
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
                        await asyncio.sleep(0)
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
                if dry_run:
                    raise _DryRun()
        except _DryRun:
            return total
        except asyncpg.UniqueViolationError as e:
            dup = await self._first_existing(failed)
            what = f"certificate {serial_hex(dup.serial)}" if dup else "a certificate"
            raise Conflict(f"{what} is already in the repository; nothing was added",
                           serial=dup.serial if dup else None) from e
        return total

    @staticmethod
    async def _insert_rows(w, certs_rows, revoked_rows) -> None:
        await w.copy_records_to_table("certificates", records=certs_rows, columns=_CERT_COPY_COLS)
        if revoked_rows:
            await w.copy_records_to_table("revoked", records=revoked_rows, columns=_REVOKED_COPY_COLS)

    async def _first_existing(self, certs: Sequence[NewCert]) -> NewCert | None:
        seen: set[tuple[int, int]] = set()
        for c in certs:
            # A chunk may repeat a serial within itself as well as repeat a stored one.
            if (c.issuer_id, c.serial) in seen or await self.certificate(c.issuer_id, c.serial) is not None:
                return c
            seen.add((c.issuer_id, c.serial))
        return None

    async def certificate(self, issuer_id: int, serial: int) -> CertRecord | None:
        row = await self._one(f"SELECT {_CERT_COLS} FROM certificates WHERE issuer_id = $1 AND serial = $2",
                              issuer_id, serial_key(serial))
        return None if row is None else _cert(row)

    async def certificates(self, issuer_id: int, *, after_serial: int = -1, limit: int = 1000) -> list[CertRecord]:
        after = b"" if after_serial < 0 else serial_key(after_serial)
        rows = await self._all(f"SELECT {_CERT_COLS} FROM certificates WHERE issuer_id = $1 AND serial > $2"
                               " ORDER BY serial LIMIT $3", issuer_id, after, limit)
        return [_cert(r) for r in rows]

    async def list_certificates(self, *, issuer_id=None, status=None, expiring_before=None, after=None,
                                limit: int = 1000) -> list[CertRecord]:
        where, args = [], []

        def arg(value) -> str:
            args.append(value)
            return f"${len(args)}"

        if after is not None:
            where.append(f"(issuer_id, serial) > ({arg(after[0])}::bigint, {arg(serial_key(after[1]))}::bytea)")
        if issuer_id is not None:
            where.append(f"issuer_id = {arg(issuer_id)}")
        if status is not None:
            where.append(f"status = {arg(int(status))}")
        if expiring_before is not None:
            where.append(f"not_after < {arg(_ts(expiring_before))}")
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._all(f"SELECT {_CERT_COLS} FROM certificates {cond} ORDER BY issuer_id, serial"
                               f" LIMIT {arg(limit)}", *args)
        return [_cert(r) for r in rows]

    async def last_status_event(self, cert: CertRecord) -> Event | None:
        row = await self._one(
            "SELECT id, at, kind, issuer_id, cert_id, detail FROM events"
            " WHERE issuer_id = $1 AND kind IN ('revoke', 'hold', 'release') AND cert_id = $2"
            " ORDER BY id DESC LIMIT 1", cert.issuer_id, cert.id)
        return None if row is None else _event_rec(row)

    async def change_status(self, change: StatusChange) -> CertRecord:
        key = serial_key(change.serial)
        async with self._write() as w:
            row = await w.fetchrow(f"SELECT {_CERT_COLS} FROM certificates WHERE issuer_id = $1 AND serial = $2",
                                   change.issuer_id, key)
            if row is None:
                raise NotFound(f"no certificate with serial {serial_hex(change.serial)} from this issuer")
            cert = _cert(row)
            new = transition(cert.status, change.action, cert.serial_hex)
            if new is Status.GOOD:
                await w.execute("UPDATE certificates SET status = 0, reason = NULL, revoked_at = NULL,"
                                " invalidity_at = NULL WHERE id = $1", cert.id)
                await w.execute("DELETE FROM revoked WHERE cert_id = $1", cert.id)
            else:
                if change.entry is None:
                    raise ValueError("a revocation or hold needs its CRL entry")
                reason = None if change.reason is None else int(change.reason)
                await w.execute("UPDATE certificates SET status = $1, reason = $2, revoked_at = $3, invalidity_at = $4"
                                " WHERE id = $5", int(new), reason, _ts(change.at), _ts(change.invalidity_at), cert.id)
                await w.execute(
                    "INSERT INTO revoked (cert_id, issuer_id, serial, dp_url, is_ca, not_after, entry)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cert_id) DO UPDATE SET entry = excluded.entry,"
                    " dp_url = excluded.dp_url, is_ca = excluded.is_ca, not_after = excluded.not_after",
                    cert.id, cert.issuer_id, key, cert.dp_url, cert.is_ca, _ts(cert.not_after), change.entry)
            await self._event(w, change.action.value, change.at, cert.issuer_id, cert.id, cert.serial_hex)
            row = await w.fetchrow(f"SELECT {_CERT_COLS} FROM certificates WHERE id = $1", cert.id)
        return _cert(row)

    # The name index

    async def certificates_by_id(self, *, after_id: int = 0, limit: int = 1000) -> list[CertRecord]:
        rows = await self._all(f"SELECT {_CERT_COLS} FROM certificates WHERE id > $1 ORDER BY id LIMIT $2",
                               after_id, limit)
        return [_cert(r) for r in rows]

    async def name_index_position(self) -> tuple[int, int]:
        async with self._snapshot() as r:
            upto = await r.fetchval("SELECT value FROM meta WHERE key = 'cert_names_upto'")
            last = await r.fetchval("SELECT coalesce(max(id), 0) FROM certificates")
        return (int(upto) if upto else 0), last

    async def add_cert_names(self, names: Sequence[tuple[str, str, int]], *, upto: int) -> None:
        async with self._write() as w:
            if names:
                # DO NOTHING: two nodes serving the same store may read the same page.
                await w.execute(
                    "INSERT INTO cert_names (attr, value, cert_id) SELECT * FROM unnest($1::text[], $2::text[],"
                    " $3::bigint[]) ON CONFLICT DO NOTHING",
                    [n[0] for n in names], [n[1] for n in names], [n[2] for n in names])
            await w.execute(
                "INSERT INTO meta (key, value) VALUES ('cert_names_upto', $1) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value WHERE meta.value::bigint < excluded.value::bigint", str(upto))

    async def certificates_named(self, issuer_id: int, attr: str, value: str, *, after_serial: int = -1,
                                 limit: int = 1000) -> list[CertRecord]:
        after = b"" if after_serial < 0 else serial_key(after_serial)
        cols = ", ".join(f"c.{c.strip()}" for c in _CERT_COLS.split(","))
        rows = await self._all(
            f"SELECT {cols} FROM cert_names n JOIN certificates c ON c.id = n.cert_id"
            " WHERE n.attr = $1 AND n.value = $2 AND c.issuer_id = $3 AND c.serial > $4 ORDER BY c.serial LIMIT $5",
            attr, value, issuer_id, after, limit)
        return [_cert(r) for r in rows]

    # CRLs

    async def ensure_scope(self, issuer_id: int, kind: ScopeKind, dp_url: str, name: str) -> Scope:
        async with self._write() as w:
            row = await w.fetchrow("SELECT id, name FROM scopes WHERE issuer_id = $1 AND kind = $2 AND dp_url = $3",
                                   issuer_id, kind.value, dp_url)
            if row is not None:
                if row[1] != name:
                    # Renaming a published CRL would break every URL that names it.
                    raise Conflict(f"the {kind.value} CRL {dp_url or ''} is already published as {row[1]!r}, not {name!r}")
                return Scope(row[0], issuer_id, kind, dp_url, name)
            if await w.fetchval("SELECT 1 FROM scopes WHERE name = $1", name) is not None:
                raise Conflict(f"CRL name {name!r} is already used by another CRL scope")
            scope_id = await w.fetchval(
                "INSERT INTO scopes (issuer_id, kind, dp_url, name, last_number)"
                " VALUES ($1, $2, $3, $4, (SELECT crl_number_floor FROM issuers WHERE id = $1)) RETURNING id",
                issuer_id, kind.value, dp_url, name)
            return Scope(scope_id, issuer_id, kind, dp_url, name)

    async def scopes(self) -> list[Scope]:
        rows = await self._all("SELECT id, issuer_id, kind, dp_url, name FROM scopes ORDER BY id")
        return [Scope(r[0], r[1], ScopeKind(r[2]), r[3], r[4]) for r in rows]

    async def dp_urls(self, issuer_id: int) -> list[str]:
        rows = await self._all("SELECT DISTINCT dp_url FROM certificates WHERE issuer_id = $1 AND NOT is_ca"
                               " AND dp_url IS NOT NULL ORDER BY dp_url", issuer_id)
        return [r[0] for r in rows]

    async def snapshot_entries(self, scope: Scope, *, expired_before: dt.datetime | None = None) -> EntrySnapshot:
        where = ["issuer_id = $1"]
        args: list = [scope.issuer_id]
        if scope.kind is ScopeKind.PARTITION:
            args.append(scope.dp_url)
            where += [f"dp_url = ${len(args)}", "NOT is_ca"]
        elif scope.kind is ScopeKind.ARL:
            where.append("is_ca")
        if expired_before is not None:
            # Certificates of unknown expiry (index imports) are always kept.
            args.append(_ts(expired_before))
            where.append(f"(not_after IS NULL OR not_after >= ${len(args)})")
        cond = " AND ".join(where)
        # Joined on the server (one bytea crosses the wire instead of a row per entry);
        # string_agg's ORDER BY fixes the order.
        async with self._snapshot() as r:
            covered = await r.fetchval("SELECT coalesce(max(id), 0) FROM events")
            try:
                async with r.transaction():  # a savepoint: the fallback reads in the same snapshot
                    entries, count = await r.fetchrow(
                        f"SELECT string_agg(entry, ''::bytea ORDER BY serial), count(*) FROM revoked WHERE {cond}",
                        *args)
            except (asyncpg.ProgramLimitExceededError, asyncpg.exceptions.OutOfMemoryError):
                # Beyond PostgreSQL's 1 GB value limit (about 18M entries): in batches.
                parts: list[bytes] = []
                async for row in r.cursor(f"SELECT entry FROM revoked WHERE {cond} ORDER BY serial", *args,
                                          prefetch=10_000):
                    parts.append(row[0])
                entries, count = b"".join(parts), len(parts)
        return EntrySnapshot(bytes(entries or b""), count, covered)

    async def reserve_crl_number(self, scope: Scope) -> int:
        async with self._write() as w:
            row = await w.fetchrow("SELECT s.last_number, (SELECT number FROM crls WHERE scope_id = s.id ORDER BY number DESC LIMIT 1)"
                                   " FROM scopes s WHERE s.id = $1 FOR UPDATE", scope.id)
            if row is None:
                raise NotFound(f"no CRL scope {scope.name!r}")
            number = max(from_serial_key(k) if k else 0 for k in row) + 1
            await w.execute("UPDATE scopes SET last_number = $1 WHERE id = $2", serial_key(number), scope.id)
        return number

    async def record_crl(self, scope, number, this_update, next_update, der, *, entries, covered_event,
                         issued_at, source="signed") -> CrlRecord:
        sha = hashlib.sha256(der).hexdigest()
        key = serial_key(number)
        async with self._write() as w:
            # The number check and the insert in one transaction under the write lock: two
            # nodes can never record the same number, nor a lower one after a higher.
            highest = await w.fetchval("SELECT number FROM crls WHERE scope_id = $1 ORDER BY number DESC LIMIT 1", scope.id)
            if highest is not None and key <= highest:
                raise Conflict(f"CRL number {number} of {scope.name} does not exceed the last one issued "
                               f"({from_serial_key(highest)})")
            crl_id = await w.fetchval(
                "INSERT INTO crls (scope_id, number, this_update, next_update, sha256, size, entries, covered_event,"
                " issued_at, source, der) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                scope.id, key, _ts(this_update), _ts(next_update), sha, len(der), entries, covered_event,
                _ts(issued_at), source, der)
            # Keep the counter ahead of handed-in numbers too.
            await w.execute("UPDATE scopes SET last_number = $1 WHERE id = $2"
                            " AND (last_number IS NULL OR last_number < $1)", key, scope.id)
            await self._event(w, "crl", issued_at, scope.issuer_id, detail=f"{scope.name} #{number}")
        return CrlRecord(crl_id, scope, number, this_update, next_update, sha, len(der), entries, covered_event,
                         issued_at, source)

    async def current_crls(self) -> list[CrlRecord]:
        rows = await self._all(
            f"SELECT {_CRL_COLS} FROM crls c JOIN scopes s ON s.id = c.scope_id"
            " WHERE c.number = (SELECT number FROM crls WHERE scope_id = c.scope_id ORDER BY number DESC LIMIT 1) ORDER BY s.id")
        return [_crl(r) for r in rows]

    async def crl_der(self, crl_id: int) -> bytes:
        row = await self._one("SELECT der FROM crls WHERE id = $1", crl_id)
        if row is None:
            raise NotFound(f"no CRL with id {crl_id}")
        return row[0]

    async def crl_archive(self, scope_name: str) -> list[CrlRecord]:
        if await self._one("SELECT 1 FROM scopes WHERE name = $1", scope_name) is None:
            raise NotFound(f"no CRL named {scope_name!r}")
        rows = await self._all(f"SELECT {_CRL_COLS} FROM crls c JOIN scopes s ON s.id = c.scope_id"
                               " WHERE s.name = $1 ORDER BY c.number", scope_name)
        return [_crl(r) for r in rows]

    async def crl_by_number(self, scope_name: str, number: int) -> CrlRecord | None:
        row = await self._one(f"SELECT {_CRL_COLS} FROM crls c JOIN scopes s ON s.id = c.scope_id"
                              " WHERE s.name = $1 AND c.number = $2", scope_name, serial_key(number))
        return None if row is None else _crl(row)

    async def prune_crls(self, before: dt.datetime) -> int:
        async with self._write() as w:
            status = await w.execute(
                "DELETE FROM crls WHERE this_update < $1"
                " AND number < (SELECT c2.number FROM crls c2 WHERE c2.scope_id = crls.scope_id ORDER BY c2.number DESC LIMIT 1)", _ts(before))
        return int(status.split()[-1])

    # Disclosure documents

    _DOC_COLUMNS = "id, kind, version, lang, effective, oid, media_type, ext, size, sha256, published_at"

    @staticmethod
    def _document(row) -> DocumentRecord:
        return DocumentRecord(row[0], row[1], row[2], row[3], dt.date.fromisoformat(row[4]), row[5], row[6],
                              row[7], row[8], row[9], _dt(row[10]))

    async def add_document(self, kind, version, lang, *, effective, oid, media_type, ext, data, at):
        async with self._write() as w:
            rows = await w.fetch("SELECT version, effective FROM documents WHERE kind = $1 AND lang = $2 ORDER BY id",
                                 kind, lang)
            if any(r[0] == version for r in rows):
                raise Conflict(f"{kind} version {version!r} in {lang} is already published; "
                               f"a published version is never replaced: publish a new version")
            if rows and effective < dt.date.fromisoformat(rows[-1][1]):
                raise Conflict(f"effective date {effective.isoformat()} is before {rows[-1][1]}, when the current "
                               f"{kind} ({lang}) version {rows[-1][0]!r} took effect")
            digest = hashlib.sha256(data).hexdigest()
            doc_id = await w.fetchval(
                "INSERT INTO documents (kind, version, lang, effective, oid, media_type, ext, size, sha256, "
                "published_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                kind, version, lang, effective.isoformat(), oid, media_type, ext, len(data), digest, _ts(at), data)
            await self._event(w, "document", at, detail=f"{kind} {version} {lang} sha256={digest}")
            row = await w.fetchrow(f"SELECT {self._DOC_COLUMNS} FROM documents WHERE id = $1", doc_id)
        return self._document(row)

    async def documents(self) -> list[DocumentRecord]:
        return [self._document(r) for r in await self._all(f"SELECT {self._DOC_COLUMNS} FROM documents ORDER BY id")]

    async def document_bytes(self, kind: str, version: str, lang: str) -> tuple[DocumentRecord, bytes] | None:
        row = await self._one(f"SELECT {self._DOC_COLUMNS}, data FROM documents WHERE kind = $1 AND version = $2"
                              " AND lang = $3", kind, version, lang)
        return None if row is None else (self._document(row[:11]), row[11])

    # Notices

    _NOTICE_COLUMNS = ("id, kind, title_zh_hant, title_en, body_zh_hant, body_en, starts, ends, published_at, "
                       "withdrawn_at")

    @staticmethod
    def _notice(row) -> NoticeRecord:
        return NoticeRecord(row[0], row[1], {"zh-Hant": row[2], "en": row[3]}, {"zh-Hant": row[4], "en": row[5]},
                            _dt(row[6]), _dt(row[7]), _dt(row[8]), _dt(row[9]))

    async def add_notice(self, notice: NewNotice, *, at: dt.datetime) -> NoticeRecord:
        async with self._write() as w:
            row = await w.fetchrow(
                "INSERT INTO notices (kind, title_zh_hant, title_en, body_zh_hant, body_en, starts, ends, published_at)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {self._NOTICE_COLUMNS}",
                notice.kind.value, notice.title["zh-Hant"], notice.title["en"], notice.body["zh-Hant"],
                notice.body["en"], _ts(notice.starts), _ts(notice.ends), _ts(at))
            await self._event(w, "notice", at, detail=f"{notice.kind.value} #{row[0]}")
        return self._notice(row)

    async def withdraw_notice(self, notice_id: int, *, at: dt.datetime) -> NoticeRecord:
        async with self._write() as w:
            row = await w.fetchrow(f"SELECT {self._NOTICE_COLUMNS} FROM notices WHERE id = $1 FOR UPDATE", notice_id)
            if row is None:
                raise NotFound(f"no notice {notice_id}")
            if row[9] is not None:
                raise Conflict(f"notice {notice_id} was withdrawn already, at {_dt(row[9]).isoformat()}")
            row = await w.fetchrow(f"UPDATE notices SET withdrawn_at = $1 WHERE id = $2 RETURNING {self._NOTICE_COLUMNS}",
                                   _ts(at), notice_id)
            await self._event(w, "notice", at, detail=f"withdrawn #{notice_id}")
        return self._notice(row)

    async def notices(self, *, withdrawn: bool = False, limit: int | None = None) -> list[NoticeRecord]:
        where = "" if withdrawn else " WHERE withdrawn_at IS NULL"
        rows = await self._all(f"SELECT {self._NOTICE_COLUMNS} FROM notices{where} ORDER BY id DESC LIMIT $1", limit)
        return [self._notice(r) for r in rows]

    # The trust list of qualifying certificate types

    _TL_COLUMNS = "seq, issued_at, next_update, sha256, length(xml)"

    @staticmethod
    def _trustlist(row) -> TrustListRecord:
        return TrustListRecord(row[0], _dt(row[1]), _dt(row[2]), row[3], row[4])

    @staticmethod
    async def _trust_entries(conn) -> tuple[tlmod.Entry, ...]:
        history: dict[int, list[tlmod.StatusPeriod]] = {}
        for entry_id, status, start in await conn.fetch(
                "SELECT entry_id, status, start FROM trustlist_statuses ORDER BY entry_id, position"):
            history.setdefault(entry_id, []).append(tlmod.StatusPeriod(tlmod.Status(status), _dt(start)))
        rows = await conn.fetch("SELECT id, ca_name, ca_cert_der, cert_type, policy_oids, cps_url, name_zh_hant,"
                                " name_en FROM trustlist_entries ORDER BY id")
        return tuple(tlmod.Entry(r[0], r[1], r[2], tlmod.CertType(r[3]), tuple(r[4].split()), r[5],
                                 (("zh-Hant", r[6]), ("en", r[7])), tuple(history.get(r[0], ())))
                     for r in rows)

    async def trustlist_state(self) -> tuple[int, tuple[tlmod.Entry, ...]]:
        async with self._snapshot() as r:
            seq = await r.fetchval("SELECT coalesce(max(seq), 0) FROM trustlists")
            return seq, await self._trust_entries(r)

    async def add_trustlist(self, *, prev_seq, changed, issued_at, next_update, xml) -> TrustListRecord:
        async with self._write() as w:
            last = await w.fetchval("SELECT coalesce(max(seq), 0) FROM trustlists")
            if last != prev_seq:
                raise Conflict(f"trust list {last} was issued meanwhile (this change was made on list {prev_seq}); "
                               f"run the command again")
            seq = prev_seq + 1
            if changed is not None:
                names = dict(changed.names)
                await w.execute(
                    "INSERT INTO trustlist_entries (id, ca_name, ca_cert_der, cert_type, policy_oids, cps_url,"
                    " name_zh_hant, name_en) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    changed.id, changed.ca_name, changed.ca_cert_der, changed.cert_type.value,
                    " ".join(changed.policy_oids), changed.cps_url, names["zh-Hant"], names["en"])
                stored = await w.fetchval("SELECT count(*) FROM trustlist_statuses WHERE entry_id = $1", changed.id)
                new = [(changed.id, i, p.status.value, _ts(p.start), seq)
                       for i, p in enumerate(changed.history) if i >= stored]
                if new:
                    await w.executemany("INSERT INTO trustlist_statuses (entry_id, position, status, start, seq)"
                                        " VALUES ($1, $2, $3, $4, $5)", new)
            digest = hashlib.sha256(xml).hexdigest()
            await w.execute("INSERT INTO trustlists (seq, issued_at, next_update, sha256, xml)"
                            " VALUES ($1, $2, $3, $4, $5)", seq, _ts(issued_at), _ts(next_update), digest, xml)
            what = "reissued" if changed is None else f"{changed.label} {changed.status.status.value}"
            await self._event(w, "trustlist", issued_at, detail=f"list {seq}: {what} sha256={digest}")
            row = await w.fetchrow(f"SELECT {self._TL_COLUMNS} FROM trustlists WHERE seq = $1", seq)
        return self._trustlist(row)

    async def trustlists(self) -> list[TrustListRecord]:
        return [self._trustlist(r) for r in await self._all(f"SELECT {self._TL_COLUMNS} FROM trustlists ORDER BY seq")]

    async def trustlist_bytes(self, seq: int | None = None) -> tuple[TrustListRecord, bytes] | None:
        if seq is None:
            row = await self._one(f"SELECT {self._TL_COLUMNS}, xml FROM trustlists ORDER BY seq DESC LIMIT 1")
        else:
            row = await self._one(f"SELECT {self._TL_COLUMNS}, xml FROM trustlists WHERE seq = $1", seq)
        return None if row is None else (self._trustlist(row[:5]), row[5])

    # Change log

    async def change_token(self) -> int:
        # max(id) is an index lookup on the primary key; the ids are visible in order.
        return (await self._one("SELECT coalesce(max(id), 0) FROM events"))[0]

    async def last_event(self, issuer_id: int, kinds: Sequence[str]) -> Event | None:
        row = await self._one("SELECT id, at, kind, issuer_id, cert_id, detail FROM events"
                              " WHERE issuer_id = $1 AND kind = ANY($2::text[]) ORDER BY id DESC LIMIT 1",
                              issuer_id, list(kinds))
        return None if row is None else _event_rec(row)

    async def events_since(self, event_id: int, *, limit: int = 1000) -> list[Event]:
        rows = await self._all("SELECT id, at, kind, issuer_id, cert_id, detail FROM events WHERE id > $1"
                               " ORDER BY id LIMIT $2", event_id, limit)
        return [_event_rec(r) for r in rows]

    async def log_event(self, kind: str, *, at: dt.datetime, issuer_id: int | None = None, detail: str | None = None) -> int:
        async with self._write() as w:
            return await self._event(w, kind, at, issuer_id, detail=detail)

    async def certificate_events(self, cert: CertRecord, *, limit: int = 100) -> list[Event]:
        rows = await self._all(
            "SELECT id, at, kind, issuer_id, cert_id, detail FROM events"
            " WHERE issuer_id = $1 AND kind IN ('revoke', 'hold', 'release') AND cert_id = $2"
            " ORDER BY id DESC LIMIT $3", cert.issuer_id, cert.id, limit)
        return [_event_rec(r) for r in reversed(rows)]

    # Idempotency keys of the admin API. Under the write lock like every change, so that
    # two nodes given the same key at once see one claim.

    async def claim_idempotency_key(self, key, actor, request_hash, *, at, expired_before,
                                    abandoned_before=None) -> IdempotentAnswer | None:
        async with self._write() as w:
            await w.execute("DELETE FROM idempotency_keys WHERE created_at < $1", _ts(expired_before))
            row = await w.fetchrow(
                "SELECT request_hash, status, body, created_at FROM idempotency_keys WHERE actor = $1 AND key = $2",
                actor, key)
            if row is not None and abandoned_claim(row[0], row[1], row[3], request_hash, abandoned_before):
                await w.execute("UPDATE idempotency_keys SET created_at = $1 WHERE actor = $2 AND key = $3",
                                _ts(at), actor, key)
                return None
            if row is not None:
                return IdempotentAnswer(key, actor, row[0], row[1], None if row[2] is None else bytes(row[2]),
                                        _dt(row[3]))
            await w.execute("INSERT INTO idempotency_keys (key, actor, request_hash, created_at)"
                            " VALUES ($1, $2, $3, $4)", key, actor, request_hash, _ts(at))
            return None

    async def complete_idempotency_key(self, key, actor, status, body) -> None:
        async with self._write() as w:
            await w.execute("UPDATE idempotency_keys SET status = $1, body = $2 WHERE actor = $3 AND key = $4",
                            status, body, actor, key)

    async def release_idempotency_key(self, key, actor) -> None:
        async with self._write() as w:
            await w.execute("DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND status IS NULL",
                            actor, key)

    # Operations: maintenance windows, heartbeats, the availability ledger.

    _WINDOW_COLS = 'id, start, "end", reason, kind, created_at, cancelled_at'

    @staticmethod
    def _window(row) -> Window:
        return Window(row[0], _dt(row[1]), _dt(row[2]), row[3], row[4], _dt(row[5]), _dt(row[6]))

    async def maintenance_windows(self, *, since: dt.datetime | None = None) -> list[Window]:
        rows = await self._all(f'SELECT {self._WINDOW_COLS} FROM maintenance_windows'
                               ' WHERE "end" IS NULL OR "end" > $1 ORDER BY start, id', _ts(since) or 0)
        return [self._window(r) for r in rows]

    async def _windows_in(self, w) -> list[Window]:
        rows = await w.fetch(f"SELECT {self._WINDOW_COLS} FROM maintenance_windows ORDER BY start, id")
        return [self._window(r) for r in rows]

    async def schedule_maintenance(self, start, end, reason, *, budget, at) -> Window:
        async with self._write() as w:
            check_schedule(await self._windows_in(w), start, end, budget, at)
            window_id = await w.fetchval('INSERT INTO maintenance_windows (start, "end", reason, kind, created_at)'
                                         ' VALUES ($1, $2, $3, $4, $5) RETURNING id',
                                         _ts(start), _ts(end), reason, SCHEDULED, _ts(at))
            await self._event(w, "maintenance", at, detail=f"scheduled {start.isoformat()} to {end.isoformat()}")
            return Window(window_id, start, end, reason, SCHEDULED, at)

    async def cancel_maintenance(self, window_id: int, *, at: dt.datetime) -> Window:
        async with self._write() as w:
            row = await w.fetchrow(f"SELECT {self._WINDOW_COLS} FROM maintenance_windows WHERE id = $1", window_id)
            if row is None:
                raise NotFound(f"no maintenance window {window_id} (`pkirepo maintenance list` shows them)")
            win = self._window(row)
            if win.cancelled_at is not None:
                raise Conflict(f"maintenance window {window_id} was already cancelled at {win.cancelled_at.isoformat()}")
            if win.start <= at:
                raise Conflict(f"maintenance window {window_id} started at {win.start.isoformat()}: "
                               f"end it with `pkirepo maintenance end` instead")
            await w.execute("UPDATE maintenance_windows SET cancelled_at = $1 WHERE id = $2", _ts(at), window_id)
            await self._event(w, "maintenance", at, detail=f"cancelled window {window_id}")
        return dataclasses.replace(win, cancelled_at=at)

    async def start_emergency_maintenance(self, reason: str, *, at: dt.datetime) -> Window:
        async with self._write() as w:
            current = active(await self._windows_in(w), at)
            if current is not None:
                raise Conflict(f"maintenance window {current.id} is under way ({current.kind}, since "
                               f"{current.start.isoformat()}: {current.reason})")
            window_id = await w.fetchval('INSERT INTO maintenance_windows (start, "end", reason, kind, created_at)'
                                         ' VALUES ($1, NULL, $2, $3, $1) RETURNING id', _ts(at), reason, EMERGENCY)
            await self._event(w, "maintenance", at, detail=f"emergency maintenance started: {reason}")
            return Window(window_id, at, None, reason, EMERGENCY, at)

    async def end_maintenance(self, reason: str | None, *, at: dt.datetime) -> Window:
        async with self._write() as w:
            current = active(await self._windows_in(w), at)
            if current is None:
                raise NotFound("no maintenance window is under way")
            text = current.reason if not reason else f"{current.reason}; ended: {reason}"
            await w.execute('UPDATE maintenance_windows SET "end" = $1, reason = $2 WHERE id = $3',
                            _ts(at), text, current.id)
            await self._event(w, "maintenance", at, detail=f"window {current.id} ended")
        return dataclasses.replace(current, end=at, reason=text)

    async def start_heartbeat(self, *, at: dt.datetime, alive_within: dt.timedelta) -> tuple[int, Downtime | None]:
        now = _ts(at)
        within = int(alive_within.total_seconds())
        async with self._write() as w:
            rows = await w.fetch("SELECT beat_at, stopped_at FROM heartbeats")
            alive = [b for b, s in rows if s is None and b >= now - within]
            gap = None
            if rows and not alive:
                last = max(s if s is not None else b for b, s in rows)
                crashed = [b for b, s in rows if s is None and b == last]
                if last < now:
                    cause = (f"not running: crashed (last heartbeat {_dt(last).isoformat()})" if crashed
                             else f"not running: stopped at {_dt(last).isoformat()}")
                    gap_id = await w.fetchval('INSERT INTO downtime (start, "end", cause) VALUES ($1, $2, $3)'
                                              ' RETURNING id', last, now, cause)
                    gap = Downtime(gap_id, _dt(last), at, cause)
            # A process that died without stopping is now accounted for.
            await w.execute("UPDATE heartbeats SET stopped_at = beat_at WHERE stopped_at IS NULL AND beat_at < $1",
                            now - within)
            beat_id = await w.fetchval("INSERT INTO heartbeats (started_at, beat_at) VALUES ($1, $1) RETURNING id", now)
            return beat_id, gap

    async def beat(self, heartbeat_id: int, *, at: dt.datetime, stopped: bool = False) -> None:
        async with self._write() as w:
            await w.execute("UPDATE heartbeats SET beat_at = $1, stopped_at = $2 WHERE id = $3",
                            _ts(at), _ts(at) if stopped else None, heartbeat_id)

    async def open_downtime(self, cause: str, *, at: dt.datetime) -> int:
        async with self._write() as w:
            return await w.fetchval('INSERT INTO downtime (start, "end", cause) VALUES ($1, NULL, $2) RETURNING id',
                                    _ts(at), cause)

    async def close_downtime(self, downtime_id: int, *, at: dt.datetime) -> None:
        async with self._write() as w:
            await w.execute('UPDATE downtime SET "end" = $1 WHERE id = $2 AND "end" IS NULL', _ts(at), downtime_id)

    async def downtime(self, *, since: dt.datetime | None = None) -> list[Downtime]:
        rows = await self._all('SELECT id, start, "end", cause FROM downtime WHERE "end" IS NULL OR "end" > $1'
                               ' ORDER BY start, id', _ts(since) or 0)
        return [Downtime(r[0], _dt(r[1]), _dt(r[2]), r[3]) for r in rows]

    async def first_start(self) -> dt.datetime | None:
        return _dt((await self._one("SELECT min(started_at) FROM heartbeats"))[0])

    async def backup_to(self, path, *, progress=None) -> int:
        """Not here: the server's own tools make a consistent copy while it serves."""
        raise NotAllowed(f"{self.where}: `pkirepo backup` copies SQLite stores only; back up a PostgreSQL "
                         f"store with `pg_dump --format=custom` (or the server's base backups and WAL archive)")

    async def schema_version(self) -> tuple[int, int]:
        return (await self._one("SELECT version FROM schema_version"))[0], len(PG_MIGRATIONS)

    async def archived_crls(self, *, after_id: int = 0, limit: int = 100) -> list[tuple[CrlRecord, bytes]]:
        rows = await self._all(f"SELECT {_CRL_COLS}, c.der FROM crls c JOIN scopes s ON s.id = c.scope_id"
                               " WHERE c.id > $1 ORDER BY c.id LIMIT $2", after_id, limit)
        return [(_crl(r[:-1]), r[-1]) for r in rows]

    # The audit trail

    async def append_audit(self, entry: auditmod.Entry) -> auditmod.Record:
        async with self._write() as w:
            head = await w.fetchrow("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            if head is None:
                head = await w.fetchrow("SELECT upto, head FROM audit_pruned")
            rec = auditmod.seal(entry, after=None if head is None else (head[0], head[1]))
            e = rec.entry
            await w.execute(
                f"INSERT INTO audit ({auditmod.COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                rec.seq, _ts(e.at), e.actor_kind, e.actor_name, e.actor_source, e.action, e.obj, e.result,
                e.detail, rec.prev, rec.hash)
        return rec

    async def audit_records(self, *, after_seq: int = 0, since: dt.datetime | None = None,
                            until: dt.datetime | None = None, limit: int = 1000) -> list[auditmod.Record]:
        where, args = ["seq > $1"], [after_seq]
        if since is not None:
            args.append(_ts(since))
            where.append(f"at >= ${len(args)}")
        if until is not None:
            args.append(_ts(until))
            where.append(f"at < ${len(args)}")
        args.append(limit)
        rows = await self._all(f"SELECT {auditmod.COLUMNS} FROM audit WHERE {' AND '.join(where)}"
                               f" ORDER BY seq LIMIT ${len(args)}", *args)
        return [auditmod.Record.from_row(r) for r in rows]

    async def audit_bounds(self) -> tuple[int, int, tuple[int, str] | None]:
        async with self._snapshot() as r:
            lo, hi = await r.fetchrow("SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM audit")
            pruned = await r.fetchrow("SELECT upto, head FROM audit_pruned")
        return lo, hi, None if pruned is None else (pruned[0], pruned[1])

    async def add_audit_checkpoint(self, checkpoint: auditmod.Checkpoint) -> None:
        c = checkpoint
        async with self._write() as w:
            await w.execute("INSERT INTO audit_checkpoints (seq, head, at, key_id, algorithm, signature)"
                            " VALUES ($1, $2, $3, $4, $5, $6)", c.seq, c.head, _ts(c.at), c.key_id, c.algorithm,
                            c.signature)

    async def audit_checkpoints(self, *, limit: int | None = None) -> list[auditmod.Checkpoint]:
        rows = await self._all("SELECT seq, head, at, key_id, algorithm, signature FROM audit_checkpoints"
                               " ORDER BY id DESC LIMIT $1", limit)
        return [auditmod.Checkpoint(r[0], r[1], _dt(r[2]), r[3], r[4], bytes(r[5])) for r in reversed(rows)]

    async def prune_audit(self, before: dt.datetime) -> int:
        async with self._write() as w:
            row = await w.fetchrow(
                "SELECT c.seq, c.head FROM audit_checkpoints c JOIN audit a ON a.seq = c.seq AND a.hash = c.head"
                " WHERE a.at < $1 ORDER BY c.seq DESC LIMIT 1", _ts(before))
            if row is None:
                return 0
            status = await w.execute("DELETE FROM audit WHERE seq <= $1", row[0])
            await w.execute("INSERT INTO audit_pruned (one, upto, head) VALUES (1, $1, $2)"
                            " ON CONFLICT (one) DO UPDATE SET upto = excluded.upto, head = excluded.head",
                            row[0], row[1])
            return int(status.split()[-1])

