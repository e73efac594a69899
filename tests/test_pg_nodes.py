"""Several `pkirepo serve` nodes on one PostgreSQL database, each a real subprocess with its
own ports and publication directory: a change made through one node's CLI is served by the
other at once (notifications), one node publishes at a time and another takes over when it
dies at any step of a publication, the nodes keep serving reads while the database is down,
and the CLI refuses a database it cannot use with a message naming the setting.

Waits are on conditions with a deadline; the figures measured (cross-node visibility,
takeover) are printed, and asserted only against generous bounds."""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import itertools
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import ldap3
import pytest
from cryptography import x509
from crl_testlib import wait_until, wait_until_async
from pg_testlib import PASSWORD, PgServer, pg_node
from repo_testlib import Demo, Server

from publisher import faults
from publisher.probe import check_ocsp, ldap_crls as ldap_crl_values

UTC = dt.timezone.utc
CA = "eCertCA2-17"
FULL = "eCertCA2-17CRL1"
LEADER_TIMEOUT = 2
_names = itertools.count(1)


# Nodes


def node_demo(shared_demo, directory: Path, url: str, *, extra: str = "", like: Path | None = None) -> Demo:
    """A node of its own: the demo's PKI, its own store.path place and publication
    directory, the shared database, its own ports. `like`: a node directory whose
    publication (files and watermark) this one starts with, as a node set up from a
    backup of another would."""
    if like is not None:
        directory.mkdir(parents=True)
        shutil.copytree(like / "pub", directory / "pub")
        shutil.copy(like / "node.sqlite.published", directory / "node.sqlite.published")
    return pg_node(shared_demo, directory, url, extra=f"leader_timeout = {LEADER_TIMEOUT}\n{extra}")


def serial_of(demo: Demo, name: str) -> int:
    return x509.load_pem_x509_certificate((demo.pki / name).read_bytes()).serial_number


def seed(shared_demo, server: PgServer, root: Path) -> tuple[str, Path]:
    """A database holding the demo's CA, three subscribers and the first CRLs; returns its
    name and the directory of the node that published them."""
    name = f"nodes_seed_{next(_names)}"
    url = server.create_database(name)
    seeder = node_demo(shared_demo, root / name, url)
    # What `pkirepo init`, `cert add` and `publish` do (test_pg_store.py runs those commands),
    # in this process: each command's start-up alone takes seconds on a loaded machine.
    from publisher.clock import SystemClock
    from publisher.root import load_settings, open_backend
    from publisher.service import Repository, load_signers

    async def run() -> None:
        settings = load_settings(seeder.config)
        backend = await open_backend(settings, create=True)
        try:
            repo = Repository(settings, store=backend.store, signers=load_signers(settings), clock=SystemClock())
            await repo.sync_issuers()
            await repo.add_certificates([((seeder.pki / f).read_bytes(), f)
                                         for f in ("good.pem", "held.pem", "revoked.pem")])
            await repo.issue_due()
        finally:
            await backend.close()

    asyncio.run(run())
    return name, seeder.dir


@pytest.fixture(scope="module")
def seeded(shared_demo, pg_server, tmp_path_factory):
    return seed(shared_demo, pg_server, tmp_path_factory.mktemp("seed"))


@pytest.fixture
def database(pg_server, seeded):
    """A fresh copy of the seeded database (a template copy: no CLI run per test)."""
    name = f"nodes_{next(_names)}"
    pg_server.psql(f'CREATE DATABASE "{name}" TEMPLATE "{seeded[0]}"')
    return pg_server.url(name)


