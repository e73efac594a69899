"""`pkirepo store copy` between SQLite and a real PostgreSQL server (the `pg_server`
fixture): a round trip gives back every row, a node serves from the copy, the refusals name
what is at fault, and a copy cut short is refused by every opener."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pg_testlib import PASSWORD, pg_node
from repo_testlib import Server, free_port, run_cli

from publisher.copy_plan import TABLES
from publisher.crl import Reason, ScopeKind, encode_entry
from publisher.errors import ConfigError, Conflict, NotFound, RepoError, StoreIncomplete
from publisher.notices import NewNotice, NoticeKind
from publisher.sqlite_store import SQLiteStore
from publisher.store import Action, NewCert, Status, StatusChange
from publisher.store_copy import copy_store, endpoint

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
_names = itertools.count(1)


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table the copy knows, in key order."""
    with sqlite3.connect(path) as conn:
        return {t.name: conn.execute(f'SELECT * FROM "{t.name}" ORDER BY {", ".join(t.order)}').fetchall()
                for t in TABLES}


def snapshot_of(src: Path, dst: Path) -> Path:
    """A consistent copy of a store file that another test's server may be using."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


@pytest.fixture
def pw_file(tmp_path) -> Path:
    f = tmp_path / "db-password"
    f.write_text(PASSWORD + "\n")
    return f


def copy(source, target, **kw):
    """copy_store in this process, at the tests' fixed time."""
    return copy_store(source, target, now=NOW, **kw)


