"""Every CLI error exits non-zero (2 for bad input or a refused change), says what is wrong
and names the file, key or value at fault. Real `pkirepo` subprocesses over a private copy
of the demo; each refusal is checked to have changed nothing where that matters, and each
rule has its allowed counterpart (hold -> revoke, a valid certificate, a valid CRL), so the
refusals are not the command failing for some other reason.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crl_testlib import (CA, FULL, ROOT, copy_demo, free_port, load_cert, load_certs, parse_crl, run_cli,
                         template_demo)
from publisher import crl as crlmod
from publisher.signer import load_key_signer
from publisher.store import Status, serial_key

BAD_INPUT = 2


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("cli") / "demo")


@pytest.fixture(scope="module")
def good_serials(demo) -> list[str]:
    """Hex serials of subscriber certificates that are neither revoked nor held."""
    listed = {r.serial_number for r in x509.load_der_x509_crl((demo.crl_dir / f"{FULL}.crl").read_bytes())}
    out = [f"{c.serial_number:X}" for c in load_certs(demo.pki / "subscribers.pem") if c.serial_number not in listed]
    assert len(out) >= 6
    return out


def serial_of(demo, name: str) -> str:
    return f"{load_cert(demo.pki / name).serial_number:X}"


def err(p) -> str:
    return p.stderr + p.stdout


def assert_refused(p, *named: str, code: int = BAD_INPUT) -> None:
    assert p.returncode == code, (p.returncode, err(p))
    assert "Traceback" not in err(p), err(p)
    for text in named:
        assert text.lower() in err(p).lower(), (text, err(p))


def status_of(demo, serial: str) -> str:
    """good / revoked / held, as the store holds it (read directly: no CLI round trip)."""
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        rows = con.execute("SELECT status FROM certificates WHERE serial = ?", (serial_key(int(serial, 16)),)).fetchall()
    finally:
        con.close()
    assert len(rows) == 1, rows
    return {Status.GOOD: "good", Status.REVOKED: "revoked", Status.HOLD: "held"}[Status(rows[0][0])]


def published_status(demo, serial: str) -> str:
    """good / revoked / held as the next full CRL says (publish, then read)."""
    p = demo.cli("publish", "--issuer", CA)
    assert p.returncode == 0, err(p)
    crl = x509.load_der_x509_crl((demo.crl_dir / f"{FULL}.crl").read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    if entry is None:
        return "good"
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    return "held" if reason is x509.ReasonFlags.certificate_hold else "revoked"


# Status changes


def test_status_change_refusals(demo, good_serials):
    revoked, held = serial_of(demo, "revoked.pem"), serial_of(demo, "held.pem")
    g = good_serials[0]
    cases = [
        (("revoke", "--issuer", "NoSuchCA", "--serial", g), ["unknown issuer", "NoSuchCA", CA]),
        (("revoke", "--issuer", CA, "--serial", "XYZ"), ["--serial", "'XYZ'", "not a hexadecimal serial"]),
        (("revoke", "--issuer", CA, "--serial", "A" * 43), ["--serial", "longer than 20 octets"]),
        (("revoke", "--issuer", CA, "--serial", "0BADC0FFEE"), ["no certificate", "0BADC0FFEE"]),
        (("revoke", "--issuer", ROOT, "--serial", g), ["no certificate", g]),  # right serial, wrong CA
        (("revoke", "--issuer", CA, "--serial", g, "--reason", "bogus"), ["--reason", "'bogus'", "keyCompromise"]),
        (("revoke", "--issuer", CA, "--serial", g, "--reason", "certificateHold"), ["certificateHold", "hold"]),
        (("revoke", "--issuer", CA, "--serial", g, "--reason", "removeFromCRL"), ["removeFromCRL"]),
        (("revoke", "--issuer", CA, "--serial", g, "--time", "yesterday"), ["--time", "'yesterday'"]),
        (("revoke", "--issuer", CA, "--serial", g, "--time", "2099-01-01T00:00:00Z"), ["2099-01-01", "future"]),
        (("revoke", "--issuer", CA, "--serial", g, "--time", "2026-01-01T00:00:00Z",
          "--invalidity-date", "2026-02-01T00:00:00Z"), ["invalidity date"]),
        (("revoke", "--issuer", CA, "--serial", revoked), [revoked, "already revoked"]),  # double revocation
        (("hold", "--issuer", CA, "--serial", revoked), [revoked, "already revoked"]),
        (("release", "--issuer", CA, "--serial", revoked), [revoked, "final"]),
        (("hold", "--issuer", CA, "--serial", held), [held, "already on hold"]),
        (("release", "--issuer", CA, "--serial", g), [g, "not on hold"]),  # release of a good cert
        (("hold", "--issuer", CA), ["--serial"]),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: demo.cli(*c[0]), cases))
    for (args, named), p in zip(cases, results):
        assert_refused(p, *named)
    assert status_of(demo, g) == "good", "a refused change changed nothing"
    assert status_of(demo, revoked) == "revoked"


def test_serial_and_time_refusals(demo, good_serials):
    """Values int() or fromisoformat() would take but that name no certificate or no
    publishable time: each refused with exit 2 and the value named, nothing changed."""
    g = good_serials[4]
    cert = next(c for c in load_certs(demo.pki / "subscribers.pem") if c.serial_number == int(g, 16))
    before = (cert.not_valid_before - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    revoke = ("revoke", "--issuer", CA)
    cases = [
        ((*revoke, "--serial", "-1"), ["--serial", "'-1'", "positive"]),
        ((*revoke, "--serial", "0x-1"), ["--serial", "'0x-1'", "positive"]),
        ((*revoke, "--serial", "+" + g), ["--serial", "positive"]),
        ((*revoke, "--serial", "01" + "FF" * 20), ["--serial", "01FFFF", "longer than 20 octets"]),
        ((*revoke, "--serial", "\u0661\u0660"), ["--serial", "not a hexadecimal serial"]),  # Arabic-Indic 10
        ((*revoke, "--serial", "\uff11\uff10"), ["--serial", "not a hexadecimal serial"]),  # full-width 10
        ((*revoke, "--serial", "1_0"), ["--serial", "'1_0'", "not a hexadecimal serial"]),
        ((*revoke, "--serial", "0x"), ["--serial", "'0x'", "not a hexadecimal serial"]),
        ((*revoke, "--serial", g, "--time", "0001-01-01T00:00:00Z"), ["--time", "0001-01-01", "before 1950"]),
        ((*revoke, "--serial", g, "--time", "1949-12-31T23:59:59Z"), ["--time", "1949-12-31", "before 1950"]),
        ((*revoke, "--serial", g, "--time", "0001-01-01T00:00:00+01:00"), ["--time", "0001-01-01", "not a time"]),
        ((*revoke, "--serial", g, "--time", "9999-12-31T23:59:59-01:00"), ["--time", "9999-12-31", "not a time"]),
        ((*revoke, "--serial", g, "--time", "\u0662\u0660\u0662\u0666" + "0101000000Z"), ["--time", "not a time"]),
        ((*revoke, "--serial", g, "--time", "9999-12-31T23:59:59Z"), ["9999-12-31", "future"]),
        ((*revoke, "--serial", g, "--time", before), [before[:10], "before certificate", g, "notBefore"]),
        ((*revoke, "--serial", g, "--time", "2026-01-01T00:00:00Z", "--invalidity-date", "0001-01-01"),
         ["--invalidity-date", "0001-01-01", "before 1950"]),
        (("hold", "--issuer", CA, "--serial", g, "--time", before), ["before certificate", "notBefore"]),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: demo.cli(*c[0]), cases))
    for (args, named), p in zip(cases, results):
        assert_refused(p, *named)
    assert status_of(demo, g) == "good", "a refused change changed nothing"
    # The edge is allowed: revoked at the very second the certificate became valid.
    at = cert.not_valid_before
    p = demo.cli(*revoke, "--serial", g, "--time", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert p.returncode == 0, err(p)
    assert demo.cli("publish", "--issuer", CA).returncode == 0
    crl = x509.load_der_x509_crl((demo.crl_dir / f"{FULL}.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(g, 16)).revocation_date_utc == at


def test_revoke_twice_and_revoke_after_revoke(demo, good_serials):
    s = good_serials[1]
    assert demo.cli("revoke", "--issuer", CA, "--serial", s, "--reason", "superseded").returncode == 0
    assert_refused(demo.cli("revoke", "--issuer", CA, "--serial", s, "--reason", "keyCompromise"), s, "already revoked")
    assert_refused(demo.cli("release", "--issuer", CA, "--serial", s), s, "final")
    assert status_of(demo, s) == "revoked"


def test_hold_then_revoke_is_allowed_and_then_final(demo, good_serials):
    s = good_serials[2]
    p = demo.cli("hold", "--issuer", CA, "--serial", s)
    assert p.returncode == 0 and "hold" in p.stdout, err(p)
    assert status_of(demo, s) == "held" == published_status(demo, s)
    p = demo.cli("revoke", "--issuer", CA, "--serial", s.lower(), "--reason", "keyCompromise")
    assert p.returncode == 0 and "revoked" in p.stdout, err(p)
    assert status_of(demo, s) == "revoked" == published_status(demo, s)
    assert_refused(demo.cli("release", "--issuer", CA, "--serial", s), s, "final")


def test_hold_release_then_release_again(demo, good_serials):
    s = good_serials[3]
    assert demo.cli("hold", "--issuer", CA, "--serial", s).returncode == 0
    assert demo.cli("release", "--issuer", CA, "--serial", s).returncode == 0
    assert status_of(demo, s) == "good"
    assert_refused(demo.cli("release", "--issuer", CA, "--serial", s), s, "not on hold")


# cert add


def _issue(issuer_cert: x509.Certificate, issuer_key, serial: int, *, subject_cn: str = "CLI test") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(issuer_cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def _ca(demo):
    cert = x509.load_pem_x509_certificate((demo.pki / f"{CA}.pem").read_bytes())
    key = serialization.load_pem_private_key((demo.pki / f"{CA}.key").read_bytes(), None)
    return cert, key


def test_cert_add_refusals(demo, tmp_path):
    ca_cert, ca_key = _ca(demo)
    # Unknown issuer: a certificate from a CA that is not configured.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unknown CA")]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unknown CA")]))
             .public_key(other_key.public_key()).serial_number(1)
             .not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
             .sign(other_key, hashes.SHA256()))
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(_issue(other, other_key, 0x51).public_bytes(serialization.Encoding.PEM))
    # Same issuer name as our CA, but signed by another (EC) key.
    forged = tmp_path / "forged.der"
    forged.write_bytes(_issue(ca_cert, other_key, 0x52).public_bytes(serialization.Encoding.DER))
    # A real certificate from our CA with one byte of its signature changed.
    real = _issue(ca_cert, ca_key, 0x53).public_bytes(serialization.Encoding.DER)
    tampered = tmp_path / "tampered.der"
    tampered.write_bytes(real[:-3] + bytes([real[-3] ^ 0x01]) + real[-2:])
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(os.urandom(300))
    half = tmp_path / "half.pem"
    half.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cases = [
        ((str(stranger),), ["stranger.pem", "CN=Unknown CA", "not a configured CA"]),
        ((str(forged),), ["forged.der", "not issued by", "Demo e-Cert CA 2 - 17"]),
        ((str(tampered),), ["tampered.der", "signature does not verify"]),
        ((str(demo.pki / "good.pem"),), [serial_of(demo, "good.pem"), "already in the repository"]),  # duplicate
        ((str(garbage),), ["garbage.der", "not a certificate"]),
        ((str(half),), ["half.pem", "not a certificate"]),
        ((str(tmp_path / "missing.pem"),), ["missing.pem", "cannot read"]),
        ((str(demo.pki / f"{ROOT}.pem"),), ["no certificate to add"]),  # only a configured CA
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: demo.cli("cert", "add", *c[0]), cases))
    for (args, named), p in zip(cases, results):
        assert_refused(p, *named)
    # All or nothing: a good certificate together with a bad one adds neither.
    ok = tmp_path / "ok.der"
    ok.write_bytes(real)
    assert_refused(demo.cli("cert", "add", str(ok), str(tampered)), "tampered.der")
    assert_refused(demo.cli("release", "--issuer", CA, "--serial", "53"), "no certificate")
    # The untampered certificate is accepted: the refusals above were about the defects.
    p = demo.cli("cert", "add", str(ok))
    assert p.returncode == 0 and "added 1" in p.stdout, err(p)
    assert_refused(demo.cli("cert", "add", str(ok)), "53", "already in the repository")


# crl add


def _crl(demo, number: int, *, this_update: dt.datetime | None = None) -> bytes:
    """A CRL of our CA signed with its key (as an offline CA would hand it in), listing what
    the published full CRL lists."""
    signer = load_key_signer(demo.pki / f"{CA}.key")
    ca = load_cert(demo.pki / f"{CA}.pem")
    now = this_update or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    params = crlmod.CrlParams(issuer_name_der=ca.subject.dump(), authority_key_id=ca.key_identifier,
                              this_update=now, next_update=now + dt.timedelta(hours=24), number=number)
    published = parse_crl((demo.crl_dir / f"{FULL}.crl").read_bytes())
    entries = b"".join(e.dump() for e in published["tbs_cert_list"]["revoked_certificates"])
    return crlmod.sign_crl(signer, params, entries)


def test_crl_add_refusals(demo, tmp_path):
    current = x509.load_der_x509_crl((demo.crl_dir / f"{FULL}.crl").read_bytes())
    n = current.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    same = tmp_path / "same.crl"
    same.write_bytes(_crl(demo, n))
    lower = tmp_path / "lower.crl"
    lower.write_bytes(_crl(demo, max(n - 1, 0)))
    good = bytearray(_crl(demo, n + 100))
    badsig = tmp_path / "badsig.crl"
    badsig.write_bytes(bytes(good[:-4]) + bytes([good[-4] ^ 0x40]) + bytes(good[-3:]))
    garbage = tmp_path / "garbage.crl"
    garbage.write_bytes(b"\x30\x82\x01\x00" + os.urandom(40))
    cases = [
        (same, ["CRL number", str(n), "does not exceed"]),
        (lower, ["CRL number", "does not exceed"]),
        (badsig, ["badsig.crl", "signature does not verify"]),
        (garbage, ["garbage.crl", "not a CRL"]),
        (demo.pki / "good.pem", ["good.pem", "not a CRL"]),
        (tmp_path / "missing.crl", ["missing.crl", "cannot read"]),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda c: demo.cli("crl", "add", str(c[0])), cases))
    for (path, named), p in zip(cases, results):
        assert_refused(p, *named)
    assert x509.load_der_x509_crl((demo.crl_dir / f"{FULL}.crl").read_bytes()) == current, "nothing published"
    # The same CRL with its signature intact is published, as is.
    ok = tmp_path / "ok.crl"
    ok.write_bytes(bytes(good))
    p = demo.cli("crl", "add", str(ok))
    assert p.returncode == 0, err(p)
    assert (demo.crl_dir / f"{FULL}.crl").read_bytes() == bytes(good)
    assert_refused(demo.cli("crl", "add", str(ok)), str(n + 100), "does not exceed")


# Configuration


def _variant(demo, name: str, old: str, new: str) -> Path:
    text = demo.config.read_text()
    assert old in text, old
    path = demo.dir / f"{name}.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_config_errors(demo, tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[store\npath = 1\n")
    cases = [
        (tmp_path / "none.toml", ["none.toml", "config file not found"]),
        (bad_toml, ["bad.toml", "not valid TOML", "line 1"]),
        (_variant(demo, "unknown-key", "[crl]\n", "[crl]\nnext_update_hourz = 12\n"),
         ["unknown-key.toml", "[crl]", "unknown key", "next_update_hourz"]),
        (_variant(demo, "unknown-section", "[store]\n", "[stor]\nx = 1\n\n[store]\n"), ["unknown key", "stor"]),
        (_variant(demo, "delay", "supplementary_delay_seconds = 0", "supplementary_delay_seconds = 90000"),
         ["delay.toml", "crl.supplementary_delay_seconds", "at most 86400", "90000"]),
        (_variant(demo, "delay-type", "supplementary_delay_seconds = 0", 'supplementary_delay_seconds = "5m"'),
         ["crl.supplementary_delay_seconds", "integer", "5m"]),
        (_variant(demo, "next-update", "next_update_hours = 24", "next_update_hours = 0"),
         ["crl.next_update_hours", "at least 1"]),
        (_variant(demo, "daily", 'daily = ["', 'daily = ["25:00", "'), ["crl.daily", "25:00"]),
        (_variant(demo, "reason", 'reason_unspecified = "omit"', 'reason_unspecified = "maybe"'),
         ["crl.reason_unspecified", "maybe"]),
        (_variant(demo, "listen", 'listen = "127.0.0.1:', 'listen = "nowhere'), ["http.listen", "HOST:PORT"]),
        (_variant(demo, "cert", 'certificate = "pki/RootCA2.pem"', 'certificate = "pki/nope.pem"'),
         ["ca[0].certificate", "nope.pem"]),
        (_variant(demo, "name", 'full_crl = "eCertCA2-17CRL1"', 'full_crl = "../x"'), ["ca[1].full_crl", "../x"]),
        (_variant(demo, "dup", 'full_crl = "eCertCA2-17CRL1"', 'full_crl = "RootCA2ARL"'),
         ["full_crl", "RootCA2ARL", "used twice"]),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: run_cli("crl", "list", "--config", str(c[0])), cases))
    for (path, named), p in zip(cases, results):
        assert_refused(p, *named)
    assert demo.cli("crl", "list").returncode == 0, "the unmodified config is fine"


def test_default_config_is_named(tmp_path):
    p = run_cli("crl", "list", env={"PKIREPO_CONFIG": str(tmp_path / "env.toml")})
    assert_refused(p, "env.toml", "not found")


def test_key_file_readable_by_others_is_refused(demo, tmp_path):
    key = demo.pki / "loose.key"
    key.write_bytes((demo.pki / f"{CA}.key").read_bytes())
    key.chmod(0o644)
    cfg = _variant(demo, "loose", f'key = "pki/{CA}.key"', 'key = "pki/loose.key"')
    for args in (("publish",), ("serve", "--http", f"127.0.0.1:{free_port()}", "--ldap", f"127.0.0.1:{free_port()}")):
        p = run_cli(*args, "--config", str(cfg), timeout=30)  # serve must refuse before listening
        assert_refused(p, "ca[1].key", "loose.key", "group or others", "644", "chmod 600")
    key.chmod(0o600)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    p = run_cli("publish", "--issuer", CA, "--config", str(cfg))
    assert p.returncode == 0, err(p)


def test_serve_refuses_an_http_address_it_cannot_listen_on(demo):
    """As for LDAP: exit 2 naming the address and the reason, no traceback, not serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [(f"127.0.0.1:{port}", [f"cannot listen for HTTP on 127.0.0.1:{port}", "in use"]),
                 # TEST-NET-1 (RFC 5737): an address no interface of this host has.
                 ("192.0.2.1:8080", ["cannot listen for HTTP on 192.0.2.1:8080"])]
        for http, named in cases:
            p = run_cli("serve", "--config", str(demo.config), "--http", http, "--ldap", f"127.0.0.1:{free_port()}",
                        timeout=60)
            assert_refused(p, *named)
            assert "serving on" not in p.stdout