@pytest.fixture
def nodes(shared_demo, tmp_path):
    started: list[Server] = []

    def start(name: str, url: str, env: dict | None = None, like: Path | None = None,
              audit_checkpoints: bool = True) -> Server:
        demo = node_demo(shared_demo, tmp_path / name, url, like=like)
        if not audit_checkpoints:
            demo.config.write_text(re.sub(r"(?m)^checkpoint_key = .*$", "", demo.config.read_text()))
        s = Server(demo, env=env)
        started.append(s)
        return s

    def pair(url: str, env: dict | None = None, like: Path | None = None,
             audit_checkpoints: bool = True) -> tuple[Server, Server]:
        """Node A, which publishes, and node B, started as soon as A holds the lock (while A
        finishes starting: two start-ups in a row would double the wait)."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(start, "a", url, env, like, audit_checkpoints)
            log = tmp_path / "a" / "server.log"
            until(lambda: first.done() or (log.exists() and "now publishes" in log.read_text()), 30,
                  "node A publishes")
            b = start("b", url, audit_checkpoints=audit_checkpoints)
            a = first.result()
        return a, b

    start.pair = pair
    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()


def get(url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data,
                                 headers={"Content-Type": "application/ocsp-request"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def readyz(node: Server) -> tuple[int, dict]:
    status, body = get(f"{node.url}/readyz")
    return status, json.loads(body)


def publishing(node: Server) -> bool:
    return readyz(node)[1]["components"]["publisher"]["publishing"]


def until(condition, timeout: float, what: str):
    """Poll `condition` finely (the visibility figures are read from it) for `timeout` seconds."""
    return wait_until(condition, timeout=timeout, what=what, poll=0.02)


def ocsp_status(node: Server, serial: int) -> str:
    ca = x509.load_pem_x509_certificate((node.demo.pki / "ca.pem").read_bytes())
    result = check_ocsp(node.url, CA, ca, serial, now=dt.datetime.now(UTC), timeout=10)
    return result.text


def ldap_entry_present(node: Server, dn: str) -> bool:
    server = ldap3.Server("127.0.0.1", port=node.demo.ldap_port, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(server, auto_bind=True, receive_timeout=5, read_only=True)
    try:
        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["uid"])
        return conn.result["result"] == 0 and len(conn.entries) == 1
    finally:
        conn.unbind()


def ldap_crls(node: Server) -> set[bytes]:
    """Every CRL and ARL value the node's directory serves."""
    return ldap_crl_values(f"ldap://127.0.0.1:{node.demo.ldap_port}", 5)


def served_crl(node: Server, name: str = FULL) -> tuple[int, bytes]:
    status, der = get(f"{node.url}/crl/{name}.crl")
    assert status == 200, (status, der[:200])
    number = x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number, der


def lists(der: bytes, serial: int) -> bool:
    return x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(serial) is not None


def archive_numbers(node: Server, name: str) -> list[int]:
    status, body = get(f"{node.url}/crl/archive/{name}/")
    assert status == 200, body
    return [c["crl_number"] for c in json.loads(body)["crls"]]


def issued_numbers(node: Server) -> list[tuple[str, int]]:
    """(scope, number) of every CRL this node's log says it issued."""
    return [(m[0], int(m[1])) for m in re.findall(r"issued (\S+) #(\d+) ", node.log())]


def revoke(node: Server, name: str) -> float:
    """Revoke through the node's CLI; returns when the command ended (it commits before)."""
    node.demo.cli("revoke", "--issuer", CA, "--serial", f"{serial_of(node.demo, name):X}", "--reason",
                  "keyCompromise")
    return time.monotonic()


def revoke_in_process(node: Server, name: str) -> None:
    """The same revocation as the CLI's, from this process (the CLI's start-up alone takes
    seconds on a loaded machine, and the crash cases need several)."""
    from publisher.clock import SystemClock
    from publisher.crl import Reason
    from publisher.root import load_settings, open_backend
    from publisher.service import Repository
    from publisher.store import Action

    async def run() -> None:
        settings = load_settings(node.demo.config)
        backend = await open_backend(settings)
        try:
            repo = Repository(settings, store=backend.store, signers={}, clock=SystemClock())
            await repo.sync_issuers()
            await repo.change_status(CA, serial_of(node.demo, name), Action.REVOKE, reason=Reason.keyCompromise)
        finally:
            await backend.close()

    asyncio.run(run())