def store_copy(src: str, dst: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli("store", "copy", "--from", src, "--to", dst, *extra, check=check, timeout=120)


# A demo repository there and back


def test_round_trip_through_postgresql_and_a_node_serving_the_copy(shared_demo, pg_server, tmp_path, pw_file):
    src = snapshot_of(shared_demo.dir / "pkirepo.sqlite", tmp_path / "src.sqlite")
    url = pg_server.create_database(f"copy_{next(_names)}")
    there = store_copy(str(src), url, "--to-password-file", str(pw_file))
    assert "store copy: certificates: " in there.stderr and "rows/s" in there.stderr
    assert "verified: rows per table equal" in there.stdout and "byte-identical" in there.stdout
    back = run_cli("store", "copy", "--from", url, "--to", str(tmp_path / "back.sqlite"),
                   "--from-password-env", "PKIREPO_TEST_PW", env={"PKIREPO_TEST_PW": PASSWORD}, timeout=120)
    assert "verified: rows per table equal" in back.stdout
    before, after = dump(src), dump(tmp_path / "back.sqlite")
    assert before["certificates"] and before["crls"] and before["events"]
    assert after == before

    # A node on the copy: OCSP answers (openssl checks the signature) and the CRLs served
    # are the bytes the source had published.
    node = tmp_path / "node"
    demo = pg_node(shared_demo, node, url)
    server = Server(demo)
    try:
        good = node / "pki" / "good.pem"
        r = subprocess.run(["openssl", "ocsp", "-issuer", str(node / "pki" / "ca.pem"), "-cert", str(good),
                            "-url", f"{demo.base_url}/ocsp", "-CAfile", str(node / "pki" / "root.pem")],
                           capture_output=True, text=True, timeout=30)
        assert "Response verify OK" in r.stderr + r.stdout and f"{good}: good" in r.stdout, r.stderr
        with sqlite3.connect(src) as conn:
            latest = conn.execute("SELECT s.name, c.der FROM scopes s JOIN crls c ON c.scope_id = s.id"
                                  " WHERE c.number = (SELECT max(number) FROM crls WHERE scope_id = s.id)").fetchall()
        assert latest
        for name, der in latest:
            with urllib.request.urlopen(f"{demo.base_url}/crl/{name}.crl", timeout=10) as resp:
                assert resp.read() == der, name
    finally:
        server.stop()


# Refusals: exit 2, naming the option and the file or URL


def test_refusals_name_what_is_at_fault(shared_demo, pg_server, tmp_path, pw_file):
    src = snapshot_of(shared_demo.dir / "pkirepo.sqlite", tmp_path / "src.sqlite")
    url = pg_server.create_database(f"copy_{next(_names)}")
    store_copy(str(src), url, "--to-password-file", str(pw_file))
    pw = dict(password_file=str(pw_file))
    cases = [
        # a destination that holds a repository
        (("--from", str(src)), ("--to", url, pw), f"--to {url}: not empty"),
        (("--from", url, pw), ("--to", str(src)), f"--to {src}: not empty"),
        # a server nobody listens on, a database that does not exist, a refused login
        (("--from", str(src)), ("--to", f"postgresql://postgres@127.0.0.1:{free_port()}/x", pw), "cannot open"),
        (("--from", str(src)), ("--to", pg_server.url("no_such_db"), pw), f"--to {pg_server.url('no_such_db')}: "),
        (("--from", str(src)), ("--to", pg_server.url("postgres"), dict(password_env="HOME")),
         "password authentication failed"),
        # a missing source file, a missing password file, the source itself, no such directory
        (("--from", str(tmp_path / "missing.sqlite")), ("--to", str(tmp_path / "x.sqlite")),
         f"--from {tmp_path / 'missing.sqlite'}: no such file"),
        (("--from", str(src)), ("--to", url, dict(password_file=str(tmp_path / "nopw"))),
         f"--to-password-file: cannot read {tmp_path / 'nopw'}"),
        (("--from", str(src)), ("--to", str(src)), "that is the source itself"),
        (("--from", str(src)), ("--to", str(tmp_path / "no" / "dir" / "z.sqlite")),
         f"no directory {tmp_path / 'no' / 'dir'}"),
    ]

    async def refused(a, b) -> str:
        try:
            await copy(endpoint(*a[:2], **(a[2] if len(a) > 2 else {})),
                             endpoint(*b[:2], **(b[2] if len(b) > 2 else {})))
        except RepoError as e:
            assert e.cli_exit == 2, e.message
            return e.message
        raise AssertionError(f"copied {a} to {b}")

    for a, b, message in cases:
        assert message in asyncio.run(refused(a, b)), (a, b, message)
    for bad in ((url.replace("postgres@", "postgres:secret@"), {}, "--to: the URL must not hold the password"),
                (str(tmp_path / "y.sqlite"), pw, "--to-password-file: only applies to a postgresql:// URL"),
                ("mysql://h/db", {}, "--to mysql://h/db: not a SQLite file or a postgresql:// URL")):
        with pytest.raises(ConfigError, match=bad[2]):
            endpoint("--to", bad[0], **bad[1])
    # The command line: exit 2, one line naming the thing, no traceback, no password.
    for args, message in (((str(src), url, "--to-password-file", str(pw_file)), f"--to {url}: not empty"),
                          ((str(src), url.replace("postgres@", "postgres:secret@")), "must not hold the password")):
        r = store_copy(*args, check=False)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and "secret" not in r.stderr


class _Cut(Exception):
    """The copy stopped half-way (a crash, a lost connection, Ctrl-C)."""


def _cut_after(table: str):
    def progress(line: str) -> None:
        if line.startswith(f"store copy: {table}: "):
            raise _Cut(line)
    return progress


def test_a_copy_cut_short_is_refused_everywhere(shared_demo, pg_server, tmp_path, pw_file):
    src = snapshot_of(shared_demo.dir / "pkirepo.sqlite", tmp_path / "src.sqlite")
    url = pg_server.create_database(f"copy_{next(_names)}")
    half_sqlite = tmp_path / "half.sqlite"

    async def cut_both_ways():
        with pytest.raises(_Cut):
            await copy(endpoint("--from", str(src)), endpoint("--to", url, password_file=str(pw_file)),
                             progress=_cut_after("certificates"), interval=0.0)
        whole = pg_server.create_database(f"copy_{next(_names)}")
        await copy(endpoint("--from", str(src)), endpoint("--to", whole, password_file=str(pw_file)))
        with pytest.raises(_Cut):
            await copy(endpoint("--from", whole, password_file=str(pw_file)), endpoint("--to", str(half_sqlite)),
                             progress=_cut_after("revoked"), interval=0.0)
        with pytest.raises(StoreIncomplete):
            await SQLiteStore(half_sqlite, create=False).open()

    asyncio.run(cut_both_ways())
    pw = dict(password_file=str(pw_file))
    for a, b in ((("--from", url, pw), ("--to", str(tmp_path / "again.sqlite"))),
                 (("--from", str(src)), ("--to", str(half_sqlite)))):
        with pytest.raises(StoreIncomplete, match="did not finish .* copy again"):
            asyncio.run(copy(endpoint(*a[:2], **(a[2] if len(a) > 2 else {})), endpoint(*b)))
    for args in ((str(src), url, "--to-password-file", str(pw_file)), (str(half_sqlite), str(tmp_path / "a2.sqlite"))):
        r = store_copy(*args, check=False)
        assert r.returncode == 2 and "did not finish" in r.stderr and "copy again" in r.stderr, (args, r.stderr)
    # A node configured on the half-copied database refuses to start, naming it.
    cfg = tmp_path / "pkirepo.toml"
    cfg.write_text(shared_demo.config.read_text().replace(
        'path = "pkirepo.sqlite"', f'path = "node.sqlite"\nurl = "{url}"\npassword_file = "{pw_file}"', 1)
        .replace('"pki/', f'"{shared_demo.pki}/'))
    for command in (("serve", "--http", f"127.0.0.1:{free_port()}", "--ldap", ""),):
        r = run_cli("--config", str(cfg), *command, check=False, timeout=60)
        assert r.returncode == 2 and f"{url.split('//')[0]}//postgres@" in r.stderr and "did not finish" in r.stderr, \
            (command, r.stderr)


# Random store contents survive the round trip


_OPS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["add", "add-ca", "add-revoked", "revoke", "hold", "release"]),
              st.sampled_from([1, 2, 255, 256, 2**64, 2**159 - 1])),
    st.tuples(st.sampled_from(["crl"]), st.sampled_from([ScopeKind.FULL, ScopeKind.PARTITION, ScopeKind.ARL])),
    st.tuples(st.sampled_from(["document", "notice", "withdraw", "window", "heartbeat"]), st.integers(1, 3)),
), max_size=14)


