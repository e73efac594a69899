"""The store contract, run against both backends: SQLiteStore on a real SQLite file and
PgStore on a real PostgreSQL server (one per session, a fresh database per test)."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sqlite3

import pytest
from crl_testlib import wait_until_async
from pg_testlib import PASSWORD

from publisher.crl import Reason, ScopeKind, encode_entry
from publisher.errors import Conflict, NotFound
from publisher.migrations import MIGRATIONS
from publisher.pg_migrations import PG_MIGRATIONS
from publisher.pg_presigned import PgPresignedPort
from publisher.pg_store import PgStore
from publisher.sqlite_presigned import SQLitePresignedPort
from publisher.sqlite_store import SQLiteStore
from publisher.store import Action, NewCert, Status, StatusChange, serial_key

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """A new store object on the test's own repository: calling it again reopens the same
    repository, as a restarted process (or another node) would."""
    if request.param == "sqlite":
        path = tmp_path / "repo.sqlite"
        return lambda: SQLiteStore(path)
    url = request.getfixturevalue("pg_server").create_database(f"store_{next(_databases)}")
    return lambda: PgStore(url, password=PASSWORD)


def presigned_port(store):
    if isinstance(store, SQLiteStore):
        return SQLitePresignedPort(store.path)
    return PgPresignedPort(store)


@pytest.fixture
async def store(make_store):
    s = make_store()
    await s.open()
    yield s
    await s.close()


async def issuer(store):
    return await store.put_issuer("CA", b"cert", b"subject", b"kid")


def cert(issuer_id, serial, **kw):
    base = dict(issuer_id=issuer_id, serial=serial, der=b"d%d" % serial, subject=f"CN={serial}",
                not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=300),
                dp_url="http://x/crl/P1.crl", is_ca=False)
    base.update(kw)
    return NewCert(**base)


def change(issuer_id, serial, action, reason=None, at=NOW):
    entry = None if action is Action.RELEASE else encode_entry(serial, at, reason)
    return StatusChange(issuer_id, serial, action, reason, at, None, entry)


async def test_sqlite_wal_and_schema_version(tmp_path):
    async with SQLiteStore(tmp_path / "repo.sqlite"):
        con = sqlite3.connect(tmp_path / "repo.sqlite")
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_schema_version_is_the_latest(store):
    known = len(MIGRATIONS) if isinstance(store, SQLiteStore) else len(PG_MIGRATIONS)
    assert await store.schema_version() == (known, known)


async def test_serial_key_orders_numerically():
    values = [0, 1, 255, 256, 2**64, 2**159 - 1]
    assert sorted(values, key=serial_key) == values


async def test_add_duplicate_is_all_or_nothing(store):
    i = await issuer(store)
    await store.add_certificates([cert(i.id, 1)], at=NOW)
    with pytest.raises(Conflict, match="01"):
        await store.add_certificates([cert(i.id, 2), cert(i.id, 1)], at=NOW)
    assert await store.certificate(i.id, 2) is None


async def test_status_transitions(store):
    i = await issuer(store)
    await store.add_certificates([cert(i.id, s) for s in (1, 2, 3)], at=NOW)
    held = await store.change_status(change(i.id, 1, Action.HOLD, Reason.certificateHold))
    assert held.status is Status.HOLD and held.reason is Reason.certificateHold
    released = await store.change_status(change(i.id, 1, Action.RELEASE))
    assert released.status is Status.GOOD and released.revoked_at is None
    with pytest.raises(Conflict, match="not on hold"):
        await store.change_status(change(i.id, 2, Action.RELEASE))
    await store.change_status(change(i.id, 2, Action.HOLD, Reason.certificateHold))
    revoked = await store.change_status(change(i.id, 2, Action.REVOKE, Reason.keyCompromise))
    assert revoked.status is Status.REVOKED
    with pytest.raises(Conflict, match="final"):
        await store.change_status(change(i.id, 2, Action.REVOKE, Reason.superseded))
    with pytest.raises(NotFound):
        await store.change_status(change(i.id, 99, Action.REVOKE))


async def test_snapshot_sorted_scoped_and_filtered(store):
    i = await issuer(store)
    certs = [cert(i.id, 300), cert(i.id, 5), cert(i.id, 2**150, dp_url="http://x/crl/P2.crl"),
             cert(i.id, 7, is_ca=True, dp_url=None), cert(i.id, 9, not_after=NOW - dt.timedelta(days=40))]
    await store.add_certificates(certs, at=NOW)
    for c in certs:
        await store.change_status(change(i.id, c.serial, Action.REVOKE, Reason.superseded))
    full = await store.ensure_scope(i.id, ScopeKind.FULL, "", "FULL")
    p1 = await store.ensure_scope(i.id, ScopeKind.PARTITION, "http://x/crl/P1.crl", "P1")
    arl = await store.ensure_scope(i.id, ScopeKind.ARL, "", "ARL")
    snap = await store.snapshot_entries(full)
    assert snap.count == 5
    assert snap.entries == b"".join(encode_entry(s, NOW, Reason.superseded) for s in (5, 7, 9, 300, 2**150))
    assert (await store.snapshot_entries(p1)).count == 3  # 5, 9, 300: not the CA, not P2
    assert (await store.snapshot_entries(arl)).entries == encode_entry(7, NOW, Reason.superseded)
    dropped = await store.snapshot_entries(full, expired_before=NOW - dt.timedelta(days=30))
    assert dropped.count == 4
    assert snap.covered_event == await store.change_token()


async def test_scope_names_unique_and_stable(store):
    i = await issuer(store)
    await store.ensure_scope(i.id, ScopeKind.FULL, "", "CRL1")
    with pytest.raises(Conflict):
        await store.ensure_scope(i.id, ScopeKind.PARTITION, "http://x/a.crl", "CRL1")
    with pytest.raises(Conflict):
        await store.ensure_scope(i.id, ScopeKind.FULL, "", "renamed")


async def test_crl_numbers_never_reused_across_reopen(make_store):
    async with make_store() as s:
        i = await issuer(s)
        scope = await s.ensure_scope(i.id, ScopeKind.FULL, "", "CRL1")
        assert await s.reserve_crl_number(scope) == 1
        assert await s.reserve_crl_number(scope) == 2  # 1 was reserved, then lost in a "crash"
    async with make_store() as s:
        n = await s.reserve_crl_number(scope)
        assert n == 3
        await s.record_crl(scope, n, NOW, NOW + dt.timedelta(days=1), b"crl3", entries=0, covered_event=0, issued_at=NOW)
        with pytest.raises(Conflict, match="does not exceed"):
            await s.record_crl(scope, 3, NOW, NOW + dt.timedelta(days=1), b"x", entries=0, covered_event=0,
                               issued_at=NOW)
        # A handed-in number far ahead moves the counter past it.
        await s.record_crl(scope, 2**100, NOW, NOW + dt.timedelta(days=1), b"big", entries=0, covered_event=0,
                           issued_at=NOW, source="handed-in")
        assert await s.reserve_crl_number(scope) == 2**100 + 1
        assert [c.number for c in await s.current_crls()] == [2**100]
        assert [c.number for c in await s.crl_archive("CRL1")] == [3, 2**100]


async def test_prune_keeps_current(store):
    i = await issuer(store)
    scope = await store.ensure_scope(i.id, ScopeKind.FULL, "", "CRL1")
    old = NOW - dt.timedelta(days=4000)
    for n, when in [(1, old), (2, old + dt.timedelta(days=1))]:
        await store.record_crl(scope, n, when, when + dt.timedelta(days=1), b"c%d" % n, entries=0,
                               covered_event=0, issued_at=when)
    assert await store.prune_crls(NOW - dt.timedelta(days=2557)) == 1
    assert [c.number for c in await store.crl_archive("CRL1")] == [2]


async def test_committed_change_survives_reopen(make_store):
    async with make_store() as s:
        i = await issuer(s)
        await s.add_certificates([cert(i.id, 1)], at=NOW)
        await s.change_status(change(i.id, 1, Action.REVOKE, Reason.keyCompromise))
    async with make_store() as s:
        rec = await s.certificate(i.id, 1)
        assert rec.status is Status.REVOKED and rec.reason is Reason.keyCompromise


async def test_presigned_responses_and_change_probe(make_store):
    from publisher.store import PresignedResponse

    async with make_store() as s:
        i = await issuer(s)
        port = presigned_port(s)
        # SQLite: data_version; PostgreSQL: the listener of its change notifications.
        probe = port.change_probe()
        table = await port.open_table()
        try:
            await s.add_certificates([cert(i.id, 2**150)], at=NOW)
            row = PresignedResponse(i.id, 2**150, "sha1", 0, None, None, b"k", NOW, NOW + dt.timedelta(hours=8),
                                    NOW + dt.timedelta(hours=4), b"signed")
            seen = probe.version() if probe else None
            assert await table.put_many([row, dataclasses_replace(row, hash_name="sha256")]) == 2
            if probe is not None:  # a commit by another connection is noticed (on PostgreSQL, by NOTIFY,
                # which arrives on the listener's own connection after the commit, not with it)
                await wait_until_async(lambda: probe.version() != seen, timeout=10,
                                       what="the commit to be noticed")
            assert await table.get(i.id, 2**150, "sha1") == row
            assert await table.get(i.id, 2**150, "sha512") is None
            # A row about a certificate the store does not hold (or no longer in that state) is not saved.
            assert await table.put_many([dataclasses_replace(row, serial=5)]) == 0
            assert await table.get(i.id, 5, "sha1") is None
        finally:
            await table.close()
            if probe is not None:
                probe.close()


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


async def test_presigned_saves_go_through_while_reads_and_other_writers_interleave(make_store):
    """Reads of the pre-signed table made while a save is under way, with the repository's
    writer committing at the same time (as the LDAP name index does while it fills), never
    make a save fail: every round's rows are stored."""
    from publisher.store import PresignedResponse

    async with make_store() as s:
        i = await issuer(s)
        await s.add_certificates([cert(i.id, n) for n in range(1, 41)], at=NOW)
        table = await presigned_port(s).open_table()
        try:
            for n in range(1, 41):
                row = PresignedResponse(i.id, n, "sha1", 0, None, None, b"k", NOW, NOW + dt.timedelta(hours=8),
                                        NOW + dt.timedelta(hours=4), b"signed %d" % n)
                saved, *_ = await asyncio.gather(
                    table.put_many([row]),
                    table.coverage(["sha1"], NOW), table.missing(i.id, "sha1", -1, 10), table.get(i.id, n, "sha1"),
                    s.add_cert_names([("cn", f"name {n}", n)], upto=n))
                assert saved == 1
            assert (await table.coverage(["sha1"], NOW))[0] == 40
        finally:
            await table.close()