# import openssl-index

GOOD_LINE = "V\t301231000000Z\t\t0A01\tunknown\t/CN=a\n"
BAD_INDEX_LINES = [
    ("V\t301231000000Z\t\t0A02\tunknown\n", "expected 6 tab-separated fields"),
    ("X\t301231000000Z\t\t0A02\tunknown\t/CN=b\n", "status 'X'"),
    ("V\t3012310000Z\t\t0A02\tunknown\t/CN=b\n", "expiry"),
    ("V\t301231000000Z\t\tZZ\tunknown\t/CN=b\n", "serial 'ZZ' is not hex"),
    ("R\t301231000000Z\t251301000000Z\t0A02\tunknown\t/CN=b\n", "revocation date"),
    ("R\t301231000000Z\t250101000000Z,sleepy\t0A02\tunknown\t/CN=b\n", "unknown revocation reason 'sleepy'"),
    ("R\t301231000000Z\t250101000000Z,removeFromCRL\t0A02\tunknown\t/CN=b\n", "removeFromCRL"),
    ("V\t301231000000Z\t250101000000Z\t0A02\tunknown\t/CN=b\n", "revocation field"),
    ("V\t301231000000Z\t\t0A01\tunknown\t/CN=again\n", "serial A01 appears twice"),
]


# The last three were found by this suite: before the fix in publisher/openssl_index.py
# "-05" and a non-UTF-8 byte ended in a Python traceback (exit 1, no file:line) and "+05"
# was silently taken as serial 5.
BAD_INDEX_LINES += [
    ("V\t301231000000Z\t\t-05\tunknown\t/CN=b\n", "serial '-05' is not hex"),
    ("V\t301231000000Z\t\t+05\tunknown\t/CN=b\n", "serial '+05' is not hex"),
    (b"V\t301231000000Z\t\t0A02\tunknown\t/CN=\xff\xfe\n", "not UTF-8"),
]