def scopes(node: Server) -> list[str]:
    status, body = get(f"{node.url}/crl/")
    assert status == 200, body
    return [c["name"] for c in json.loads(body)["crls"]]


def ldap_dn(node: Server, name: str) -> str:
    """The DN of a subscriber's entry, found by its uid (the serial in hex)."""
    server = ldap3.Server("127.0.0.1", port=node.demo.ldap_port, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(server, auto_bind=True, receive_timeout=5, read_only=True)
    try:
        conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["namingContexts"])
        base = conn.response[0]["attributes"]["namingContexts"][0]
        conn.search(base, f"(uid={serial_of(node.demo, name):X})", search_scope=ldap3.SUBTREE, attributes=["uid"])
        (entry,) = [e for e in conn.response if e.get("type") == "searchResEntry"]
        return entry["dn"]
    finally:
        conn.unbind()


# Two nodes


def test_a_revocation_on_one_node_is_served_by_the_other_within_a_second(nodes, database):
    a, b = nodes.pair(database)
    assert publishing(a) and not publishing(b), "two nodes publish at once"
    # B pre-signs nothing: it says who does, and reports no coverage figures of its own that
    # would stand, zeros, for A's in a shared dashboard.
    until(lambda: get(f"{b.url}/healthz/ocsp") == (200, b"ready\npre-signing: done by the worker or node that runs "
                                                       b"the background work; this one answers from the answers "
                                                       b"it stores\n"), 10, "B says who pre-signs")
    figures = readyz(b)[1]["components"]["ocsp:presigned"]
    assert "presigned_answers" not in json.dumps(figures), figures
    assert "by the worker or node that runs the background work" in json.dumps(figures), figures
    until(lambda: "presigned_answers" in json.dumps(readyz(a)[1]["components"]["ocsp:presigned"]), 30,
          "A reports its pre-signing coverage")
    good = serial_of(a.demo, "good.pem")
    dn = ldap_dn(a, "good.pem")
    # B has answered about it (cached) and serves its entry, before the change.
    assert ocsp_status(b, good).startswith("good")
    assert ldap_entry_present(b, dn)
    before, _ = served_crl(b)

    committed = revoke(a, "good.pem")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ocsp_seen = pool.submit(until, lambda: ocsp_status(b, good).startswith("revoked") and time.monotonic(),
                                5, "B's OCSP answers revoked")
        ldap_seen = pool.submit(until, lambda: not ldap_entry_present(b, dn) and time.monotonic(), 5,
                                "B's directory drops the revoked certificate's entry")
        ocsp_s, ldap_s = ocsp_seen.result() - committed, ldap_seen.result() - committed
    print(f"\ncross-node visibility after the CLI returned: OCSP {ocsp_s * 1000:.0f} ms, LDAP {ldap_s * 1000:.0f} ms")
    assert ocsp_s < 1.0 and ldap_s < 1.0

    # The supplementary CRL: issued by A alone; both nodes serve it, byte for byte, over
    # HTTP, LDAP and from their own publication directories.
    def same_new_crl():
        (na, da), (nb, db) = served_crl(a), served_crl(b)
        return na > before and na == nb and da == db and lists(da, good) and da
    der = until(same_new_crl, 10, "both nodes serve the supplementary CRL")
    until(lambda: der in ldap_crls(b) and der in ldap_crls(a), 5, "both directories serve it")
    for node in (a, b):
        assert until(lambda: (node.demo.dir / "pub" / "crl" / f"{FULL}.crl").read_bytes() == der, 5,
                     f"{node.demo.dir.name}'s publication directory holds it")
    issued_a, issued_b = issued_numbers(a), issued_numbers(b)
    assert issued_b == [] and issued_a, (issued_a, issued_b)
    assert len(set(issued_a)) == len(issued_a)
    numbers = archive_numbers(b, FULL)
    assert len(numbers) == len(set(numbers)) and max(numbers) == served_crl(b)[0]


# One node with workers


