"""LDAP against the real `pkirepo serve` subprocess (demo repository, free ports), with
OpenLDAP's ldapsearch / ldapmodify and ldap3 as the clients, HTTP as the reference.

The demo directory (suffix c=HK; base o=<the CAs' O>,c=HK unless the config sets one) is
discovered through the root DSE and searches, so the tests follow the configured layout:
CRL entries `cn=Demo e-Cert CA 2 - 17 CRL1..4`, `cn=Demo Root CA 2 ARL`, pkiCA entries for
both CAs, subscribers under the issuing CA's entry.
"""
from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
import urllib.request

from dataclasses import dataclass

import aiohttp
import ldap3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ldap import ber

# Bounded-latency checks catch a stalled loop or a change never followed; the limit is
# generous for a loaded 2-core CI machine. How fast it really is, is bench/'s to show.
STALL_LIMIT = 5.0

CRL = "certificateRevocationList;binary"
ARL = "authorityRevocationList;binary"
ENV = {**os.environ, "LDAPNOINIT": "1"}


@dataclass(frozen=True)
class Layout:
    suffix: str
    ca: str
    root: str
    crl: dict[int, str]  # CRL<n> entries
    arl: str

    @property
    def crl1(self) -> str:
        return self.crl[1]


def discover(port: int) -> Layout:
    server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.DSA)
    with ldap3.Connection(server, auto_bind=True) as c:
        [suffix] = c.server.info.naming_contexts

        def find(flt: str) -> list[str]:
            c.search(suffix, flt, ldap3.SUBTREE, attributes=["cn"])
            return [e.entry_dn for e in c.entries]

        [ca] = find("(&(objectClass=pkiCA)(certificateRevocationList=*))")
        [root] = find("(&(objectClass=pkiCA)(authorityRevocationList=*))")
        [arl] = find("(&(objectClass=cRLDistributionPoint)(authorityRevocationList=*))")
        crl = {}
        for dn in find("(&(objectClass=cRLDistributionPoint)(certificateRevocationList=*))"):
            crl[int(dn.split(",")[0].rsplit("CRL", 1)[1])] = dn
    return Layout(suffix, ca, root, crl, arl)


def ldapsearch(port: int, *args: str, stdin: bytes | None = None, tool: str = "ldapsearch"):
    extra = ["-LLL", "-o", "ldif-wrap=no"] if tool == "ldapsearch" else []
    return subprocess.run([tool, "-x", *extra, "-H", f"ldap://127.0.0.1:{port}", *args],
                          input=stdin, capture_output=True, env=ENV, timeout=60)


def ldif_values(text: bytes, attr: str) -> list[bytes]:
    out = []
    for line in text.decode().splitlines():
        name, sep, value = line.partition(":")
        if sep and name.lower() == attr.lower():
            out.append(base64.b64decode(value[2:]) if value.startswith(": ") else value[1:].encode())
    return out


