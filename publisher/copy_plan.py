"""What `pkirepo store copy` moves between the SQLite and the PostgreSQL store, and how it
judges the result. Pure: the tables, their order, the few column types that differ between
the two engines, the comparison of the two sides and the progress lines; store_copy.py does
the reading and writing.

The copy is table by table, row for row, ids included: the change log's cert_id, the CRLs'
scope_id and the name index's cert_id stay valid, and a node started on the copy carries on
from the same change-log position and CRL numbers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The meta key set on the destination before the first row is written and removed only after
# the copy has been verified: a store that holds it is refused by every opener (the stores'
# open()), so an interrupted copy can never be served as if it were whole.
COPY_MARKER = "copy_incomplete"


@dataclass(frozen=True)
class Table:
    name: str
    order: tuple[str, ...]                # the primary key: rows are read in this order
    booleans: tuple[str, ...] = ()        # boolean in PostgreSQL, 0/1 integer in SQLite
    batch: int = 5000                     # rows per read and write; small for large values
    optional: bool = False                # may be left out (--no-presigned)


# Parents before children (PostgreSQL checks foreign keys on every row).
TABLES: tuple[Table, ...] = (
    Table("meta", ("key",)),
    Table("issuers", ("id",), booleans=("keep_published",), batch=100),
    Table("certificates", ("id",), booleans=("is_ca",)),
    Table("revoked", ("cert_id",), booleans=("is_ca",)),
    Table("scopes", ("id",)),
    # A CRL of a million entries is 53 MB: two at a time keeps memory flat.
    Table("crls", ("id",), batch=2),
    Table("events", ("id",)),
    Table("documents", ("id",), batch=4),
    Table("trustlist_entries", ("id",), batch=500),
    Table("trustlist_statuses", ("entry_id", "position")),
    Table("trustlists", ("seq",), batch=8),
    Table("cert_names", ("attr", "value", "cert_id")),
    Table("maintenance_windows", ("id",)),
    Table("heartbeats", ("id",)),
    Table("downtime", ("id",)),
    # Pre-signed OCSP answers can be signed again, but at a million certificates that is
    # minutes of signing per hash algorithm on the new store: copied unless --no-presigned.
    Table("ocsp_responses", ("issuer_id", "serial", "hash"), optional=True),
    Table("notices", ("id",)),
    # The audit trail, copied row for row: its hash chain must verify on the copy too.
    Table("audit", ("seq",), batch=1000),
    Table("audit_checkpoints", ("id",)),
    Table("audit_pruned", ("one",)),
)

# Tables of one engine that are bookkeeping of that engine, not repository content.
ENGINE_TABLES = frozenset({"schema_version", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})


def unknown_tables(present: set[str]) -> list[str]:
    """Tables a store holds that the copy does not know: copying without them would lose
    data silently, so the copy refuses (a migration added a table and this list was not
    told)."""
    return sorted(present - ENGINE_TABLES - {t.name for t in TABLES})


def to_postgresql(table: Table, columns: list[str], rows: list[tuple]) -> list[tuple]:
    """SQLite rows as PostgreSQL's COPY takes them (0/1 to booleans)."""
    if not table.booleans:
        return rows
    at = [i for i, c in enumerate(columns) if c in table.booleans]
    out = []
    for row in rows:
        row = list(row)
        for i in at:
            if row[i] is not None:
                row[i] = bool(row[i])
        out.append(tuple(row))
    return out


def to_sqlite(table: Table, columns: list[str], rows: list) -> list[tuple]:
    """PostgreSQL records as SQLite stores them (booleans as 0/1, as the SQLite store writes
    them)."""
    at = [i for i, c in enumerate(columns) if c in table.booleans]
    out = []
    for rec in rows:
        row = list(rec)
        for i in at:
            if row[i] is not None:
                row[i] = int(row[i])
        out.append(tuple(row))
    return out


@dataclass(frozen=True)
class LatestCrl:
    scope: str       # the scope's publication name
    number: bytes    # sort-key encoded, as stored
    sha256: str      # of the whole DER, read back from each side


@dataclass(frozen=True)
class Summary:
    """What the copy checks on both sides: rows per table, the newest CRL of every scope and
    the change log's position (the last event id)."""
    counts: dict[str, int]
    latest: tuple[LatestCrl, ...]
    change_log: int


def differences(src: Summary, dst: Summary) -> list[str]:
    """Every way the destination differs from the source; [] when the copy is whole."""
    problems = []
    for name in sorted(set(src.counts) | set(dst.counts)):
        a, b = src.counts.get(name), dst.counts.get(name)
        if a != b:
            problems.append(f"table {name}: {a} row(s) in the source, {b} in the destination")
    theirs = {c.scope: c for c in dst.latest}
    for c in src.latest:
        d = theirs.pop(c.scope, None)
        if d is None:
            problems.append(f"scope {c.scope}: no CRL in the destination")
        elif d.number != c.number:
            problems.append(f"scope {c.scope}: latest CRL number differs")
        elif d.sha256 != c.sha256:
            problems.append(f"scope {c.scope}: latest CRL bytes differ")
    for scope in sorted(theirs):
        problems.append(f"scope {scope}: a CRL in the destination only")
    if src.change_log != dst.change_log:
        problems.append(f"change log: at event {src.change_log} in the source, {dst.change_log} in the destination")
    return problems


def progress_line(table: str, done: int, total: int, seconds: float) -> str:
    rate = done / seconds if seconds > 0 else 0.0
    return f"store copy: {table}: {done}/{total} rows, {rate:,.0f} rows/s"


def marker_value(src: str, now: dt.datetime) -> str:
    return f"from {src}, started {now.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def incomplete_message(where: str, value: str) -> str:
    """Why a half-copied store is refused, and what to do about it."""
    return (f"{where}: a `pkirepo store copy` into this store did not finish ({value}); it holds only part of a "
            f"repository and is never served. Remove it (SQLite: delete the file; PostgreSQL: dropdb and createdb) "
            f"and copy again")
