"""The supervisor of `serve --workers` driven with small real worker processes (a Python
one-liner that says ready on the inherited pipe, then waits for a signal or dies), the
systemd notification protocol on a real datagram socket, the background-work lock, and the
status file a readiness check reads."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher import sdnotify
from publisher.errors import ConfigError
from publisher.leader import Leadership, lock_path
from publisher.supervisor import (WORKER_ENV, Supervisor, SupervisorSettings, bind_listener, format_worker_env,
                                  parse_worker_env)
from publisher.worker_status import WorkerStatus, problems, read_status, readiness_check, write_status

# serve: ready, then wait for a signal; die: ready, then exit; once: the first one serves a
# moment then exits, every later one exits before it is ready.
WORKER = (
    "import os, signal, sys\n"
    "fds = dict(p.split('=') for p in os.environ['PKIREPO_WORKER'].split(','))\n"
    "if sys.argv[1] == 'once':\n"
    "    if os.path.exists(sys.argv[2]):\n"
    "        sys.exit(4)\n"
    "    open(sys.argv[2], 'w').close()\n"
    "os.write(int(fds['ready']), b'ready\\n')\n"
    "if sys.argv[1] in ('die', 'once'):\n"
    "    sys.exit(3)\n"
    "signal.pause()\n"
)


async def _until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _running(tmp_path, mode: str, *, check=lambda: None, **settings):
    """A supervisor running in this loop; stopped (its workers drained) however the test ends."""
    listener = bind_listener("127.0.0.1", 0, what="HTTP")
    sup = Supervisor(SupervisorSettings(**settings), listeners=[{"http": listener}],
                     command=lambda: ([sys.executable, "-c", WORKER, mode, str(tmp_path / "once")], dict(os.environ)),
                     check=check, status=tmp_path / "workers.json", env={})
    run = asyncio.create_task(sup.run())
    try:
        yield sup
    finally:
        sup.stop()
        assert await asyncio.wait_for(run, 60) == 0


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="pkirepo")


async def test_workers_start_inherit_the_socket_and_stop(tmp_path):
    async with _running(tmp_path, "serve", workers=2) as sup:
        await _until(lambda: (s := read_status(tmp_path / "workers.json")) is not None and s.ready == 2)
        workers = list(sup.workers)
        assert len({w.pid for w in workers}) == 2 and problems(tmp_path / "workers.json") == []
    assert all(w.exited.done() for w in workers)


async def test_rolling_restart_replaces_every_worker(tmp_path):
    async with _running(tmp_path, "serve", workers=2) as sup:
        await _until(lambda: sum(w.serving for w in sup.workers) == 2)
        before = {w.pid for w in sup.workers}
        sup.reload()
        await _until(lambda: not sup.reloading and sum(w.serving for w in sup.workers) == 2
                     and not {w.pid for w in sup.workers} & before)


async def test_a_config_that_does_not_load_is_refused_and_the_workers_stay(tmp_path, caplog):
    def broken() -> None:
        raise ConfigError("pkirepo.toml: http.listen_typo: unknown key")

    async with _running(tmp_path, "serve", workers=1, check=broken) as sup:
        await _until(lambda: sum(w.serving for w in sup.workers) == 1)
        before = {w.pid for w in sup.workers}
        sup.reload()
        await _until(lambda: "reload refused" in caplog.text)
        await _until(lambda: not sup.reloading)
        assert {w.pid for w in sup.workers if w.serving} == before
        assert "http.listen_typo: unknown key" in caplog.text


async def test_dying_workers_are_restarted_then_a_crash_loop_is_reported(tmp_path, caplog):
    async with _running(tmp_path, "die", workers=1, crash_limit=3, crash_window=60, max_restart_delay=0.2) as sup:
        await _until(lambda: sup.crash_loop)
        await _until(lambda: (s := read_status(tmp_path / "workers.json")) is not None and s.crash_loop)
        assert "crash loop" in caplog.text and not sup.healthy
        assert any("crash loop" in p for p in problems(tmp_path / "workers.json"))


async def test_a_replacement_dying_while_it_starts_is_restarted_too(tmp_path, caplog):
    async with _running(tmp_path, "once", workers=1, crash_limit=3, crash_window=60, max_restart_delay=0.2) as sup:
        await _until(lambda: sup.crash_loop)
        assert caplog.text.count("starting another") >= 3
        # Once the deaths leave the window, the crash loop is over.
        sup.settings = SupervisorSettings(workers=1, crash_limit=3, crash_window=0.0, max_restart_delay=0.2)
        await _until(lambda: "crash loop over" in caplog.text)


async def test_a_silent_worker_is_killed_and_replaced(tmp_path, caplog):
    # These workers never say "alive" after "ready": to the supervisor, their loop is stuck.
    async with _running(tmp_path, "serve", workers=1, heartbeat_timeout=0.5) as sup:
        await _until(lambda: sum(w.serving for w in sup.workers) == 1)
        first = sup.workers[0].pid
        await _until(lambda: "unresponsive" in caplog.text)
        await _until(lambda: any(w.serving and w.pid != first for w in sup.workers))
        assert f"(pid {first}) died: killed by SIGKILL" in caplog.text


@given(st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8), st.integers(0, 65535),
                       min_size=1, max_size=5))
def test_worker_env_round_trips(fds):
    assert parse_worker_env(format_worker_env(fds)) == fds


@given(st.text(max_size=40))
def test_worker_env_parser_refuses_with_value_error_only(text):
    try:
        out = parse_worker_env(text)
    except ValueError as e:
        assert WORKER_ENV in str(e)
    else:
        assert all(isinstance(v, int) and v >= 0 for v in out.values())


def test_a_port_in_use_names_the_address(tmp_path):
    taken = bind_listener("127.0.0.1", 0, what="HTTP")
    port = taken.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot listen for LDAP on 127.0.0.1:{port}"):
        bind_listener("127.0.0.1", port, what="LDAP")
    taken.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_one_datagram(tmp_path, abstract):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        if abstract:
            name = f"pkirepo-sdnotify-{os.getpid()}-{time.monotonic_ns()}"
            s.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify")
            s.bind(address)
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": address})
        assert s.recv(100) == b"READY=1"
        assert sdnotify.reloading(env={"NOTIFY_SOCKET": address})
        assert s.recv(100).startswith(b"RELOADING=1\nMONOTONIC_USEC=")


def test_notify_without_a_manager_does_nothing(tmp_path):
    assert sdnotify.notify("READY=1", env={}) is False
    # A manager gone away is logged, never raised.
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


@pytest.mark.parametrize("env, interval", [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval(env, interval):
    assert sdnotify.watchdog_interval(env=env) == interval


def test_one_holder_of_the_background_lock_at_a_time(tmp_path):
    path = lock_path(tmp_path / "pkirepo.sqlite")
    a, b = Leadership(path), Leadership(path)
    assert a.try_acquire() and a.try_acquire()
    assert not b.try_acquire()
    a.release()
    assert b.try_acquire() and not a.try_acquire()
    b.release()


def test_status_problems(tmp_path):
    path = tmp_path / "workers.json"
    assert problems(path) == []  # no supervisor: nothing to report
    write_status(path, WorkerStatus(pid=1, workers=2, ready=1))
    assert problems(path) == ["1 of 2 workers ready"]
    write_status(path, WorkerStatus(pid=1, workers=2, ready=1, reloading=True))
    assert problems(path) == []
    path.write_text("{not json")
    assert problems(path) == []


def test_a_negative_worker_count_is_refused(shared_demo):
    r = shared_demo.cli("serve", "--workers", "-1", check=False)
    assert r.returncode == 2 and "--workers -1" in r.stderr, r.stderr


async def test_the_readiness_component_reports_a_crash_loop(tmp_path):
    path = tmp_path / "workers.json"
    check = readiness_check(path)
    write_status(path, WorkerStatus(pid=1, workers=2, ready=2))
    (ok,) = await check(None)
    assert ok.ready and ok.figures["workers_ready"] == 2
    write_status(path, WorkerStatus(pid=1, workers=2, ready=1, crash_loop=True, restart_delay=8.0))
    (bad,) = await check(None)
    assert not bad.ready and bad.state == "crash loop" and "crash loop" in bad.problem