def ldap_value(port: int, dn: str, attr: str) -> bytes:
    p = ldapsearch(port, "-b", dn, "-s", "base", "(objectClass=*)", attr)
    assert p.returncode == 0, p.stderr
    [v] = ldif_values(p.stdout, attr)
    return v


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def crl_number(der: bytes) -> int:
    return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def cert_der(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def email_of(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(x509.NameOID.EMAIL_ADDRESS)[0].value


def test_crl_bytes_equal_http_also_after_publish(fresh_demo, server_factory):
    server = server_factory(fresh_demo)
    port = fresh_demo.ldap_port
    lay = discover(port)
    assert lay.suffix == "c=HK" and sorted(lay.crl) == [1, 2, 3, 4]
    assert lay.crl1.startswith("cn=Demo e-Cert CA 2 - 17 CRL1,")
    pairs = [(lay.crl1, CRL, "eCertCA2-17CRL1"), (lay.arl, ARL, "RootCA2ARL"),
             (lay.ca, CRL, "eCertCA2-17CRL1"), (lay.root, ARL, "RootCA2ARL")]
    pairs += [(lay.crl[k], CRL, f"eCertCA2-17CRL{k}") for k in (2, 3, 4)]
    for dn, attr, name in pairs:
        assert ldap_value(port, dn, attr) == http_get(f"{server.url}/crl/{name}.crl"), dn

    before = ldap_value(port, lay.crl1, CRL)
    fresh_demo.cli("publish")
    published = time.monotonic()
    # Poll for the change (condition wait, not a sleep for timing).
    while (now := ldap_value(port, lay.crl1, CRL)) == before:
        assert time.monotonic() - published < STALL_LIMIT, "new CRL not visible over LDAP"
        time.sleep(0.05)
    seen_after = time.monotonic() - published
    assert crl_number(now) == crl_number(before) + 1
    deadline = time.monotonic() + 5
    while (http := http_get(f"{server.url}/crl/eCertCA2-17CRL1.crl")) != now:
        assert time.monotonic() < deadline, "HTTP and LDAP disagree"
        time.sleep(0.05)
    assert http == now
    assert seen_after < STALL_LIMIT, f"LDAP showed the new CRL after {seen_after:.2f} s"


def test_ldap3_by_mail_and_arl(shared_server, shared_demo):
    lay = discover(shared_demo.ldap_port)
    good = cert_der(shared_demo.pki / "good.pem")
    revoked = cert_der(shared_demo.pki / "revoked.pem")
    server = ldap3.Server("127.0.0.1", port=shared_demo.ldap_port, get_info=ldap3.DSA)
    with ldap3.Connection(server, auto_bind=True) as c:
        [base] = c.server.info.naming_contexts
        assert base == "c=HK"
        c.search(base, f"(mail={email_of(good)})", ldap3.SUBTREE,
                 attributes=["userCertificate;binary", "cn", "mail"])
        [e] = c.entries
        assert e["userCertificate;binary"].value == good.public_bytes(Encoding.DER)
        assert e.entry_dn.endswith(f",{lay.ca}")
        c.search(base, f"(mail={email_of(revoked)})", ldap3.SUBTREE)
        assert c.entries == []  # revoked certificates are not published
        c.search(lay.root, "(objectClass=pkiCA)", ldap3.BASE,
                 attributes=["authorityRevocationList;binary", "cACertificate;binary"])
        [root] = c.entries
        arl = root["authorityRevocationList;binary"].value
    assert arl == http_get(f"{shared_server.url}/crl/RootCA2ARL.crl")
    assert x509.load_der_x509_crl(arl).issuer == cert_der(shared_demo.pki / "RootCA2.pem").subject


def test_subscribers_by_dn_compare_and_one_level(shared_server, shared_demo):
    """Subscriber entries are read from the store: by DN (held ones stay, revoked ones are
    gone with the CA as matchedDN), by compare, and one level under the CA with a size limit."""
    lay = discover(shared_demo.ldap_port)
    server = ldap3.Server("127.0.0.1", port=shared_demo.ldap_port)
    with ldap3.Connection(server, auto_bind=True) as c:
        for name, published in (("good.pem", True), ("held.pem", True), ("revoked.pem", False)):
            cert = cert_der(shared_demo.pki / name)
            hexed = f"{cert.serial_number:X}"
            dn = f"uid={'0' * (len(hexed) % 2)}{hexed},{lay.ca}"
            c.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["mail", "userCertificate;binary"])
            if published:
                [e] = c.entries
                assert e["userCertificate;binary"].value == cert.public_bytes(Encoding.DER)
                assert c.compare(dn, "mail", email_of(cert)) is True
                assert c.compare(dn, "mail", "someone.else@example.hk") is False
            else:
                assert c.entries == [] and c.result["result"] == 32, c.result
                assert c.result["dn"].lower() == lay.ca.lower()
                assert c.compare(dn, "mail", email_of(cert)) is False and c.result["result"] == 32
        c.search(lay.ca, "(objectClass=*)", ldap3.LEVEL, size_limit=3, attributes=["1.1"])
        assert len(c.entries) == 3 and c.result["result"] == 4  # sizeLimitExceeded


def test_ldapmodify_refused_and_nothing_changed(shared_server, shared_demo):
    port = shared_demo.ldap_port
    crl1 = discover(port).crl1
    before = ldap_value(port, crl1, CRL)
    ldif = (f"dn: {crl1}\nchangetype: modify\nreplace: {CRL}\n"
            f"{CRL}:: {base64.b64encode(b'forged').decode()}\n").encode()
    p = ldapsearch(port, tool="ldapmodify", stdin=ldif)
    assert p.returncode == 50 and b"Insufficient access" in p.stderr
    p = ldapsearch(port, crl1, tool="ldapdelete")
    assert p.returncode == 50 and b"Insufficient access" in p.stderr
    assert ldap_value(port, crl1, CRL) == before
    assert before == http_get(f"{shared_server.url}/crl/eCertCA2-17CRL1.crl")


class LdapLoad:
    """Connections sending pipelined subtree searches by mail and counting the answers."""

    def __init__(self, port: int, mails: list[str], connections: int = 4, depth: int = 16):
        self.port, self.mails, self.connections, self.depth = port, mails, connections, depth
        self.done = 0
        self.errors: list[str] = []

    def request(self, mid: int) -> bytes:
        from ldaptor import ldapfilter
        from ldaptor.protocols import pureldap as pl

        mail = self.mails[mid % len(self.mails)]
        op = pl.LDAPSearchRequest(baseObject=b"c=HK", scope=2, filter=ldapfilter.parseFilter(
            f"(mail={mail})"), attributes=[b"userCertificate;binary"])
        return pl.LDAPMessage(op, id=mid).toWire()

    async def one(self, stop: asyncio.Event) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        buf = b""
        mid = 1
        try:
            while not stop.is_set():
                w.write(b"".join(self.request(mid + k) for k in range(self.depth)))
                mid += self.depth
                pending = self.depth
                while pending:
                    data = await r.read(65536)
                    if not data:
                        self.errors.append("connection closed")
                        return
                    buf += data
                    while (h := ber.header(buf, 0)) and len(buf) >= h[1] + h[2]:
                        frame = ber.split_message(buf[h[1]:h[1] + h[2]])
                        buf = buf[h[1] + h[2]:]
                        if frame.op_tag == ber.SEARCH_RESULT_DONE:
                            if frame.op[2:5] != b"\x0a\x01\x00":
                                self.errors.append(f"result {frame.op[:8].hex()}")
                            pending -= 1
                            self.done += 1
        finally:
            w.close()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self.one(stop) for _ in range(self.connections)))


