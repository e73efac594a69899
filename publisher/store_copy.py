"""`pkirepo store copy`: a whole repository from one store to another, SQLite or PostgreSQL
either way, streamed in batches (never the whole store in memory), then verified.

The source is read in one snapshot (one SQLite read transaction, one PostgreSQL repeatable
read transaction), so a copy taken while a node serves from the source is still one
consistent state. The destination must be empty; it is marked incomplete (copy_plan's
COPY_MARKER) before the first row and unmarked only once rows per table, the newest CRL of
every scope and the change-log position are found equal, so a copy that stops half-way
leaves a store that every opener refuses instead of one that looks whole.

Both sides' schemas are made by the stores' own migrations (each store is opened once
through its `open()`), and the copy checks that they hold the same tables and columns.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

import aiosqlite
import asyncpg

from .copy_plan import (
    COPY_MARKER,
    TABLES,
    LatestCrl,
    Summary,
    Table,
    differences,
    incomplete_message,
    marker_value,
    progress_line,
    to_postgresql,
    to_sqlite,
    unknown_tables,
)
from .db_settings import URL_RE, read_password, redact, url_holds_password
from .errors import ConfigError, RepoError, StoreIncomplete, StoreMissing, StoreProblem
from .pg_store import PgStore
from .sqlite_store import SQLiteStore
from .store import from_serial_key



@dataclass(frozen=True)
class Endpoint:
    """One side of a copy as the command line gives it: a SQLite file or a PostgreSQL URL
    (without a password: that comes from a file or an environment variable)."""
    option: str                      # --from or --to, for messages
    path: Path | None = None
    url: str | None = None
    password_file: Path | None = None
    password_env: str | None = None

    @property
    def where(self) -> str:
        return redact(self.url) if self.url else str(self.path)

    @property
    def label(self) -> str:
        return f"{self.option} {self.where}"

    def password(self) -> str | None:
        return read_password(self.password_file, self.password_env, file_key=f"{self.option}-password-file",
                             env_key=f"{self.option}-password-env")


def endpoint(option: str, text: str, *, password_file: str | None = None,
             password_env: str | None = None) -> Endpoint:
    """Parse one side; ConfigError names the option and the value at fault."""
    if not text.strip():
        raise ConfigError(f"{option}: empty: give a SQLite file or a postgresql:// URL")
    if URL_RE.match(text):
        if url_holds_password(text):
            raise ConfigError(f"{option}: the URL must not hold the password (command lines are seen by others): "
                              f"give {option}-password-file or {option}-password-env")
        if "\0" in text:
            raise ConfigError(f"{option}: the URL holds a NUL character")
        if password_file is not None and password_env is not None:
            raise ConfigError(f"{option}-password-env: give {option}-password-file or {option}-password-env, "
                              f"not both")
        return Endpoint(option, url=text, password_file=None if password_file is None else Path(password_file),
                        password_env=password_env)
    if "\0" in text:
        raise ConfigError(f"{option} {text!r}: a file name cannot hold a NUL character")
    if "://" in text:
        raise ConfigError(f"{option} {text}: not a SQLite file or a postgresql:// URL")
    for name, value in ((f"{option}-password-file", password_file), (f"{option}-password-env", password_env)):
        if value is not None:
            raise ConfigError(f"{name}: only applies to a postgresql:// URL, and {option} is the SQLite file {text}")
    return Endpoint(option, path=Path(text))


# The two engines behind one small interface: read a table in order, write rows, the marker.


class _Side:
    where: str

    async def tables(self) -> set[str]: ...
    async def columns(self, table: str) -> list[str]: ...
    async def count(self, table: str) -> int: ...
    def read(self, table: Table, columns: list[str]) -> AsyncIterator[list[tuple]]: ...
    async def write(self, table: Table, columns: list[str], rows: list[tuple]) -> None: ...
    async def latest_crls(self) -> tuple[LatestCrl, ...]: ...
    async def change_log(self) -> int: ...
    async def marker(self) -> str | None: ...
    async def mark(self, value: str) -> None: ...
    async def unmark(self) -> None: ...
    async def snapshot(self) -> None: ...
    async def finish_writes(self) -> None: ...
    async def close(self) -> None: ...

    async def summary(self, tables: list[Table]) -> Summary:
        counts = {t.name: await self.count(t.name) for t in tables}
        if await self.marker() is not None:
            counts["meta"] -= 1  # the copy's own marker, not repository content
        return Summary(counts, await self.latest_crls(), await self.change_log())

    async def holds_rows(self) -> int:
        """Rows of repository content (the meta rows a new store is made with do not count)."""
        present = await self.tables()
        n = 0
        for t in TABLES:
            if t.name in present and t.name != "meta":
                n += await self.count(t.name)
        return n


def _digest(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


class _SQLite(_Side):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self.conn: aiosqlite.Connection | None = None

    async def connect(self) -> None:
        self.conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self.conn.execute("PRAGMA busy_timeout = 10000")

    async def _all(self, sql: str, args=()) -> list:
        return await (await self.conn.execute(sql, args)).fetchall()

    async def tables(self) -> set[str]:
        return {r[0] for r in await self._all("SELECT name FROM sqlite_master WHERE type = 'table'")}

    async def columns(self, table: str) -> list[str]:
        return [r[1] for r in await self._all(f'PRAGMA table_info("{table}")')]

    async def count(self, table: str) -> int:
        return (await self._all(f'SELECT count(*) FROM "{table}"'))[0][0]

    async def read(self, table: Table, columns: list[str]) -> AsyncIterator[list[tuple]]:
        cols = ", ".join(f'"{c}"' for c in columns)
        cur = await self.conn.execute(f'SELECT {cols} FROM "{table.name}" ORDER BY {", ".join(table.order)}')
        try:
            while rows := await cur.fetchmany(table.batch):
                yield rows
        finally:
            await cur.close()

    async def write(self, table: Table, columns: list[str], rows: list[tuple]) -> None:
        cols = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" * len(columns))
        await self.conn.execute("BEGIN")
        try:
            await self.conn.executemany(f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})', rows)
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")

    async def latest_crls(self) -> tuple[LatestCrl, ...]:
        out = []
        for scope_id, name in await self._all("SELECT id, name FROM scopes ORDER BY name"):
            rows = await self._all("SELECT number, der FROM crls WHERE scope_id = ? ORDER BY number DESC LIMIT 1",
                                   (scope_id,))
            if rows:
                out.append(LatestCrl(name, rows[0][0], _digest(rows[0][1])))
        return tuple(out)

    async def change_log(self) -> int:
        return (await self._all("SELECT coalesce(max(id), 0) FROM events"))[0][0]

    async def marker(self) -> str | None:
        if "meta" not in await self.tables():
            return None
        rows = await self._all("SELECT value FROM meta WHERE key = ?", (COPY_MARKER,))
        return rows[0][0] if rows else None

    async def mark(self, value: str) -> None:
        # The rows are written without waiting for the disk (the marker makes a copy cut
        # short by a crash unusable anyway); unmark() makes everything durable at once.
        await self.conn.execute("PRAGMA synchronous = OFF")
        await self.conn.execute("BEGIN IMMEDIATE")
        await self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (COPY_MARKER, value))
        await self.conn.execute("DELETE FROM meta WHERE key <> ?", (COPY_MARKER,))
        await self.conn.execute("COMMIT")

    async def unmark(self) -> None:
        # Everything written so far reaches the disk before the marker goes: a checkpoint
        # with synchronous FULL syncs the database file (earlier checkpoints, made while
        # synchronous was OFF, did not), then the commit that removes the marker syncs the log.
        await self.conn.execute("PRAGMA synchronous = FULL")
        await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self.conn.execute("DELETE FROM meta WHERE key = ?", (COPY_MARKER,))

    async def snapshot(self) -> None:
        # A deferred transaction's snapshot starts with its first read: every read after
        # this one sees the same state, whatever a serving node commits meanwhile.
        await self.conn.execute("BEGIN")
        await self._all("SELECT count(*) FROM sqlite_master")

    async def finish_writes(self) -> None:
        # No ANALYZE: the SQLite store never keeps statistics, and its queries are written
        # for the planner's choices without them; a copy must plan as the original does.
        pass

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()


class _Pg(_Side):
    def __init__(self, url: str, password: str | None) -> None:
        self.url = url
        self.password = password
        self.where = redact(url)
        self.conn: asyncpg.Connection | None = None
        self._tx = None

    async def connect(self) -> None:
        self.conn = await asyncpg.connect(self.url, password=self.password, command_timeout=600)

    async def tables(self) -> set[str]:
        rows = await self.conn.fetch("SELECT table_name FROM information_schema.tables"
                                     " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
        return {r[0] for r in rows}

    async def columns(self, table: str) -> list[str]:
        rows = await self.conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_schema ="
                                     " current_schema() AND table_name = $1 ORDER BY ordinal_position", table)
        return [r[0] for r in rows]

    async def count(self, table: str) -> int:
        return await self.conn.fetchval(f'SELECT count(*) FROM "{table}"')

    async def read(self, table: Table, columns: list[str]) -> AsyncIterator[list[tuple]]:
        cols = ", ".join(f'"{c}"' for c in columns)
        cur = await self.conn.cursor(f'SELECT {cols} FROM "{table.name}" ORDER BY {", ".join(table.order)}')
        while rows := await cur.fetch(table.batch):
            yield to_sqlite(table, columns, rows)

    async def write(self, table: Table, columns: list[str], rows: list[tuple]) -> None:
        await self.conn.copy_records_to_table(table.name, records=to_postgresql(table, columns, rows),
                                              columns=columns)

    async def latest_crls(self) -> tuple[LatestCrl, ...]:
        out = []
        for scope_id, name in await self.conn.fetch("SELECT id, name FROM scopes ORDER BY name"):
            row = await self.conn.fetchrow("SELECT number, der FROM crls WHERE scope_id = $1"
                                           " ORDER BY number DESC LIMIT 1", scope_id)
            if row is not None:
                out.append(LatestCrl(name, row[0], _digest(row[1])))
        return tuple(out)

    async def change_log(self) -> int:
        return await self.conn.fetchval("SELECT coalesce(max(id), 0) FROM events")

    async def marker(self) -> str | None:
        if await self.conn.fetchval("SELECT to_regclass('meta') IS NULL"):
            return None
        return await self.conn.fetchval("SELECT value FROM meta WHERE key = $1", COPY_MARKER)

    async def mark(self, value: str) -> None:
        async with self.conn.transaction():
            await self.conn.execute("INSERT INTO meta (key, value) VALUES ($1, $2)", COPY_MARKER, value)
            await self.conn.execute("DELETE FROM meta WHERE key <> $1", COPY_MARKER)

    async def unmark(self) -> None:
        await self.conn.execute("DELETE FROM meta WHERE key = $1", COPY_MARKER)

    async def snapshot(self) -> None:
        self._tx = self.conn.transaction(isolation="repeatable_read", readonly=True)
        await self._tx.start()

    async def finish_writes(self) -> None:
        # Ids were copied as they were: each identity sequence continues after the highest,
        # or the next issuer, CRL or event would collide with a copied one.
        rows = await self.conn.fetch("SELECT table_name, column_name FROM information_schema.columns"
                                     " WHERE table_schema = current_schema() AND is_identity = 'YES'")
        for table, column in rows:
            await self.conn.execute(
                f'SELECT setval(pg_get_serial_sequence($1, $2), m) FROM (SELECT max("{column}") AS m'
                f' FROM "{table}") AS t WHERE m IS NOT NULL', table, column)
        # Fresh statistics: the planner would otherwise take a million-row table for empty.
        await self.conn.execute("ANALYZE")

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()


# The copy


@dataclass
class TableCopy:
    name: str
    rows: int
    seconds: float


@dataclass
class CopyReport:
    source: str
    destination: str
    tables: list[TableCopy] = field(default_factory=list)
    summary: Summary | None = None
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0


async def _open_store(ep: Endpoint, *, create: bool) -> None:
    """Open (and close) the store through its own class: this checks what a node would
    check (schema version, a half-finished copy) and brings the schema up to date."""
    store = (PgStore(ep.url, password=ep.password(), create=create, max_size=1) if ep.url
             else SQLiteStore(ep.path, create=create))
    try:
        await store.open()
    except StoreIncomplete as e:
        raise StoreIncomplete(f"{ep.option}: {e.message}") from None
    except StoreMissing as e:
        if create:  # PostgreSQL: the database itself is the DBA's to make
            raise ConfigError(f"{ep.label}: no such database: create it first (createdb), empty") from None
        raise ConfigError(f"{ep.label}: no repository here ({e.message})") from None
    except RepoError as e:
        raise ConfigError(f"{ep.option}: {e.message}") from None
    await store.close()


async def _connect(ep: Endpoint) -> _Side:
    side: _Side = _Pg(ep.url, ep.password()) if ep.url else _SQLite(ep.path)
    try:
        await side.connect()
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error) as e:
        await side.close()
        raise ConfigError(f"{ep.label}: cannot open: {e}") from None
    return side


async def _refuse_unless_empty(ep: Endpoint) -> None:
    """The destination must not hold a repository: a copy never merges into one."""
    if ep.path is not None and (not ep.path.exists() or ep.path.stat().st_size == 0):
        if ep.path.exists() or ep.path.parent.is_dir():
            return
        raise ConfigError(f"{ep.label}: no directory {ep.path.parent}")
    side = await _connect(ep)
    try:
        marker = await side.marker()
        if marker is not None:
            raise StoreIncomplete(f"{ep.option}: {incomplete_message(ep.where, marker)}")
        n = await side.holds_rows()
    except (sqlite3.DatabaseError, asyncpg.PostgresError) as e:
        raise ConfigError(f"{ep.label}: not an empty store ({e}); copy into a new file or an empty database") \
            from None
    finally:
        await side.close()
    if n:
        raise ConfigError(f"{ep.label}: not empty ({n} rows of a repository): a copy only goes into a new file or "
                          f"an empty database")


async def _check_schemas(src: _Side, dst: _Side, tables: list[Table]) -> None:
    for side, ep_label in ((src, "source"), (dst, "destination")):
        extra = unknown_tables(await side.tables())
        if extra:
            raise StoreProblem(f"{side.where}: table(s) {', '.join(extra)} unknown to `store copy`: refusing to "
                               f"copy without them ({ep_label})")
    for t in tables:
        a, b = await src.columns(t.name), await dst.columns(t.name)
        if sorted(a) != sorted(b):
            raise StoreProblem(f"table {t.name}: the columns differ between {src.where} ({', '.join(a)}) and "
                               f"{dst.where} ({', '.join(b)}): both stores must be at this pkirepo's schema")


async def copy_store(source: Endpoint, target: Endpoint, *, now: dt.datetime, presigned: bool = True,
                     progress: Callable[[str], None] = lambda line: None, interval: float = 1.0) -> CopyReport:
    """Copy everything `source` holds into the empty `target`, then verify; StoreProblem
    when the two differ (the target then stays marked incomplete)."""
    if source.where == target.where or (source.path and target.path
                                        and source.path.resolve() == target.path.resolve()):
        raise ConfigError(f"--to {target.where}: that is the source itself")
    started = time.monotonic()
    try:
        if source.path is not None and not source.path.is_file():
            raise ConfigError(f"{source.label}: no such file")
        await _open_store(source, create=False)
        await _refuse_unless_empty(target)
        await _open_store(target, create=True)
    except OSError as e:  # a name too long, a directory we may not read
        raise ConfigError(f"{e.filename or source.where}: {e.strerror or e}") from None
    tables = [t for t in TABLES if presigned or not t.optional]
    report = CopyReport(source.where, target.where, skipped=tuple(t.name for t in TABLES if t not in tables))
    src = await _connect(source)
    try:
        dst = await _connect(target)
        try:
            await _check_schemas(src, dst, tables)
            await dst.mark(marker_value(source.where, now))
            await src.snapshot()
            expected = await src.summary(tables)
            for t in tables:
                columns = await src.columns(t.name)
                total = expected.counts[t.name]
                done, t0, shown = 0, time.monotonic(), time.monotonic()
                async for rows in src.read(t, columns):
                    await dst.write(t, columns, rows)
                    done += len(rows)
                    if time.monotonic() - shown >= interval:
                        shown = time.monotonic()
                        progress(progress_line(t.name, done, total, shown - t0))
                seconds = time.monotonic() - t0
                progress(progress_line(t.name, done, total, seconds))
                report.tables.append(TableCopy(t.name, done, seconds))
            await dst.finish_writes()
            found = await dst.summary(tables)
            problems = differences(expected, found)
            if problems:
                raise StoreProblem(f"--to {target.where}: the copy differs from the source, so it stays marked "
                                   f"incomplete: " + "; ".join(problems))
            await dst.unmark()
            report.summary = found
        finally:
            await dst.close()
    except (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
        raise StoreProblem(f"store copy from {source.where} to {target.where} stopped: {e}. The destination is "
                           f"marked incomplete and will be refused; remove it and copy again") from None
    finally:
        await src.close()
    # The copy opens as a node would open it.
    await _open_store(target, create=False)
    report.seconds = time.monotonic() - started
    return report


def summary_lines(report: CopyReport) -> list[str]:
    s = report.summary
    lines = [f"copied {report.source} to {report.destination} in {report.seconds:.1f} s"]
    for t in report.tables:
        rate = t.rows / t.seconds if t.seconds > 0 else 0
        lines.append(f"  {t.name:<20} {t.rows:>10} rows  {rate:>10,.0f} rows/s")
    for name in report.skipped:
        lines.append(f"  {name:<20} not copied (--no-presigned): the new store's responder signs them again")
    lines.append(f"verified: rows per table equal ({len(s.counts)} tables); the latest CRL of each of "
                 f"{len(s.latest)} scope(s) byte-identical; change log at event {s.change_log}")
    for c in s.latest:
        lines.append(f"  {c.scope}: CRL number {from_serial_key(c.number)}, sha256 {c.sha256}")
    return lines
