"""`pkirepo serve --workers 2` under a bounded request loop (OCSP POST and GET, CRL, LDAP):
rolling restarts, a reload with a broken config and a killed worker lose no request; one
worker at a time runs the background work and another takes over when it dies."""
from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest
from cryptography import x509
from repo_testlib import Server, make_demo
from workers_testlib import CA, Load, alive, lock_holders, wait_for, worker_pids

from publisher.leader import lock_path
from publisher.worker_status import problems, read_status, status_path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("workers"), subscribers=20)


@pytest.fixture(scope="module")
def supervisor(demo):
    server = Server(demo, "--workers", "2")
    wait_for(lambda: len(worker_pids(server.proc.pid)) == 2, 30, "two workers")
    yield server
    if server.proc.poll() is None:
        assert server.stop() == 0, server.log()


def _store(demo):
    return demo.dir / "pkirepo.sqlite"


def _all_ready(demo, n: int = 2) -> bool:
    s = read_status(status_path(_store(demo)))
    return s is not None and s.ready == n and not s.reloading


def _log_since(server: Server, mark: int) -> str:
    return server.log()[mark:]

def _established_by_pid(pids: set[int], port: int) -> dict[int, int]:
    """How many established connections to local `port` each process holds, from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01":  # 01: ESTABLISHED
                inodes.add(f[9])
    counts = {}
    for pid in pids:
        held = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


def test_kept_alive_connections_are_spread_over_the_workers(demo, supervisor):
    """Each worker accepts on its own SO_REUSEPORT socket, so the kernel spreads connections
    over them: with one shared socket, whichever worker is idle takes most of a client's
    kept-alive connections and the other idles. 32 connections all landing on one worker by
    the kernel's hash would happen once in 2^31 runs."""
    import http.client

    wait_for(lambda: _all_ready(demo), 60, "both workers ready")
    conns = [http.client.HTTPConnection("127.0.0.1", demo.http_port, timeout=30) for _ in range(32)]
    try:
        for c in conns:
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            assert r.status == 200 and not r.will_close
        counts = _established_by_pid(worker_pids(supervisor.proc.pid), demo.http_port)
        assert sum(counts.values()) == 32 and all(n > 0 for n in counts.values()), counts
    finally:
        for c in conns:
            c.close()


def test_rolling_restart_loses_no_request(demo, supervisor):
    before = worker_pids(supervisor.proc.pid)
    load = Load(demo)
    load.start()
    load.wait_rounds(3)
    mark = len(supervisor.log())
    supervisor.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "rolling restart done" in _log_since(supervisor, mark), 90, "the rolling restart")
    load.finish()
    assert load.failures == [], "\n".join(load.failures[:20])
    assert load.requests >= 240
    after = worker_pids(supervisor.proc.pid)
    assert len(after) == 2 and not after & before, (before, after)
    assert _all_ready(demo) and problems(status_path(_store(demo))) == []
    # Each worker's readiness report carries the supervisor's view.
    with urllib.request.urlopen(f"{demo.base_url}/readyz", timeout=30) as r:
        body = r.read()
    workers = json.loads(body)["components"]["workers"]
    assert workers["ready"] is True and workers["workers_ready"] == 2, workers


def test_reload_with_a_broken_config_is_refused_and_the_workers_keep_serving(demo, supervisor):
    before = worker_pids(supervisor.proc.pid)
    good = demo.config.read_text()
    load = Load(demo, min_rounds=30)
    load.start()
    load.wait_rounds(3)
    mark = len(supervisor.log())
    try:
        demo.config.write_text(good + "\n[http]\nlisten_typo = 1\n")
        supervisor.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in _log_since(supervisor, mark), 60, "the refusal")
    finally:
        demo.config.write_text(good)
    load.finish()
    assert load.failures == [], "\n".join(load.failures[:20])
    log = _log_since(supervisor, mark)
    assert str(demo.config) in log or "pkirepo.toml" in log
    assert worker_pids(supervisor.proc.pid) == before


