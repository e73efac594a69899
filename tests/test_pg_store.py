"""What only the PostgreSQL store has: its config keys, its refusals, and several nodes
(store objects, each with its own pool) on one database at once. The store contract itself
is tests/test_store.py, run on both backends."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from pg_testlib import PASSWORD, pg_node

from publisher.crl import Reason, ScopeKind, encode_entry
from publisher.db_settings import _PASSWORD_IN_URL, redact
from publisher.errors import ConfigError, Conflict, NotAllowed, NotFound, StoreMissing, Unavailable
from publisher.pg_migrations import PG_MIGRATIONS
from publisher.pg_presigned import PgPresignedPort
from publisher.pg_store import PgStore
from publisher.root import load_settings, open_backend
from publisher.store import Action, NewCert, PresignedResponse, Status, StatusChange

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count(1)


@pytest.fixture
def db_url(pg_server):
    return pg_server.create_database(f"pg_{next(_names)}")


@pytest.fixture
async def nodes(db_url):
    """Two nodes' stores on one database."""
    a, b = PgStore(db_url, password=PASSWORD), PgStore(db_url, password=PASSWORD)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def cert(issuer_id, serial, **kw):
    base = dict(issuer_id=issuer_id, serial=serial, der=b"d%d" % serial, subject=f"CN={serial}",
                not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=300),
                dp_url="http://x/crl/P1.crl", is_ca=False)
    base.update(kw)
    return NewCert(**base)


def revoke(issuer_id, serial, at=NOW):
    return StatusChange(issuer_id, serial, Action.REVOKE, Reason.keyCompromise, at, None,
                        encode_entry(serial, at, Reason.keyCompromise))


def config(tmp_path, store_section: str) -> Path:
    text = (ROOT / "config" / "pkirepo.example.toml").read_text()
    # store.prewarm is the SQLite store's only, and refused beside store.url.
    text = text.replace("\nprewarm = true\n", "\n", 1)
    text = text.replace('[store]\n', f'[store]\n{store_section}\n', 1)
    (tmp_path / "pki").mkdir(exist_ok=True)
    for f in ("pki/root.pem", "pki/ca.pem"):
        (tmp_path / f).write_text("placeholder")
    cfg = tmp_path / "pkirepo.toml"
    cfg.write_text(text)
    return cfg


# Config and opening


async def test_store_url_opens_a_postgresql_backend(tmp_path, db_url):
    (tmp_path / "db-password").write_text(PASSWORD + "\n")
    s = load_settings(config(tmp_path, f'url = "{db_url}"\npassword_file = "db-password"\npool_size = 3'))
    assert s.database.url == db_url and s.database.pool_size == 3
    assert PASSWORD not in repr(s)  # read when the store opens, never kept in the settings
    backend = await open_backend(s, create=True)
    try:
        assert isinstance(backend.store, PgStore)
        assert isinstance(backend.presigned, PgPresignedPort)
        assert await backend.store.schema_version() == (len(PG_MIGRATIONS), len(PG_MIGRATIONS))
    finally:
        await backend.close()