def test_a_node_with_two_workers_on_postgresql_follows_a_change_in_every_worker(shared_demo, database, tmp_path):
    """`serve --workers 2` on the shared database: one worker publishes, a revocation made by
    another process is answered by whichever worker a connection lands on, and its CRL is
    issued once."""
    node = Server(node_demo(shared_demo, tmp_path / "w", database), "--workers", "2")
    try:
        until(lambda: readyz(node)[0] == 200 and publishing(node), 30, "the node is ready and publishes")
        good = serial_of(node.demo, "good.pem")
        before, _ = served_crl(node)
        revoke_in_process(node, "good.pem")
        # urllib opens a connection per request: the kernel spreads them over both workers'
        # sockets, so ten answers in a row in agreement come from both.
        until(lambda: all(ocsp_status(node, good).startswith("revoked") for _ in range(10)), 10,
              "every worker's OCSP answers revoked")
        until(lambda: (c := served_crl(node))[0] > before and lists(c[1], good), 10,
              "the node serves a CRL listing the revocation")
        issued = issued_numbers(node)
        assert issued and len(issued) == len(set(issued)), issued
        assert len(re.findall(r"worker \d+ started \(pid \d+\)", node.log())) == 2, node.log()
    finally:
        assert node.stop() == 0, node.log()


# Two nodes that both believe they publish


def test_two_publishers_at_once_never_issue_a_number_twice(shared_demo, database, tmp_path):
    """Fencing: the leadership lock aside (a partitioned node may still believe it leads),
    two repositories issuing every CRL at once get strictly increasing numbers, no
    duplicate, and each scope's newest CRL is the highest number."""
    from publisher.clock import SystemClock
    from publisher.errors import Conflict
    from publisher.root import load_settings, open_backend
    from publisher.service import Repository, load_signers

    demos = [node_demo(shared_demo, tmp_path / n, database) for n in ("a", "b")]

    async def run() -> tuple[list, list]:
        repos, backends = [], []
        for demo in demos:
            settings = load_settings(demo.config)
            backend = await open_backend(settings)
            backends.append(backend)
            repo = Repository(settings, store=backend.store, signers=load_signers(settings), clock=SystemClock())
            await repo.sync_issuers()
            repos.append(repo)
        try:
            outcomes = []
            for _ in range(3):
                outcomes += await asyncio.gather(*(r.issue_due(force=True) for r in repos), return_exceptions=True)
            crls = [(rec.scope.name, rec.number, rec.id) for rec, _ in await backends[0].store.archived_crls(limit=1000)]
            return outcomes, crls
        finally:
            for backend in backends:
                await backend.close()

    outcomes, crls = asyncio.run(run())
    for o in outcomes:
        # The loser of a race is refused by the store; nothing else goes wrong.
        assert isinstance(o, list) or (isinstance(o, Conflict) and "does not exceed" in o.message), o
    assert any(isinstance(o, list) and o for o in outcomes)
    print(f"\ntwo publishers at once: {sum(len(o) for o in outcomes if isinstance(o, list))} CRLs issued, "
          f"{sum(isinstance(o, Conflict) for o in outcomes)} rounds refused by the number check")
    by_scope: dict[str, list[tuple[int, int]]] = {}
    for name, number, crl_id in crls:
        by_scope.setdefault(name, []).append((crl_id, number))
    for name, issued in by_scope.items():
        numbers = [n for _, n in sorted(issued)]  # in the order they were recorded
        assert numbers == sorted(numbers) and len(numbers) == len(set(numbers)), (name, numbers)


# The publisher dies at each step of a publication