async def _fill(store: SQLiteStore, ops) -> None:
    i = await store.put_issuer("CA", b"cert", b"subject", b"kid")
    at = NOW
    for op, arg in ops:
        at += dt.timedelta(minutes=1)
        try:
            if op.startswith("add"):
                extra = {}
                if op == "add-revoked":
                    extra = dict(status=Status.REVOKED, reason=Reason.superseded, revoked_at=at,
                                 entry=encode_entry(arg, at, Reason.superseded))
                await store.add_certificates([NewCert(
                    issuer_id=i.id, serial=arg, der=b"d%d" % arg, subject=f"CN={arg}", not_before=NOW,
                    not_after=NOW + dt.timedelta(days=300), dp_url="http://x/crl/P1.crl", is_ca=op == "add-ca",
                    **extra)], at=at)
            elif op in ("revoke", "hold", "release"):
                action = Action(op)
                reason = {Action.REVOKE: Reason.keyCompromise, Action.HOLD: Reason.certificateHold}.get(action)
                entry = None if action is Action.RELEASE else encode_entry(arg, at, reason)
                await store.change_status(StatusChange(i.id, arg, action, reason, at, None, entry))
            elif op == "crl":
                dp = "http://x/crl/P1.crl" if arg is ScopeKind.PARTITION else ""
                scope = await store.ensure_scope(i.id, arg, dp, f"CA-{arg.value}")
                snap = await store.snapshot_entries(scope)
                number = await store.reserve_crl_number(scope)
                await store.record_crl(scope, number, at, at + dt.timedelta(days=1), b"crl" + snap.entries,
                                       entries=snap.count, covered_event=await store.change_token(), issued_at=at)
            elif op == "document":
                await store.add_document("cps", f"1.{arg}", "en", effective=dt.date(2026, 1, arg), oid=None,
                                         media_type="application/pdf", ext="pdf", data=b"%PDF-" + bytes([arg]) * 99,
                                         at=at)
            elif op == "notice":
                await store.add_notice(NewNotice(NoticeKind.INCIDENT, {"zh-Hant": "事件", "en": f"incident {arg}"},
                                                 {"zh-Hant": "內容", "en": "body"}, at, None), at=at)
            elif op == "withdraw":
                await store.withdraw_notice(arg, at=at)
            elif op == "window":
                await store.schedule_maintenance(at + dt.timedelta(days=arg), at + dt.timedelta(days=arg, hours=1),
                                                 f"upgrade {arg}", at=at, budget=dt.timedelta(days=7))
            elif op == "heartbeat":
                hb, _ = await store.start_heartbeat(at=at, alive_within=dt.timedelta(seconds=5))
                await store.beat(hb, at=at + dt.timedelta(seconds=arg), stopped=arg == 2)
        except (Conflict, NotFound):
            pass


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_random_contents_survive_the_round_trip(ops, pg_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("rt")
    url = pg_server.create_database(f"copy_{next(_names)}")
    pw = d / "pw"
    pw.write_text(PASSWORD)

    async def run():
        async with SQLiteStore(d / "a.sqlite") as s:
            await _fill(s, ops)
        await copy(endpoint("--from", str(d / "a.sqlite")), endpoint("--to", url, password_file=str(pw)))
        await copy(endpoint("--from", url, password_file=str(pw)), endpoint("--to", str(d / "b.sqlite")))

    asyncio.run(run())
    assert dump(d / "b.sqlite") == dump(d / "a.sqlite")


# The command line's two values, parsed


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), user=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
       password=st.text(st.characters(blacklist_characters="@/:?&#", blacklist_categories=("Cs",)), min_size=1,
                        max_size=12),
       file=st.none() | st.just("pw"), env=st.none() | st.just("PW"))