async def test_password_from_the_environment(tmp_path, db_url, monkeypatch):
    s = load_settings(config(tmp_path, f'url = "{db_url}"\npassword_env = "PKIREPO_TEST_DB_PASSWORD"'))
    monkeypatch.delenv("PKIREPO_TEST_DB_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="store.password_env: the environment variable PKIREPO_TEST_DB_PASSWORD"):
        await open_backend(s, create=True)
    monkeypatch.setenv("PKIREPO_TEST_DB_PASSWORD", "wrong")
    with pytest.raises(NotAllowed, match="refused the login"):
        await open_backend(s, create=True)
    monkeypatch.setenv("PKIREPO_TEST_DB_PASSWORD", PASSWORD)
    backend = await open_backend(s, create=True)
    await backend.close()


@pytest.mark.parametrize("section, message", [
    ('url = "postgresql://u:secret@127.0.0.1/db"', "store.url: must not hold the password"),
    ('url = "postgresql://u@127.0.0.1/db?password=secret"', "store.url: must not hold the password"),
    ('url = "mysql://u@127.0.0.1/db"', "store.url: 'mysql://u@127.0.0.1/db' must start with postgresql://"),
    ('password_file = "pw"', "store.password_file: only applies with store.url"),
    ('url = "postgresql://u@h/db"\npassword_file = "pw"\npassword_env = "PW"', "store.password_env: give"),
    ('url = "postgresql://u@h/db"\npassword_env = "not a name"', "store.password_env: 'not a name'"),
    ('url = "postgresql://u@h/db"\npool_size = 0', "store.pool_size: must be at least 1"),
    ('url = "postgresql://u@h/db"\nleader_timeout = 0', "store.leader_timeout: must be at least 1"),
    ('url = "postgresql://u@h/db"\nleader_timeout = "30s"', "store.leader_timeout: must be an integer"),
    ('leader_timeout = 5', "store.leader_timeout: only applies with store.url"),
    ('url = "postgresql://u@h/db"\nconnect_timeout = 0', "store.connect_timeout: must be at least 1"),
])
def test_config_errors_name_the_key(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        load_settings(config(tmp_path, section))


async def test_missing_password_file_names_it(tmp_path, db_url):
    s = load_settings(config(tmp_path, f'url = "{db_url}"\npassword_file = "nowhere"'))
    with pytest.raises(ConfigError, match="store.password_file: cannot read .*nowhere"):
        await open_backend(s)


async def test_refuses_a_database_without_a_repository(pg_server, db_url):
    with pytest.raises(StoreMissing, match="pkirepo init"):
        await PgStore(db_url, password=PASSWORD, create=False).open()
    with pytest.raises(StoreMissing, match="no such database"):
        await PgStore(pg_server.url("absent"), password=PASSWORD).open()
    with pytest.raises(Unavailable, match="cannot connect"):
        await PgStore("postgresql://postgres@127.0.0.1:1/x", password=PASSWORD).open()


async def test_refuses_a_newer_schema_and_reopens_an_equal_one(pg_server, db_url):
    async with PgStore(db_url, password=PASSWORD):
        pass
    async with PgStore(db_url, password=PASSWORD, create=False) as s:  # nothing to migrate
        assert await s.schema_version() == (len(PG_MIGRATIONS), len(PG_MIGRATIONS))
    pg_server.psql("UPDATE schema_version SET version = version + 1", db_url.rsplit("/", 1)[1])
    with pytest.raises(Unavailable, match="newer than this pkirepo knows"):
        await PgStore(db_url, password=PASSWORD).open()


async def test_backup_points_to_pg_dump(nodes, tmp_path):
    with pytest.raises(NotAllowed, match="pg_dump"):
        await nodes[0].backup_to(tmp_path / "b.sqlite")
    assert not (tmp_path / "b.sqlite").exists()


@settings(max_examples=200, deadline=None)
@given(user=st.text(st.characters(blacklist_characters=":@/"), min_size=1, max_size=10),
       password=st.text(st.characters(blacklist_characters="@/"), min_size=1, max_size=10))
def test_a_password_in_the_url_is_seen_and_never_printed(user, password):
    url = f"postgresql://{user}:{password}@127.0.0.1:5432/repo"
    assert _PASSWORD_IN_URL.match(url)
    assert redact(url) == f"postgresql://{user}@127.0.0.1:5432/repo"


# Several nodes on one database


async def test_two_nodes_never_hand_out_the_same_crl_number(nodes):
    a, b = nodes
    i = await a.put_issuer("CA", b"cert", b"subject", b"kid")
    scope = await a.ensure_scope(i.id, ScopeKind.FULL, "", "CRL1")
    numbers = await asyncio.gather(*[(a if k % 2 else b).reserve_crl_number(scope) for k in range(40)])
    assert sorted(numbers) == list(range(1, 41))
    # Both record the same next number: one wins, the other is refused and nothing goes back.
    n = await a.reserve_crl_number(scope)
    results = await asyncio.gather(
        *[s.record_crl(scope, n, NOW, NOW + dt.timedelta(days=1), b"crl-%d" % k, entries=0, covered_event=0,
                       issued_at=NOW) for k, s in enumerate((a, b))], return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "CrlRecord"]
    assert [c.number for c in await b.current_crls()] == [n]


async def test_one_revocation_wins_and_the_change_log_stays_in_order(nodes):
    a, b = nodes
    i = await a.put_issuer("CA", b"cert", b"subject", b"kid")
    await a.add_certificates([cert(i.id, s) for s in range(1, 31)], at=NOW)
    start = await b.change_token()
    results = await asyncio.gather(*[(a, b)[k % 2].change_status(revoke(i.id, 1 + k // 2)) for k in range(60)],
                                   return_exceptions=True)
    assert sum(isinstance(r, Conflict) for r in results) == 30  # each serial: one revocation, one "final"
    assert all(r.status is Status.REVOKED for r in results if not isinstance(r, Exception))
    events = await b.events_since(start, limit=100)
    assert [e.id for e in events] == sorted(e.id for e in events) and len(events) == 30
    assert sorted(e.cert_id for e in events) == sorted({e.cert_id for e in events})


async def test_bulk_import_is_all_or_nothing_across_chunks(nodes):
    a, b = nodes
    i = await a.put_issuer("CA", b"cert", b"subject", b"kid")
    await a.add_certificates([cert(i.id, 7)], at=NOW)

    async def chunks():
        yield [cert(i.id, s) for s in range(100, 200)]
        yield [cert(i.id, 250, status=Status.REVOKED, reason=Reason.superseded, revoked_at=NOW,
                    entry=encode_entry(250, NOW, Reason.superseded)), cert(i.id, 7)]

    with pytest.raises(Conflict, match="certificate 07 is already in the repository") as e:
        await b.add_certificates_stream(chunks(), at=NOW)
    assert e.value.detail == {"serial": 7}
    assert await a.certificate(i.id, 150) is None  # the first chunk went too
    with pytest.raises(Conflict):  # a dry run finds the duplicate as a real run would
        await b.add_certificates_stream(chunks(), at=NOW, dry_run=True)
    token = await a.change_token()

    async def good():
        yield [cert(i.id, s) for s in range(300, 400)]
        yield [cert(i.id, 250, status=Status.REVOKED, reason=Reason.superseded, revoked_at=NOW,
                    entry=encode_entry(250, NOW, Reason.superseded))]

    assert await b.add_certificates_stream(good(), at=NOW, dry_run=True) == 101
    assert await a.certificate(i.id, 300) is None and await a.change_token() == token
    assert await b.add_certificates_stream(good(), at=NOW) == 101
    full = await a.ensure_scope(i.id, ScopeKind.FULL, "", "CRL1")
    assert (await a.snapshot_entries(full)).entries == encode_entry(250, NOW, Reason.superseded)
    # Ids follow the insertion order, so the LDAP name index reads every new one.
    ids = [c.id for c in await a.certificates_by_id(after_id=0, limit=1000)]
    assert ids == sorted(ids) and len(ids) == 102


async def test_a_stale_presigned_answer_never_replaces_a_revocation(nodes):
    a, b = nodes
    i = await a.put_issuer("CA", b"cert", b"subject", b"kid")
    await a.add_certificates([cert(i.id, 5), cert(i.id, 6)], at=NOW)
    table = await PgPresignedPort(b).open_table()
    good = PresignedResponse(i.id, 5, "sha1", 0, None, None, b"key1", NOW, NOW + dt.timedelta(hours=8),
                             NOW + dt.timedelta(hours=4), b"good")
    other = PresignedResponse(i.id, 6, "sha1", 0, None, None, b"key1", NOW, NOW + dt.timedelta(hours=8),
                              NOW + dt.timedelta(hours=4), b"good6")
    assert await table.put_many([good, other]) == 2
    await a.change_status(revoke(i.id, 5))
    assert await table.put_many([good]) == 0  # signed before the revocation: refused
    assert (await table.get(i.id, 5, "sha1")).signed == b"good"
    # The stored answer for 5 no longer matches its certificate; 6 is signed by an old key.
    assert await table.mark_stale(i.id, b"key2") == 2
    due = await table.due(NOW, [i.id], ["sha1"], 10)
    assert {(d.serial, d.status) for d in due} == {(5, int(Status.REVOKED)), (6, 0)}
    assert await table.coverage(["sha1", "sha256"], NOW) == (2, 4, 2)
    missing = await table.missing(i.id, "sha256", -1, 10)
    assert [m.serial for m in missing] == [5, 6]


# The whole service on PostgreSQL, through the CLI and a served node


def test_init_serve_and_revoke_on_postgresql(shared_demo, pg_server, tmp_path):
    """`pkirepo init` makes the schema (and refuses a second time), certificates go in, a
    server runs on the database, and a revocation made by another process (the CLI) is
    answered by OCSP over HTTP (checked by openssl) and appears in the next CRL."""
    from repo_testlib import Server

    url = pg_server.create_database(f"pg_{next(_names)}")
    node = tmp_path / "node"
    demo = pg_node(shared_demo, node, url)
    assert "created an empty store at postgresql://postgres@" in demo.cli("init").stdout
    again = demo.cli("init", check=False)
    assert again.returncode == 2 and "a store is already there" in again.stderr
    assert not (node / "node.sqlite").exists()
    demo.cli("cert", "add", str(node / "pki" / "good.pem"))
    demo.cli("publish")
    good = node / "pki" / "good.pem"
    serial = subprocess.run(["openssl", "x509", "-in", str(good), "-noout", "-serial"], capture_output=True,
                            text=True, check=True).stdout.strip().split("=")[1]

    def ocsp() -> str:
        r = subprocess.run(["openssl", "ocsp", "-issuer", str(node / "pki" / "ca.pem"), "-cert", str(good),
                            "-url", f"{demo.base_url}/ocsp", "-CAfile", str(node / "pki" / "root.pem")],
                           capture_output=True, text=True, timeout=30)
        assert "Response verify OK" in r.stderr + r.stdout, r.stderr
        return r.stdout

    server = Server(demo)
    try:
        assert f"{good}: good" in ocsp()
        demo.cli("revoke", "--issuer", "eCertCA2-17", "--serial", serial, "--reason", "keyCompromise")
        # Another process's change reaches the server by LISTEN/NOTIFY: within a second, not
        # before the CLI returns.
        deadline = time.monotonic() + 10
        while f"{good}: revoked" not in ocsp():
            assert time.monotonic() < deadline, "the revocation never reached the server"
            time.sleep(0.05)  # poll interval, not a timing assumption
        assert "Reason: keyCompromise" in ocsp()
    finally:
        server.stop()
    demo.cli("publish")
    crl = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(node / "pub" / "crl" / "eCertCA2-17CRL1.crl"),
                          "-noout", "-text"], capture_output=True, text=True, check=True).stdout
    assert f"Serial Number: {serial}" in crl and "Key Compromise" in crl
    assert "store: postgresql://postgres@" in demo.cli("check").stdout


async def test_check_finds_a_crl_view_out_of_step(nodes, pg_server, db_url):
    a, _ = nodes
    i = await a.put_issuer("CA", b"cert", b"subject", b"kid")
    await a.add_certificates([cert(i.id, 1), cert(i.id, 2)], at=NOW)
    await a.change_status(revoke(i.id, 1))
    assert await a.check() == []
    pg_server.psql("DELETE FROM revoked", db_url.rsplit("/", 1)[1])
    assert await a.check() == ["1 revoked or held certificate(s) have no CRL entry"]


async def test_a_lost_connection_is_unavailable_then_recovers(nodes, pg_server, db_url):
    a, _ = nodes
    await a.put_issuer("CA", b"cert", b"subject", b"kid")
    name = db_url.rsplit("/", 1)[1]
    # The server ends every session of the database, as a restart or failover would.
    pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                   " AND pid <> pg_backend_pid()")
    outcomes = []
    for _ in range(3):  # bounded: the pool replaces a dead connection on the next acquire
        try:
            outcomes.append(len(await a.issuers()))
        except Unavailable as e:
            outcomes.append(str(e))
    assert outcomes[-1] == 1
    assert all(o == 1 or "store unavailable" in o for o in outcomes)


# The same operations give the same results on both backends

_OPS = st.lists(st.tuples(st.sampled_from(["add", "revoke", "hold", "release", "add-revoked"]),
                          st.sampled_from([1, 2, 255, 256, 2**64, 2**159 - 1]),
                          st.booleans()), max_size=12)


async def _apply(store, name: str, ops) -> list:
    i = await store.put_issuer(name, b"cert", b"subject", b"kid")
    seen = []
    for op, serial, is_ca in ops:
        try:
            if op.startswith("add"):
                extra = {}
                if op == "add-revoked":
                    extra = dict(status=Status.REVOKED, reason=Reason.superseded, revoked_at=NOW,
                                 entry=encode_entry(serial, NOW, Reason.superseded))
                seen.append(await store.add_certificates([cert(i.id, serial, is_ca=is_ca, **extra)], at=NOW))
            else:
                action = Action(op)
                reason = {Action.REVOKE: Reason.keyCompromise, Action.HOLD: Reason.certificateHold}.get(action)
                entry = None if action is Action.RELEASE else encode_entry(serial, NOW, reason)
                rec = await store.change_status(StatusChange(i.id, serial, action, reason, NOW, None, entry))
                seen.append((rec.status, rec.reason, rec.revoked_at))
        except (Conflict, NotFound) as e:
            seen.append((type(e).__name__, e.message, e.detail))
    certs = [(c.serial, c.status, c.reason, c.is_ca, c.revoked_at) for c in await store.certificates(i.id)]
    snaps = []
    for kind, dp in ((ScopeKind.FULL, ""), (ScopeKind.PARTITION, "http://x/crl/P1.crl"), (ScopeKind.ARL, "")):
        scope = await store.ensure_scope(i.id, kind, dp, f"{name}-{kind.value}")
        snap = await store.snapshot_entries(scope)
        snaps.append((snap.entries, snap.count))
    events = [(e.kind, e.detail) for e in await store.events_since(0, limit=10_000) if e.issuer_id == i.id]
    return [seen, certs, snaps, events]


@settings(max_examples=25, deadline=None)
@given(ops=_OPS)
def test_both_backends_agree(ops, pg_server, tmp_path_factory):
    """A differential test: any sequence of additions and status changes leaves the same
    outcomes, certificates, CRL entries and change log in SQLite and in PostgreSQL."""
    from publisher.sqlite_store import SQLiteStore

    name = f"CA{next(_names)}"
    url = _shared_db.get("url") or _shared_db.setdefault("url", pg_server.create_database("differential"))

    async def run():
        async with SQLiteStore(tmp_path_factory.mktemp("diff") / "r.sqlite") as s, \
                PgStore(url, password=PASSWORD, max_size=2) as p:
            return await _apply(s, name, ops), await _apply(p, name, ops)

    lite, pg = asyncio.run(run())
    assert lite == pg


_shared_db: dict[str, str] = {}