async def _until(condition, what: str, limit: float = 60.0) -> None:
    """Wait for `condition()` (a condition wait with a deadline, not a sleep for timing)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_http_answers_while_ldap_is_loaded(shared_server, shared_demo):
    mails = [f"subscriber{i:04d}@example.hk" for i in range(60)]
    load = LdapLoad(shared_demo.ldap_port, mails)
    stop = asyncio.Event()
    task = asyncio.create_task(load.run(stop))
    try:
        async with aiohttp.ClientSession() as http:
            await _until(lambda: load.done >= 200 or load.errors, "the LDAP load to get going")
            assert not load.errors, load.errors[:3]
            start_count = load.done
            worst = 0.0
            for _ in range(30):
                for path in ("/crl/eCertCA2-17CRL1.crl", "/healthz", "/healthz/ocsp"):
                    t = time.monotonic()
                    async with http.get(shared_server.url + path) as resp:
                        assert resp.status == 200, path
                        await resp.read()
                    worst = max(worst, time.monotonic() - t)
            served_meanwhile = load.done - start_count
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert not load.errors, load.errors[:3]
    assert served_meanwhile > 100  # LDAP kept going while HTTP was answered
    assert worst < STALL_LIMIT, f"an HTTP request took {worst:.2f} s under LDAP load"


async def test_ldap_answers_while_http_is_loaded(shared_server, shared_demo):
    stop = asyncio.Event()
    http_done = 0
    http_errors: list[int] = []

    async def hammer(session: aiohttp.ClientSession) -> None:
        nonlocal http_done
        while not stop.is_set():
            async with session.get(shared_server.url + "/crl/eCertCA2-17CRL1.crl") as resp:
                await resp.read()
                if resp.status != 200:
                    http_errors.append(resp.status)
                http_done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
        tasks = [asyncio.create_task(hammer(session)) for _ in range(16)]
        try:
            await _until(lambda: http_done >= 200 or http_errors, "the HTTP load to get going")
            assert not http_errors, http_errors[:3]
            start_count = http_done
            want = http_get(f"{shared_server.url}/crl/eCertCA2-17CRL1.crl")
            lay = await asyncio.to_thread(discover, shared_demo.ldap_port)
            worst = 0.0
            for _ in range(15):
                t = time.monotonic()
                p = await asyncio.create_subprocess_exec(
                    "ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no",
                    "-H", f"ldap://127.0.0.1:{shared_demo.ldap_port}", "-b", lay.crl1, "-s", "base",
                    "(objectClass=*)", CRL, env=ENV, stdout=asyncio.subprocess.PIPE)
                out, _ = await p.communicate()
                worst = max(worst, time.monotonic() - t)
                assert p.returncode == 0 and ldif_values(out, CRL) == [want]
            served_meanwhile = http_done - start_count
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert not http_errors
    assert served_meanwhile > 100  # HTTP kept going while LDAP was answered
    assert worst < STALL_LIMIT, f"an ldapsearch took {worst:.2f} s under HTTP load"


def test_serve_refuses_to_start_when_the_ldap_port_is_taken(fresh_demo):
    import socket
    import sys
    from pathlib import Path

    pkirepo = str(Path(sys.executable).parent / "pkirepo")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run(
            [pkirepo, "serve", "--config", str(fresh_demo.config),
             "--http", f"127.0.0.1:{fresh_demo.http_port}", "--ldap", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert f"cannot listen for LDAP on 127.0.0.1:{port}" in p.stderr
    assert "pkirepo: serving on" not in p.stdout


def _wait_for(check, what: str, limit: float = STALL_LIMIT) -> float:
    """Poll `check()` until true; seconds it took.  A condition wait, not a timed sleep."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"{what}: not visible over LDAP"
        time.sleep(0.05)
    return time.monotonic() - start