def test_endpoints_parse_or_are_refused_naming_the_option(text, user, password, file, env):
    for value in (text, f"postgresql://{user}:{password}@db/x", f"postgresql://{user}@db/x?password={password}"):
        try:
            ep = endpoint("--to", value, password_file=file, password_env=env)
        except ConfigError as e:
            assert e.message.startswith("--to") and e.cli_exit == 2
            if value != text:  # refused for the password, and the URL holding it never shown
                assert "must not hold the password" in e.message and value not in e.message
            continue
        assert value == text, "a URL holding a password was accepted"
        assert (ep.url is None) == (ep.path is not None)
        if ep.url is None:
            assert file is None and env is None and str(ep.path) == str(Path(text))


def test_differences_name_every_mismatch():
    from publisher.copy_plan import LatestCrl, Summary, differences
    a = Summary({"certificates": 3, "events": 5}, (LatestCrl("CRL1", b"\x01\x02", "aa"), LatestCrl("ARL", b"\x01\x01", "bb")), 5)
    assert differences(a, a) == []
    b = Summary({"certificates": 2, "events": 5}, (LatestCrl("CRL1", b"\x01\x03", "aa"), LatestCrl("X", b"\x01\x01", "cc")), 4)
    assert differences(a, b) == [
        "table certificates: 3 row(s) in the source, 2 in the destination",
        "scope CRL1: latest CRL number differs",
        "scope ARL: no CRL in the destination",
        "scope X: a CRL in the destination only",
        "change log: at event 5 in the source, 4 in the destination",
    ]
    c = Summary(a.counts, (LatestCrl("CRL1", b"\x01\x02", "zz"), a.latest[1]), 5)
    assert differences(a, c) == ["scope CRL1: latest CRL bytes differ"]