@pytest.mark.parametrize("point", faults.POINTS)
def test_another_node_takes_over_when_the_publisher_dies(nodes, database, seeded, point):
    # A starts with the publication as it stands, and signs no audit checkpoints (their file
    # is written at start and after each CRL), so that the first file it writes is one of
    # the CRLs it issues.
    a, b = nodes.pair(database, env={"PKIREPO_CRASH_AT": point}, like=seeded[1], audit_checkpoints=False)
    assert publishing(a) and not publishing(b)
    good, held = serial_of(a.demo, "good.pem"), serial_of(a.demo, "held.pem")
    before, _ = served_crl(b)

    revoke_in_process(a, "good.pem")  # A starts the supplementary CRLs and dies at `point`
    assert a.proc.wait(timeout=20) == -9
    died = time.monotonic()
    until(lambda: publishing(b), LEADER_TIMEOUT + 3, "node B takes over")
    print(f"\n{point}: node B publishes {(time.monotonic() - died) * 1000:.0f} ms after A died")
    # Whatever A left (a number reserved, a CRL signed, recorded or half written), B serves
    # a CRL that lists the committed revocation...
    first = until(lambda: (c := served_crl(b))[0] > before and lists(c[1], good) and c, 10,
                  "B serves a CRL listing the revocation")
    # ...and the next revocation goes into the next one, with a higher number.
    revoke_in_process(b, "held.pem")
    second = until(lambda: (c := served_crl(b))[0] > first[0] and lists(c[1], held) and c, 10,
                   "B serves the next CRL")
    assert lists(second[1], good)
    assert (b.demo.dir / "pub" / "crl" / f"{FULL}.crl").read_bytes() == second[1]
    for scope in scopes(b):
        numbers = sorted(archive_numbers(b, scope))
        assert len(numbers) == len(set(numbers)), (scope, numbers)
    # No number was issued twice, by either node.
    issued = issued_numbers(b) + [i for i in issued_numbers(a)]
    assert len(issued) == len(set(issued)), issued
    b.kill()  # its orderly shutdown is not what this test is about


# The database goes away for a while


@pytest.fixture
def own_pg_server():
    """A server of the test's own, which it stops and starts."""
    server = PgServer().start()
    yield server
    server.stop()


def test_nodes_serve_reads_while_the_database_is_down(shared_demo, own_pg_server, nodes, tmp_path):
    url = own_pg_server.url(seed(shared_demo, own_pg_server, tmp_path / "seed")[0])
    a, b = nodes.pair(url)
    good, held = serial_of(a.demo, "good.pem"), serial_of(a.demo, "held.pem")
    crl = {n: served_crl(n) for n in (a, b)}
    ldap = {n: ldap_crls(n) for n in (a, b)}
    for n in (a, b):
        assert ocsp_status(n, good).startswith("good")  # now in the node's memory
        assert readyz(n)[0] == 200

    own_pg_server.pause()
    try:
        for n in (a, b):
            status, report = until(lambda: (r := readyz(n))[0] == 503 and r, 10, "readiness reports the store down")
            assert not report["components"]["store"]["ready"], report
            assert served_crl(n) == crl[n]
            assert ldap_crls(n) == ldap[n]
            assert ocsp_status(n, good).startswith("good")
            # An answer the node does not hold needs the store: tryLater, never an error.
            text = ocsp_status(n, held)
            assert text.startswith("good") or "TRY_LATER" in text, text
            for path in ("/", "/crl/", f"/crl/archive/{FULL}/", "/status", "/healthz/ocsp", "/metrics",
                         f"/crl/{FULL}.crl", "/ca/eCertCA2-17.cer"):
                status, _ = get(f"{n.url}{path}")
                assert status < 500 or status == 503, (path, status)
    finally:
        own_pg_server.resume()
    for n in (a, b):
        until(lambda: readyz(n)[0] == 200, 20, "readiness back once the database is")
    until(lambda: publishing(a) != publishing(b), 10, "exactly one node publishes again")
    committed = revoke(b, "good.pem")
    until(lambda: ocsp_status(a, good).startswith("revoked"), 5, "the other node answers revoked")
    print(f"\nafter the outage: revocation through B answered by A's OCSP in "
          f"{(time.monotonic() - committed) * 1000:.0f} ms")
    until(lambda: lists(served_crl(a)[1], good) and served_crl(a) == served_crl(b), 10,
          "both nodes serve the new CRL")