# The audit trail: appended under the write lock, never forked, never changed in place,
# pruned only up to a checkpoint.


def audit_entry(n, *, at=NOW, who="alice"):
    from publisher.audit import Entry

    return Entry(at, "os-user", who, None, "revoke", f"certificate CA {n:04X}", "ok", '{"n":%d}' % n)


async def raw_sql(store, sql):
    """Tamper with the store as someone with access to the database would."""
    if isinstance(store, SQLiteStore):
        con = sqlite3.connect(store.path)
        try:
            con.executescript(sql)
        finally:
            con.close()
    else:
        await store._pool.execute(sql)


async def verdict(store, key=None):
    """The trail's verdict, checking checkpoint signatures with `key` when given."""
    from publisher.audit import CheckpointKeys
    from publisher.audit_trail import verify_trail

    return await verify_trail(store, keys=CheckpointKeys([key.public_key()] if key is not None else []))


async def test_audit_appenders_on_one_store_never_fork_the_chain(store):
    async def appender(k):
        for i in range(100):
            await store.append_audit(audit_entry(k * 1000 + i))

    await asyncio.gather(*(appender(k) for k in range(8)))
    assert (await store.audit_bounds())[:2] == (1, 800)
    v = await verdict(store)
    assert v.problems == [] and v.records == 800
    objects = {r.entry.obj for r in await store.audit_records(limit=1000)}
    assert len(objects) == 800  # every append is there once


