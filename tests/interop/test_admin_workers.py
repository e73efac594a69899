"""The admin API under `pkirepo serve --workers 2`: the supervisor binds its listener once
and every worker accepts on it, so a change reaches the store whichever worker answers, a
retry answered by another worker gets the first answer, and the listener stays open through
a rolling restart."""
from __future__ import annotations

import signal

from cryptography import x509
from repo_testlib import Server, make_demo
from test_admin_api import curl, store_state
from workers_testlib import CA, wait_for, worker_pids

from publisher.worker_status import read_status, status_path


def test_admin_listener_is_shared_by_the_workers_and_outlives_a_rolling_restart(tmp_path):
    demo = make_demo(tmp_path / "demo", subscribers=20)
    server = Server(demo, "--workers", "2")
    try:
        wait_for(lambda: len(worker_pids(server.proc.pid)) == 2, 30, "two workers")
        serial = x509.load_pem_x509_certificate((demo.pki / "held.pem").read_bytes()).serial_number
        body = {"issuer": CA, "serial": f"{serial:X}"}
        status, first, _ = curl(demo, "/release", body=body, key="w-1")
        assert status == 200 and first["status"] == "good"
        before = store_state(demo)
        # New connections each: the retries are spread over the workers, all answered alike.
        for _ in range(6):
            assert curl(demo, "/release", body=body, key="w-1")[:2] == (200, first)
        assert store_state(demo) == before
        old = worker_pids(server.proc.pid)
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: not (worker_pids(server.proc.pid) & old) and len(worker_pids(server.proc.pid)) == 2
                 and (s := read_status(status_path(demo.dir / "pkirepo.sqlite"))) is not None and s.ready == 2,
                 120, "two new workers")
        status, answer, _ = curl(demo, "/hold", body=body, key="w-2")
        assert status == 200 and answer["status"] == "hold"
    finally:
        assert server.stop() == 0, server.log()