def test_certificates_added_and_revoked_are_followed(fresh_demo, server_factory):
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    server_factory(fresh_demo)
    port = fresh_demo.ldap_port
    pki = fresh_demo.pki
    ca = cert_der(pki / "eCertCA2-17.pem")
    ca_key = serialization.load_pem_private_key((pki / "eCertCA2-17.key").read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    mail = "new.subscriber@example.hk"
    new = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "New Subscriber"),
                                    x509.NameAttribute(x509.NameOID.EMAIL_ADDRESS, mail)]))
           .issuer_name(ca.subject).public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
           .sign(ca_key, hashes.SHA256()))
    path = fresh_demo.dir / "new.pem"
    path.write_bytes(new.public_bytes(Encoding.PEM))

    def by_mail(m: str) -> list[bytes]:
        p = ldapsearch(port, "-b", "c=HK", f"(mail={m})", "userCertificate;binary")
        assert p.returncode == 0, p.stderr
        return ldif_values(p.stdout, "userCertificate;binary")

    assert by_mail(mail) == []
    fresh_demo.cli("cert", "add", str(path))
    _wait_for(lambda: by_mail(mail) == [new.public_bytes(Encoding.DER)], "added certificate")

    good = cert_der(pki / "good.pem")
    assert by_mail(email_of(good)) == [good.public_bytes(Encoding.DER)]
    fresh_demo.cli("revoke", "--issuer", "eCertCA2-17", "--serial", f"{good.serial_number:X}")
    _wait_for(lambda: by_mail(email_of(good)) == [], "revocation")