def test_presigned_answers_go_along_unless_left_out(tmp_path):
    from publisher.store_copy import summary_lines

    async def run():
        async with SQLiteStore(tmp_path / "a.sqlite") as s:
            i = await s.put_issuer("CA", b"cert", b"subject", b"kid")
            await s.add_certificates([NewCert(issuer_id=i.id, serial=7, der=b"d", subject="CN=7", not_before=NOW,
                                              not_after=NOW, dp_url=None, is_ca=False)], at=NOW)
        with sqlite3.connect(tmp_path / "a.sqlite") as conn:
            conn.execute("INSERT INTO ocsp_responses VALUES (1, x'0107', 'sha1', 0, NULL, NULL, x'00', 1, 2, 3, x'30')")
        whole = await copy(endpoint("--from", str(tmp_path / "a.sqlite")), endpoint("--to", str(tmp_path / "b.sqlite")))
        lean = await copy(endpoint("--from", str(tmp_path / "a.sqlite")), endpoint("--to", str(tmp_path / "c.sqlite")),
                                presigned=False)
        return whole, lean

    whole, lean = asyncio.run(run())
    assert dump(tmp_path / "b.sqlite") == dump(tmp_path / "a.sqlite")
    assert dump(tmp_path / "c.sqlite")["ocsp_responses"] == [] and dump(tmp_path / "c.sqlite")["certificates"]
    assert any(line.strip().startswith("ocsp_responses") and "not copied" in line for line in summary_lines(lean))
    assert any(line.strip().startswith("ocsp_responses") and " 1 rows" in line for line in summary_lines(whole))


def test_the_copy_is_one_snapshot_of_a_source_written_meanwhile(pg_server, tmp_path):
    """A node goes on writing to the source during the copy: the copy is the source as it
    was when the copy began, whole and verified, without the later rows."""
    url = pg_server.create_database(f"copy_{next(_names)}")
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    name = url.rsplit("/", 1)[1]

    async def fill():
        async with SQLiteStore(tmp_path / "a.sqlite") as s:
            await _fill(s, [("add", 1), ("add", 2), ("revoke", 1), ("notice", 1)])
        await copy(endpoint("--from", str(tmp_path / "a.sqlite")), endpoint("--to", url, password_file=str(pw)))

    asyncio.run(fill())
    before = dump(tmp_path / "a.sqlite")

    def write_sqlite(line: str) -> None:
        if line.startswith("store copy: meta: "):
            with sqlite3.connect(tmp_path / "a.sqlite") as conn:
                conn.execute("INSERT INTO events (at, kind, detail) VALUES (1, 'test', 'meanwhile')")
                conn.execute("UPDATE certificates SET subject = 'CN=changed' WHERE id = 1")

    def write_pg(line: str) -> None:
        if line.startswith("store copy: meta: "):
            pg_server.psql("INSERT INTO events (at, kind, detail) VALUES (1, 'test', 'meanwhile');"
                           " UPDATE certificates SET subject = 'CN=changed' WHERE id = 1", name)

    asyncio.run(copy(endpoint("--from", str(tmp_path / "a.sqlite")), endpoint("--to", str(tmp_path / "b.sqlite")),
                     progress=write_sqlite, interval=0.0))
    asyncio.run(copy(endpoint("--from", url, password_file=str(pw)), endpoint("--to", str(tmp_path / "c.sqlite")),
                     progress=write_pg, interval=0.0))
    assert dump(tmp_path / "b.sqlite") == before == dump(tmp_path / "c.sqlite")
    assert dump(tmp_path / "a.sqlite") != before  # the writes did happen, after the snapshot