def test_a_killed_worker_is_replaced_and_loses_no_queued_request(demo, supervisor):
    """SIGKILL between two requests: a request in progress on a killed process dies with it
    (nginx in front retries idempotent ones); what is queued on the shared socket is not."""
    before = worker_pids(supervisor.proc.pid)
    victim = min(before)
    load = Load(demo, min_rounds=40)
    load.start()
    load.wait_rounds(3)
    mark = len(supervisor.log())
    with load.gate:
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), 10, "the killed worker to be gone")
    load.wait_rounds(load.rounds + 10)  # served by the other worker alone meanwhile
    wait_for(lambda: len(worker_pids(supervisor.proc.pid)) == 2 and _all_ready(demo), 60, "a new worker")
    load.finish()
    assert load.failures == [], "\n".join(load.failures[:20])
    assert f"(pid {victim}) died: killed by SIGKILL" in _log_since(supervisor, mark)


def _archive(demo, name: str) -> list[dict]:
    with urllib.request.urlopen(f"{demo.base_url}/crl/archive/{name}/", timeout=30) as r:
        return json.load(r)["crls"]


def _listed(demo, name: str, serial: int) -> bool:
    with urllib.request.urlopen(f"{demo.base_url}/crl/{name}.crl", timeout=30) as r:
        crl = x509.load_der_x509_crl(r.read())
    return crl.get_revoked_certificate_by_serial_number(serial) is not None


def _subscribers(demo) -> list[int]:
    return [c.serial_number for c in x509.load_pem_x509_certificates((demo.pki / "subscribers.pem").read_bytes())]


def test_one_worker_runs_publication_and_another_takes_over_when_it_dies(demo, supervisor):
    full = f"{CA}CRL1"
    lock = lock_path(_store(demo))
    holders = wait_for(lambda: lock_holders(lock), 10, "a holder of the background lock")
    workers = worker_pids(supervisor.proc.pid)
    assert len(holders) == 1 and holders <= workers, (holders, workers)

    first, second = _subscribers(demo)[:2]
    before = _archive(demo, full)
    demo.cli("revoke", "--issuer", CA, "--serial", f"{first:X}")
    wait_for(lambda: _listed(demo, full, first), 30, "the supplementary CRL")
    after = _archive(demo, full)
    # One supplementary CRL for the change, numbered right after the last one.
    assert len(after) == len(before) + 1
    assert max(c["crl_number"] for c in after) == max(c["crl_number"] for c in before) + 1

    (leader,) = holders
    os.kill(leader, signal.SIGKILL)
    wait_for(lambda: not alive(leader), 10, "the killed worker to be gone")
    demo.cli("revoke", "--issuer", CA, "--serial", f"{second:X}")
    # The survivor takes the lock at its next round and issues the supplementary CRL.
    wait_for(lambda: _listed(demo, full, second), 30, "a supplementary CRL from another worker")
    new = lock_holders(lock)
    assert len(new) == 1 and leader not in new
    wait_for(lambda: len(worker_pids(supervisor.proc.pid)) == 2 and _all_ready(demo), 60, "a new worker")
    numbers = sorted(c["crl_number"] for c in _archive(demo, full))
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none skipped, none twice


def test_sigterm_drains_the_workers_and_closes_the_listeners(demo, supervisor):
    workers = worker_pids(supervisor.proc.pid)
    assert supervisor.stop() == 0
    assert not any(alive(p) for p in workers)
    assert not status_path(_store(demo)).exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{demo.base_url}/healthz", timeout=5)


def test_workers_stop_when_their_supervisor_is_killed(demo):
    # Ports of its own: the module's supervisor may be serving the demo's.
    from repo_testlib import free_port

    server = Server(demo, "--workers", "1", "--http", f"127.0.0.1:{free_port()}", "--ldap", "")
    try:
        (worker,) = wait_for(lambda: worker_pids(server.proc.pid), 30, "the worker")
        server.proc.kill()
        server.wait_exit()
        # Its next heartbeat finds the pipe closed: it drains and exits instead of serving on.
        wait_for(lambda: not alive(worker), 30, "the orphaned worker to stop")
    finally:
        if server.proc.poll() is None:
            server.kill()