async def test_audit_two_nodes_never_fork_the_chain(make_store):
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    try:
        async def appender(s, k):
            for i in range(50):
                await s.append_audit(audit_entry(k * 1000 + i))

        await asyncio.gather(*(appender(s, k) for k in range(4) for s in (first, second)))
        v = await verdict(second)
        assert v.problems == [] and v.records == 400
    finally:
        await first.close()
        await second.close()


async def test_audit_record_changed_by_hand_is_named(store):
    for n in range(1, 6):
        await store.append_audit(audit_entry(n))
    with pytest.raises(Exception, match="never changed"):
        await raw_sql(store, "UPDATE audit SET action = 'hold' WHERE seq = 3")
    # Whoever can drop the trigger can change a row: the chain still names it.
    drop = ("DROP TRIGGER audit_append_only" if isinstance(store, SQLiteStore)
            else "DROP TRIGGER audit_append_only ON audit")
    await raw_sql(store, f"{drop}; UPDATE audit SET actor_name = 'mallory' WHERE seq = 3")
    v = await verdict(store)
    assert len(v.problems) == 1 and v.problems[0].startswith("record 3: hash mismatch"), v.problems
    # A row removed from the middle is a gap.
    await raw_sql(store, "UPDATE audit SET actor_name = 'alice' WHERE seq = 3; DELETE FROM audit WHERE seq = 4")
    v = await verdict(store)
    assert v.problems and v.problems[0].startswith("record 4: gap"), v.problems