def test_import_bad_line_names_file_and_line(demo, tmp_path):
    """Each bad line is line 3 of its index (a blank line between); nothing is imported."""
    def run(i: int):
        line, _ = BAD_INDEX_LINES[i]
        index = tmp_path / f"index{i}.txt"
        index.write_bytes(GOOD_LINE.encode() + b"\n" + (line if isinstance(line, bytes) else line.encode()))
        return index, demo.cli("import", "openssl-index", str(index), "--ca", str(demo.pki / f"{CA}.pem"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(len(BAD_INDEX_LINES))))
    for (line, reason), (index, p) in zip(BAD_INDEX_LINES, results):
        assert_refused(p, f"{index}:3:", reason)
    assert_refused(demo.cli("release", "--issuer", CA, "--serial", "0A01"), "no certificate")  # all or nothing


def test_import_other_errors(demo, tmp_path):
    index = tmp_path / "index.txt"
    index.write_text(GOOD_LINE)
    assert_refused(demo.cli("import", "openssl-index", str(tmp_path / "none.txt"), "--ca", str(demo.pki / f"{CA}.pem")),
                   "none.txt", "cannot read")
    assert_refused(demo.cli("import", "openssl-index", str(index), "--ca", str(demo.pki / "RetiredCA2-16.pem")),
                   "RetiredCA2-16.pem", "not configured")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert_refused(demo.cli("import", "openssl-index", str(empty), "--ca", str(demo.pki / f"{CA}.pem")),
                   "empty.txt", "no certificates")
