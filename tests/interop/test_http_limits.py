"""HTTP against a real `pkirepo serve`: clients that send nothing, half a header or a slow
body are timed out; idle keep-alive connections are closed; connections beyond the cap are
refused while LDAP goes on; the open-file limit is raised at start; malformed requests are
logged in one line each, at a bounded rate.  Raw sockets on 127.0.0.1."""
from __future__ import annotations

import re
import resource
import socket
from pathlib import Path

import ldap3
import pytest

# How long a test waits for the server to act; far above the configured timeouts, far
# below what an unguarded server would take (keep-alive: an hour; header: never).
WAIT = 20.0


def configure(demo, **http) -> None:
    lines = "".join(f"{k} = {v}\n" for k, v in http.items())
    demo.set_config("[http]\n", "[http]\n" + lines)


def connect(demo) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", demo.http_port), timeout=WAIT)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it never does."""
    out = b""
    for _ in range(1000):
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk
    raise AssertionError("the server kept sending")


def healthz(s: socket.socket) -> bytes:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"ok\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    return data


@pytest.fixture
def guarded(fresh_demo, server_factory):
    configure(fresh_demo, header_timeout=1, body_timeout=1, keepalive_timeout=3)
    return server_factory(fresh_demo)


class TestTimeouts:
    @pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"GET /crl/ HT"])
    def test_incomplete_header_gets_408_and_close(self, guarded, sent):
        with connect(guarded.demo) as s:
            s.sendall(sent)
            out = read_until_closed(s)
        assert out.startswith(b"HTTP/1.1 408 "), out

    def test_slow_body_gets_408_and_close(self, guarded):
        with connect(guarded.demo) as s:
            s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                      b"Content-Length: 100\r\n\r\n" + b"0" * 10)
            out = read_until_closed(s)
        assert out.startswith(b"HTTP/1.1 408 "), out

    def test_idle_keepalive_is_closed_and_busy_one_is_not(self, guarded):
        with connect(guarded.demo) as s:
            for _ in range(3):  # requests back to back keep the connection
                assert healthz(s).startswith(b"HTTP/1.1 200 ")
            assert read_until_closed(s) == b""  # then idle: closed


def test_connection_cap_refuses_the_surplus_and_ldap_goes_on(fresh_demo, server_factory):
    configure(fresh_demo, max_connections=4, header_timeout=60)
    server = server_factory(fresh_demo)
    crowd = [connect(fresh_demo) for _ in range(4)]
    try:
        for s in crowd[:1]:
            assert healthz(s).startswith(b"HTTP/1.1 200 ")  # admitted connections are served
        with connect(fresh_demo) as s:
            out = read_until_closed(s)
        assert out.startswith(b"HTTP/1.1 503 "), out
        ldap = ldap3.Server("127.0.0.1", port=fresh_demo.ldap_port)
        with ldap3.Connection(ldap, auto_bind=True, receive_timeout=int(WAIT)) as c:
            assert c.search("", "(objectClass=*)", ldap3.BASE, attributes=["namingContexts"])
        crowd.pop().close()
        for _ in range(200):  # the freed slot is taken by the next connection
            with connect(fresh_demo) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                out = read_until_closed(s)
            if out.startswith(b"HTTP/1.1 200 "):
                break
            assert out.startswith(b"HTTP/1.1 503 "), out
        assert out.startswith(b"HTTP/1.1 200 "), out
        assert "max_connections" in server.log()
    finally:
        for s in crowd:
            s.close()


def test_open_file_limit_is_raised_to_the_hard_limit(fresh_demo, server_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    if low == hard:
        pytest.skip("the hard limit is already this low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        server = server_factory(fresh_demo)  # inherits the low soft limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    m = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
    assert m and m.group(1) == m.group(2) == str(hard), limits


class TestClientMistakesInTheLog:
    def test_bad_requests(self, fresh_demo, server_factory):
        server = server_factory(fresh_demo)
        for i in range(200):
            with connect(fresh_demo) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
                out = read_until_closed(s)
            assert re.match(rb"HTTP/1.[01] 400 ", out), out
        log = server.log()
        assert "Traceback" not in log
        lines = [line for line in log.splitlines() if "bad HTTP request" in line]
        assert 1 <= len(lines) <= 60, len(lines)  # 200 bad requests, a few lines
