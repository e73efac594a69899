"""Helpers for the CRL interop, crash-safety, HTTP and CLI error tests.

A demo repository takes ~2 s to make (RSA keys); tests that change one work on a copy of a
single session-wide template (`template_demo` + `copy_demo`), each copy with ports of its
own. Servers are real `pkirepo serve` subprocesses on 127.0.0.1; HTTP is fetched with a real
client (urllib); openssl is the real binary. Nothing here sleeps for timing: `wait_until`
polls a condition under a deadline.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from publisher import der as derlib
from repo_testlib import Demo, free_port
from repo_testlib import Server as ServerProc  # noqa: F401 (the crash tests' name for it)
from repo_testlib import run_cli as _run_cli

CA = "eCertCA2-17"
ROOT = "RootCA2"
FULL = "eCertCA2-17CRL1"
ARL = "RootCA2ARL"
PARTITIONS = ("eCertCA2-17CRL2", "eCertCA2-17CRL3", "eCertCA2-17CRL4")
ALL_CRLS = (ARL, FULL, *PARTITIONS)


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `pkirepo ARGS`, never raising on a non-zero exit (callers assert on it)."""
    return _run_cli(*args, check=False, env=env, timeout=timeout)


def wait_until(condition: Callable[[], object], *, timeout: float = 20.0, what: str = "condition",
               poll: float = 0.05):
    """Poll `condition` every `poll` seconds until it returns something truthy; fail after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)  # poll interval, not a timing assumption


async def wait_until_async(condition: Callable[[], object], *, timeout: float = 20.0, what: str = "condition",
                           poll: float = 0.02):
    """`wait_until` for a test running on an event loop, which must keep running meanwhile
    (a listener on it is what makes the condition true)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(poll)  # poll interval, not a timing assumption


class RepoDemo(Demo):
    """conftest's Demo, whose `cli` never raises: these tests assert on exit codes."""

    def cli(self, *args: str, check: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
        return super().cli(*args, check=check, env=env)


_TEMPLATE: dict[str, RepoDemo] = {}


def template_demo(tmp_path_factory, subscribers: int = 24) -> RepoDemo:
    """One small demo per session (never served, never changed): copy it, don't use it."""
    if "t" not in _TEMPLATE:
        directory = tmp_path_factory.mktemp("crl-template") / "demo"
        http, ldap = free_port(), free_port()
        p = run_cli("demo", "init", str(directory), "--subscribers", str(subscribers),
                    "--http", f"127.0.0.1:{http}", "--ldap", f"127.0.0.1:{ldap}", "--bare",
                    "--admin", "")  # copies are served side by side: no admin listener to share
        assert p.returncode == 0, p.stderr
        demo = RepoDemo(directory, directory / "pkirepo.toml", http, ldap)
        demo.set_config("supplementary_delay_seconds = 60", "supplementary_delay_seconds = 0")
        # One daily issuance 12 h from now: no scheduled CRL falls due while a test runs
        # (a slot passing mid-test would make a server issue, or crash, at start-up).
        far = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=12)).strftime("%H:%M")
        demo.set_config('daily = ["01:15", "06:15", "11:00"]', f'daily = ["{far}"]')
        _TEMPLATE["t"] = demo
    return _TEMPLATE["t"]


def copy_demo(template: RepoDemo, dest: Path) -> RepoDemo:
    """A private copy with its own ports. URLs inside certificates and CRLs keep the
    template's port; tests that follow those URLs must use a demo served on its own port."""
    shutil.copytree(template.dir, dest, symlinks=True)
    return RepoDemo(dest, dest / "pkirepo.toml", free_port(), free_port())


def http_get(url: str, *, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def fetch(url: str) -> bytes:
    status, _, body = http_get(url)
    assert status == 200, f"GET {url}: {status} {body[:200]!r}"
    return body


def index(base_url: str) -> dict[str, dict]:
    import json

    return {e["name"]: e for e in json.loads(fetch(f"{base_url}/crl/"))["crls"]}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60)


def openssl_text(p: subprocess.CompletedProcess) -> str:
    return (p.stdout + p.stderr).decode(errors="replace")


def der_to_pem_crl(der: bytes, path: Path) -> Path:
    path.write_bytes(pem.armor("X509 CRL", der))
    return path


def load_cert(path: Path) -> asn1_x509.Certificate:
    data = Path(path).read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return asn1_x509.Certificate.load(data)


def load_certs(path: Path) -> list[asn1_x509.Certificate]:
    data = Path(path).read_bytes()
    return [asn1_x509.Certificate.load(d) for _, _, d in pem.unarmor(data, multiple=True)]


def parse_crl(der: bytes) -> asn1_crl.CertificateList:
    c = asn1_crl.CertificateList.load(der)
    c.native  # parse everything now: a malformed field fails here, not later
    return c


def crl_serials(c: asn1_crl.CertificateList) -> list[int]:
    return [e["user_certificate"].native for e in c["tbs_cert_list"]["revoked_certificates"]]


def crl_number(der: bytes) -> int:
    return parse_crl(der).crl_number_value.native


def cdp_url(cert: asn1_x509.Certificate) -> str | None:
    for dp in cert.crl_distribution_points_value or []:
        for name in dp["distribution_point"].chosen:
            if name.name == "uniform_resource_identifier":
                return name.native
    return None


def tbs_tags(der: bytes) -> list[int]:
    """The tags of the TBSCertList's top-level fields, in order."""
    _, start, _ = derlib.read_tlv(der)  # CertificateList
    tag, pos, end = derlib.read_tlv(der, start)  # TBSCertList
    assert tag == derlib.SEQUENCE
    tags = []
    while pos < end:
        t, s, e = derlib.read_tlv(der, pos)
        tags.append(t)
        pos = e
    return tags


def tmp_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.name.endswith(".tmp"))


def make_tiny_ca(directory) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A second CA as a new operator would add it: TinyCA.pem and TinyCA.key (mode 600) in
    `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tiny CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    (directory / "TinyCA.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "TinyCA.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert, key


def issue_cert(ca: x509.Certificate, ca_key, serial: int, cdp: str | None = None) -> x509.Certificate:
    """A subscriber certificate of `ca`, with a CRL distribution point when `cdp` is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sub {serial:X}")]))
         .issuer_name(ca.subject).public_key(key.public_key()).serial_number(serial)
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365)))
    if cdp:
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(cdp)], None, None, None)]), critical=False)
    return b.sign(ca_key, hashes.SHA256())
