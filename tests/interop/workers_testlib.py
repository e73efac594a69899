"""Helpers for the tests of `pkirepo serve --workers`: a bounded request loop (OCSP POST and
GET, a CRL download, an LDAP search, each on a new connection, as relying parties send
them) run from a thread, and what the kernel says about the supervisor's workers."""
from __future__ import annotations

import base64
import http.client
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Callable

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

CA = "eCertCA2-17"


def wait_for(cond: Callable[[], object], timeout: float, what: str, step: float = 0.05):
    """Poll `cond` until it returns something true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    """Running (a zombie, not yet reaped, has already closed everything it held)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def worker_pids(supervisor_pid: int) -> set[int]:
    return {p for p in children(supervisor_pid) if alive(p)}


def lock_holders(lock: Path) -> set[int]:
    """The processes holding a flock on `lock`, from /proc/locks."""
    st = os.stat(lock)
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[3] == "WRITE":
            dev_inode = f[5].split(":")
            if len(dev_inode) == 3 and int(dev_inode[2]) == st.st_ino:
                holders.add(int(f[4]))
    return holders


class Load(threading.Thread):
    """Rounds of four requests (OCSP POST, OCSP GET, CRL GET, LDAP search), one connection
    each, against `host:port` (HTTP) and `ldap_port`. Bounded: it stops `after` rounds
    after `finish()`, once it has done `min_rounds`, and never runs more than `max_rounds`.
    Holding `gate` pauses it between rounds. Every failure is recorded, and every OCSP
    answer must be a signed `good` answer that verifies with the responder's key."""

    def __init__(self, demo, *, port: int | None = None, ldap_port: int | None = None,
                 min_rounds: int = 60, max_rounds: int = 3000, after: int = 5) -> None:
        super().__init__(daemon=True)
        self.host = "127.0.0.1"
        self.port = port or demo.http_port
        self.ldap_port = ldap_port if ldap_port is not None else demo.ldap_port
        self.request = _request_der(demo)
        self.get_path = "/ocsp/" + urllib.parse.quote(base64.b64encode(self.request).decode(), safe="")
        self.responder_key = x509.load_pem_x509_certificate((demo.pki / f"ocsp-{CA}.pem").read_bytes()).public_key()
        self.min_rounds, self.max_rounds, self.after = min_rounds, max_rounds, after
        self.gate = threading.Lock()
        self.finishing = threading.Event()
        self.rounds = 0
        self.requests = 0
        self.failures: list[str] = []

    def finish(self, timeout: float = 120) -> None:
        self.finishing.set()
        self.join(timeout)
        assert not self.is_alive(), "the request loop did not stop"

    def wait_rounds(self, n: int, timeout: float = 60) -> None:
        wait_for(lambda: self.rounds >= n or not self.is_alive(), timeout, f"{n} rounds of requests")

    def run(self) -> None:
        left = self.after
        for _ in range(self.max_rounds):
            with self.gate:
                for what, step in (("OCSP POST", self._post), ("OCSP GET", self._get), ("CRL GET", self._crl),
                                   ("LDAP search", self._ldap)):
                    if what == "LDAP search" and not self.ldap_port:
                        continue
                    try:
                        step()
                    except Exception as e:  # every kind of failure counts
                        self.failures.append(f"round {self.rounds}: {what}: {e!r}")
                    self.requests += 1
            self.rounds += 1
            if self.finishing.is_set() and self.rounds >= self.min_rounds:
                left -= 1
                if left <= 0:
                    return

    def _http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> bytes:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise AssertionError(f"HTTP {resp.status}: {data[:200]!r}")
            return data
        finally:
            conn.close()

    def _check_ocsp(self, der: bytes) -> None:
        resp = ocsp.load_der_ocsp_response(der)
        assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, resp.response_status
        assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD, resp.certificate_status
        key = self.responder_key
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), resp.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
        else:
            key.verify(resp.signature, resp.tbs_response_bytes)

    def _post(self) -> None:
        self._check_ocsp(self._http("POST", "/ocsp", self.request, {"Content-Type": "application/ocsp-request"}))

    def _get(self) -> None:
        self._check_ocsp(self._http("GET", self.get_path))

    def _crl(self) -> None:
        crl = x509.load_der_x509_crl(self._http("GET", f"/crl/{CA}CRL1.crl"))
        assert crl.issuer.rfc4514_string(), "a CRL without issuer"

    def _ldap(self) -> None:
        server = ldap3.Server(self.host, port=self.ldap_port, connect_timeout=10)
        conn = ldap3.Connection(server, auto_bind=True, receive_timeout=30)
        try:
            assert conn.search("c=HK", "(objectClass=*)", search_scope=ldap3.LEVEL, attributes=["objectClass"]), \
                conn.result
            assert conn.entries, "no entries"
        finally:
            conn.unbind()


def _request_der(demo) -> bytes:
    import subprocess

    out = demo.dir / "load-req.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(demo.pki / f"{CA}.pem"), "-cert", str(demo.pki / "good.pem"),
                    "-no_nonce", "-reqout", str(out)], check=True, capture_output=True, timeout=60)
    return out.read_bytes()
