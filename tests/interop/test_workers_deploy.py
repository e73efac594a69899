"""The deployment pieces of config/: nginx with config/nginx-pkirepo.conf in front of
`serve --workers 2` while every worker restarts, and the systemd notifications the server
sends on a NOTIFY_SOCKET made here."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from repo_testlib import Server, free_port, make_demo
from workers_testlib import Load, wait_for, worker_pids

ROOT = Path(__file__).resolve().parents[2]


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    assert found, "nginx is missing: `make sysdeps` installs it (Debian package nginx)"
    return found


def _start_nginx(tmp: Path, backend: int, port: int) -> subprocess.Popen:
    """nginx as a foreground process of the test, with the shipped config, its prefix and
    cache in tmp."""
    site = (ROOT / "config" / "nginx-pkirepo.conf").read_text()
    for old, new in (("127.0.0.1:8080", f"127.0.0.1:{backend}"), ("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("/var/cache/nginx/pkirepo", str(tmp / "cache"))):
        assert old in site, old
        site = site.replace(old, new)
    (tmp / "pkirepo.conf").write_text(site)
    temp = " ".join(f"{d}_temp_path {tmp / d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp / "nginx.conf").write_text(
        f"daemon off; master_process off; worker_processes 1; pid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; {temp} include {tmp}/pkirepo.conf; }}\n")
    proc = subprocess.Popen([_nginx(), "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert proc.poll() is None, (tmp / "error.log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 30, "nginx")
    return proc


def test_through_nginx_no_request_fails_while_every_worker_restarts(tmp_path):
    demo = make_demo(tmp_path / "demo", subscribers=10)
    server = Server(demo, "--workers", "2")
    port = free_port()
    (tmp_path / "nginx").mkdir()
    nginx = _start_nginx(tmp_path / "nginx", demo.http_port, port)
    try:
        before = worker_pids(server.proc.pid)
        load = Load(demo, port=port)
        load.start()
        load.wait_rounds(3)
        mark = len(server.log())
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "rolling restart done" in server.log()[mark:], 90, "the rolling restart")
        load.finish()
        assert load.failures == [], "\n".join(load.failures[:20])
        assert not worker_pids(server.proc.pid) & before
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        assert server.stop() == 0


class Notifications:
    """A NOTIFY_SOCKET as systemd makes it: a Unix datagram socket (abstract when `abstract`)."""

    def __init__(self, path: Path, *, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"pkirepo-test-{path.name}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.seen: list[str] = []

    def expect(self, state: str, timeout: float = 60, *, after: int = 0) -> int:
        """Wait until a datagram holding the line `state` arrives, the `after`th or later
        (others are kept); its index."""
        deadline = time.monotonic() + timeout
        while not any(state in m.split("\n") for m in self.seen[after:]):
            left = deadline - time.monotonic()
            assert left > 0, f"no {state} within {timeout} s; got {self.seen}"
            self.sock.settimeout(left)
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        return next(i for i, m in enumerate(self.seen) if i >= after and state in m.split("\n"))

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_systemd_notifications(tmp_path, workers):
    demo = make_demo(tmp_path / "demo", subscribers=10)
    notes = Notifications(tmp_path / "notify.sock", abstract=bool(workers))
    try:
        server = Server(demo, "--workers", str(workers),
                        env={"NOTIFY_SOCKET": notes.address, "WATCHDOG_USEC": "1000000"})
        notes.expect("READY=1")
        notes.expect("WATCHDOG=1")
        if workers:
            mark = len(server.log())
            server.proc.send_signal(signal.SIGHUP)
            reloading = notes.expect("RELOADING=1", after=len(notes.seen))
            ready = notes.expect("READY=1", 120, after=reloading + 1)
            # READY=1 comes once the rolling restart is over, not before.
            assert "rolling restart done" in server.log()[mark:], notes.seen[reloading:ready + 1]
        assert server.stop() == 0
        notes.expect("STOPPING=1")
    finally:
        notes.close()