async def test_audit_pruning_keeps_the_rest_verifiable(store, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from publisher.audit_trail import AuditTrail
    from publisher.clock import FixedClock

    key = ed25519.Ed25519PrivateKey.generate()
    old = NOW - dt.timedelta(days=8 * 366)
    clock = FixedClock(old)
    trail = AuditTrail(store, clock, key=key, checkpoint_file=tmp_path / "cp.json")
    for n in range(1, 4):
        await store.append_audit(audit_entry(n, at=old))
    await trail.checkpoint()  # vouches for record 3
    for n in range(4, 6):
        await store.append_audit(audit_entry(n, at=old))
    clock.advance(seconds=(NOW - old).total_seconds())
    for n in range(6, 8):
        await store.append_audit(audit_entry(n, at=NOW))
    retention = dt.timedelta(days=7 * 366)
    # Pruned only up to the checkpoint, although records 4 and 5 are past the retention too.
    assert await trail.prune(retention) == 3
    lo, hi, pruned = await store.audit_bounds()
    assert lo == 4 and pruned[0] == 3
    v = await verdict(store, key)
    assert v.problems == [], v.problems
    assert (await store.audit_records(after_seq=hi - 1))[0].entry.action == "audit-prune"
    # Everything pruned up to a checkpoint at the head: the next record still follows it.
    await trail.checkpoint()
    clock.advance(days=8 * 366)
    assert await trail.prune(retention) > 0
    v = await verdict(store, key)
    assert v.problems == [], v.problems
    # An anchor without its checkpoint is not vouched for.
    await raw_sql(store, "DELETE FROM audit_checkpoints")
    v = await verdict(store, key)
    assert v.problems and "no checkpoint vouches" in v.problems[0]
async def test_certificate_events_are_one_certificates_history(store):
    i = await issuer(store)
    await store.add_certificates([cert(i.id, 1), cert(i.id, 2)], at=NOW)
    await store.change_status(change(i.id, 1, Action.HOLD, Reason.certificateHold))
    await store.change_status(change(i.id, 2, Action.REVOKE, Reason.keyCompromise))
    await store.change_status(change(i.id, 1, Action.RELEASE))
    await store.change_status(change(i.id, 1, Action.REVOKE, Reason.superseded))
    one = await store.certificate(i.id, 1)
    assert [e.kind for e in await store.certificate_events(one)] == ["hold", "release", "revoke"]
    assert [e.kind for e in await store.certificate_events(one, limit=2)] == ["release", "revoke"]
    assert [e.kind for e in await store.certificate_events(await store.certificate(i.id, 2))] == ["revoke"]


async def test_idempotency_keys_claim_once_answer_then_expire(make_store):
    s = make_store()
    await s.open()
    try:
        old = NOW - dt.timedelta(days=2)
        assert await s.claim_idempotency_key("k1", "token:a", "h1", at=NOW, expired_before=old) is None
        pending = await s.claim_idempotency_key("k1", "token:a", "h1", at=NOW, expired_before=old)
        assert pending.status is None and pending.request_hash == "h1"
        # Keys are per actor: another client's same key is its own.
        assert await s.claim_idempotency_key("k1", "token:b", "h2", at=NOW, expired_before=old) is None
        await s.complete_idempotency_key("k1", "token:a", 201, b'{"ok": true}')
        await s.release_idempotency_key("k1", "token:a")  # answered: releasing forgets nothing
    finally:
        await s.close()
    s = make_store()  # as another process sees it
    await s.open()
    try:
        done = await s.claim_idempotency_key("k1", "token:a", "h9", at=NOW, expired_before=old)
        assert (done.status, done.body, done.request_hash) == (201, b'{"ok": true}', "h1")
        await s.release_idempotency_key("k1", "token:b")  # in progress: released, claimable again
        assert await s.claim_idempotency_key("k1", "token:b", "h2", at=NOW, expired_before=old) is None
        # A claim left in progress by a process that died is taken over by the same request
        # once it is older than `abandoned_before`; never by another request, never an answer.
        assert await s.claim_idempotency_key("k2", "token:a", "h4", at=NOW, expired_before=old) is None
        soon = NOW + dt.timedelta(seconds=30)
        pending = await s.claim_idempotency_key("k2", "token:a", "h4", at=soon, expired_before=old,
                                                abandoned_before=NOW)
        assert pending is not None and pending.status is None
        after = NOW + dt.timedelta(minutes=5)
        other = await s.claim_idempotency_key("k2", "token:a", "h5", at=after, expired_before=old,
                                              abandoned_before=after - dt.timedelta(minutes=2))
        assert other is not None and other.request_hash == "h4"
        assert await s.claim_idempotency_key("k2", "token:a", "h4", at=after, expired_before=old,
                                             abandoned_before=after - dt.timedelta(minutes=2)) is None
        retaken = await s.claim_idempotency_key("k2", "token:a", "h4", at=after, expired_before=old,
                                                abandoned_before=after - dt.timedelta(minutes=2))
        assert retaken.status is None and retaken.created_at == after  # the new claim is fresh
        answered = await s.claim_idempotency_key("k1", "token:a", "h1", at=after, expired_before=old,
                                                 abandoned_before=after)
        assert answered.status == 201
        # Past the retention the key is forgotten and may be used afresh.
        later = NOW + dt.timedelta(days=3)
        assert await s.claim_idempotency_key("k1", "token:a", "h3", at=later,
                                             expired_before=later - dt.timedelta(days=1)) is None
    finally:
        await s.close()