# Bad input


def test_cli_names_the_setting_when_the_database_cannot_be_used(shared_demo, pg_server, seeded, tmp_path):
    seeded = seeded[0]
    node = node_demo(shared_demo, tmp_path / "n", pg_server.url(seeded))
    text = node.config.read_text()

    def serve(config: str) -> subprocess.CompletedProcess:
        node.config.write_text(config)
        t0 = time.monotonic()
        p = node.cli("serve", "--http", f"127.0.0.1:{node.http_port}", "--ldap", f"127.0.0.1:{node.ldap_port}",
                     check=False)
        p.seconds = time.monotonic() - t0
        return p

    # A host that takes the connection and never answers: the connect timeout, not a hang.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        p = serve(text.replace(f":{pg_server.port}/", f":{port}/").replace("[store]", "[store]\nconnect_timeout = 2"))
    assert p.returncode == 2 and "store.url" in p.stderr and "cannot connect to PostgreSQL: no answer within 2 s" \
        in p.stderr, p.stderr
    assert p.seconds < 15
    # A wrong password.
    (node.dir / "db-password").write_text("not the password\n")
    p = serve(text)
    assert p.returncode == 2 and "store.password_file" in p.stderr, p.stderr
    (node.dir / "db-password").write_text(PASSWORD + "\n")
    # A database of another (newer) schema version.
    name = f"nodes_{next(_names)}"
    pg_server.psql(f'CREATE DATABASE "{name}" TEMPLATE "{seeded}"')
    pg_server.psql("UPDATE schema_version SET version = version + 1", name)
    p = serve(text.replace(f"/{seeded}\"", f"/{name}\""))
    assert p.returncode == 2 and "store.url" in p.stderr and "newer than this pkirepo knows" in p.stderr, p.stderr


# The publisher is cut off from the database


class FreezableProxy:
    """A TCP relay to the database that can stop relaying (a network partition: nothing
    arrives, nothing is refused) while still passing on a close by the client."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frozen = False
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    if not self.frozen:
                        dst.write(data)
                        await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        self.server.close()


def test_a_publisher_cut_off_from_the_database_stops_and_another_takes_over(pg_server, database):
    import asyncpg

    from publisher.pg_leader import DatabaseLeadership

    async def run() -> tuple[float, float]:
        proxy = FreezableProxy(pg_server.port)
        port = await proxy.start()
        name = database.rsplit("/", 1)[1]

        def connect(p: int):
            return lambda: asyncpg.connect(f"postgresql://postgres@127.0.0.1:{p}/{name}", password=PASSWORD,
                                           timeout=5)

        a = DatabaseLeadership(connect(port), where="a", timeout=LEADER_TIMEOUT, local=None)
        b = DatabaseLeadership(connect(pg_server.port), where="b", timeout=LEADER_TIMEOUT, local=None)
        tasks = [asyncio.create_task(a.run())]
        try:
            await wait_until_async(a.try_acquire, timeout=10, what="A leads")
            tasks.append(asyncio.create_task(b.run()))
            await wait_until_async(lambda: b.tries >= 2, timeout=10, what="B tries for the lock")
            assert a.try_acquire() and not b.try_acquire()
            proxy.frozen = True
            cut = time.monotonic()
            await wait_until_async(lambda: not a.try_acquire(), timeout=LEADER_TIMEOUT,
                                   what="A stops publishing")
            stopped = time.monotonic() - cut
            await wait_until_async(b.try_acquire, timeout=LEADER_TIMEOUT + 3, what="B takes over")
            taken = time.monotonic() - cut
            assert not a.try_acquire()
            return stopped, taken
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await proxy.close()

    stopped, taken = asyncio.run(run())
    print(f"\ncut off: A stops publishing after {stopped * 1000:.0f} ms, B publishes after {taken * 1000:.0f} ms "
          f"(leader_timeout {LEADER_TIMEOUT} s)")
    assert stopped <= LEADER_TIMEOUT / 2 + 1.5

