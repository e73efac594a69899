"""Tests for publisher.demo_pki: shape, chains, planned changes, and pkilint."""
from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from publisher.demo_pki import GCERT_POLICY_OID, REASONS, DemoPki, make_demo_pki

NOW = dt.datetime(2026, 3, 1, 1, 15, 0, tzinfo=dt.timezone.utc)
BASE = "http://repo.example.test:8080"
N = 50
LINT_PKIX_CERT = Path(sys.executable).parent / "lint_pkix_cert"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[DemoPki, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    pki = make_demo_pki(
        tmp_path_factory.mktemp("demo"),
        base_url=BASE + "/",
        subscribers=N,
        now=NOW,
        progress=lambda done, total: calls.append((done, total)),
    )
    return pki, calls


@pytest.fixture(scope="module")
def pki(made) -> DemoPki:
    return made[0]


def load(path: Path) -> x509.Certificate:
    (cert,) = x509.load_pem_x509_certificates(path.read_bytes())
    return cert


def subscribers(pki: DemoPki) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pki.subscribers.read_bytes())


def ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def cdp_url(cert: x509.Certificate) -> str:
    (dp,) = ext(cert, x509.CRLDistributionPoints).value
    (name,) = dp.full_name
    return name.value


def der_serial_length(serial: int) -> int:
    # Content octets of a positive DER INTEGER: one more than needed if the top bit is set.
    return serial.bit_length() // 8 + 1


def test_make_demo_pki_writes_every_file_under_pki(pki):
    for field in ("root", "root_key", "ca", "ca_key", "revoked_ca", "ocsp_root", "ocsp_root_key",
                  "ocsp_ca", "ocsp_ca_key", "subscribers", "good", "revoked", "held"):
        path = getattr(pki, field)
        assert path.parent.name == "pki" and path.is_file(), field


def test_progress_reports_each_subscriber(made):
    _, calls = made
    assert calls == [(i, N) for i in range(1, N + 1)]


def test_key_files_are_private_pkcs8_and_match_their_certificates(pki):
    pairs = [(pki.root_key, pki.root), (pki.ca_key, pki.ca),
             (pki.ocsp_root_key, pki.ocsp_root), (pki.ocsp_ca_key, pki.ocsp_ca)]
    for key_path, cert_path in pairs:
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600, key_path
        pem = key_path.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
        key = serialization.load_pem_private_key(pem, password=None)
        assert key.key_size == 2048
        assert key.public_key() == load(cert_path).public_key()


def test_every_certificate_parses_and_chains_verify(pki):
    root, ca, retired = load(pki.root), load(pki.ca), load(pki.revoked_ca)
    root.verify_directly_issued_by(root)
    for cert in (ca, retired, load(pki.ocsp_root)):
        cert.verify_directly_issued_by(root)
    subs = subscribers(pki)
    assert len(subs) == N
    for cert in [load(pki.ocsp_ca), load(pki.good), load(pki.revoked), load(pki.held), *subs]:
        cert.verify_directly_issued_by(ca)
    for cert in [root, ca, retired, *subs]:
        assert cert.version == x509.Version.v3
        assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
        assert cert.public_key().key_size == 2048


def test_serials_are_20_octets_and_unique(pki):
    certs = [load(p) for p in (pki.root, pki.ca, pki.revoked_ca, pki.ocsp_root, pki.ocsp_ca)]
    certs += subscribers(pki)
    serials = [c.serial_number for c in certs]
    assert all(s > 0 and der_serial_length(s) == 20 for s in serials)
    assert len(set(serials)) == len(serials)


def test_ca_certificates(pki):
    root, ca, retired = load(pki.root), load(pki.ca), load(pki.revoked_ca)
    assert root.subject.rfc4514_string() == "CN=Demo Root CA 2,O=Hongkong Post Demo,C=HK"
    assert root.not_valid_before_utc == NOW.replace(year=2025)
    assert root.not_valid_after_utc == NOW.replace(year=2045)
    assert ca.subject.rfc4514_string() == (
        "CN=Demo e-Cert CA 2 - 17,O=Hongkong Post Demo,L=Hong Kong,ST=Hong Kong,C=HK"
    )
    assert retired.subject.rfc4514_string() == "CN=Demo Retired CA 2 - 16,O=Hongkong Post Demo,C=HK"
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    for cert in (ca, retired):
        assert cert.not_valid_after_utc == NOW.replace(year=2035)
        bc = ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert cdp_url(cert) == BASE + "/crl/RootCA2ARL.crl"
        (ocsp,) = ext(cert, x509.AuthorityInformationAccess).value
        assert ocsp.access_location.value == BASE + "/ocsp"
        assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (
            ext(root, x509.SubjectKeyIdentifier).value.digest
        )


@pytest.mark.parametrize("which", ["ocsp_root", "ocsp_ca"])
def test_ocsp_responder_certificates(pki, which):
    cert = load(getattr(pki, which))
    assert ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    nocheck = ext(cert, x509.OCSPNoCheck)
    assert not nocheck.critical and nocheck.value.public_bytes() == b"\x05\x00"
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert not ext(cert, x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc == NOW - dt.timedelta(days=1)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=365)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.endswith("OCSP Responder")


def test_subscriber_shape_follows_cps_appendix_b(pki):
    ca = load(pki.ca)
    ca_ski = ext(ca, x509.SubjectKeyIdentifier).value.digest
    for i, cert in enumerate(subscribers(pki)):
        email = f"subscriber{i:04d}@example.hk"
        assert cert.subject == x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Demo Organisation"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Demo Unit"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, email),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Demo Subscriber {i:04d}"),
        ])
        assert ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.RFC822Name) == [email]
        ku = ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment
        eku = ext(cert, x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
        (policy,) = ext(cert, x509.CertificatePolicies).value
        assert policy.policy_identifier == GCERT_POLICY_OID
        assert policy.policy_qualifiers == [BASE + "/cps"]
        assert cdp_url(cert) == pki.partition_urls[i % 3]
        aia = {(a.access_method, a.access_location.value) for a in ext(cert, x509.AuthorityInformationAccess).value}
        assert aia == {
            (AuthorityInformationAccessOID.OCSP, BASE + "/ocsp"),
            (AuthorityInformationAccessOID.CA_ISSUERS, BASE + "/ca/eCertCA2-17.cer"),
        }


def test_partition_urls(pki):
    assert pki.partition_urls == tuple(f"{BASE}/crl/eCertCA2-17CRL{k}.crl" for k in (2, 3, 4))


def test_some_subscribers_are_expired_and_the_rest_current(pki):
    subs = subscribers(pki)
    expired = [c for c in subs if c.not_valid_after_utc < NOW]
    assert 1 <= len(expired) <= 0.05 * N
    for cert in subs:
        assert cert.not_valid_before_utc >= load(pki.ca).not_valid_before_utc
        if cert not in expired:
            assert cert.not_valid_before_utc == NOW - dt.timedelta(days=60)
            assert cert.not_valid_after_utc == NOW.replace(year=2029)


def test_planned_changes(pki):
    subs = {c.serial_number: c for c in subscribers(pki)}
    retired = load(pki.revoked_ca)
    good, revoked, held = load(pki.good), load(pki.revoked), load(pki.held)
    changes = pki.changes
    assert list(changes) == sorted(changes, key=lambda c: (c.time, c.issuer, c.serial))
    assert len({(c.issuer, c.serial) for c in changes}) == len(changes)
    for c in changes:
        assert c.time.tzinfo is not None and c.time < NOW
        assert c.action in ("revoke", "hold")
        assert c.reason is None or c.reason in REASONS
        assert c.invalidity is None or c.time - dt.timedelta(days=2) <= c.invalidity < c.time
        if c.issuer == "eCertCA2-17":
            cert = subs[c.serial]
            assert cert.not_valid_before_utc <= c.time <= cert.not_valid_after_utc

    by_serial = {(c.issuer, c.serial): c for c in changes}
    assert by_serial[("RootCA2", retired.serial_number)].reason == "superseded"
    assert by_serial[("RootCA2", retired.serial_number)].time == NOW - dt.timedelta(days=30)
    assert [c.issuer for c in changes].count("RootCA2") == 1

    (hold,) = [c for c in changes if c.action == "hold"]
    assert (hold.serial, hold.reason, hold.invalidity) == (held.serial_number, None, None)
    assert by_serial[("eCertCA2-17", revoked.serial_number)].reason == "keyCompromise"
    assert ("eCertCA2-17", good.serial_number) not in by_serial
    for sample in (good, revoked, held):
        assert sample.serial_number in subs
        assert sample.not_valid_before_utc <= NOW < sample.not_valid_after_utc

    revocations = [c for c in changes if c.issuer == "eCertCA2-17" and c.action == "revoke"]
    current = [c for c in revocations if subs[c.serial].not_valid_after_utc > NOW]
    assert all(NOW - dt.timedelta(days=30) < c.time for c in current)
    assert len({c.reason for c in revocations}) >= 3
    assert any(c.invalidity is not None for c in revocations)
    # Each partition has a revocation on a current certificate, so partitioned CRLs are never
    # empty even when a CRL expiry policy drops the expired ones.
    assert Counter(cdp_url(subs[c.serial]) for c in current).keys() == set(pki.partition_urls)


def test_times_derive_from_now_only(tmp_path):
    a = make_demo_pki(tmp_path / "a", base_url=BASE, subscribers=12, now=NOW)
    b = make_demo_pki(tmp_path / "b", base_url=BASE, subscribers=12, now=NOW)
    shape = lambda pki: [(c.issuer, c.action, c.reason, c.time, c.invalidity) for c in pki.changes]  # noqa: E731
    assert shape(a) == shape(b)
    assert [c.not_valid_after_utc for c in subscribers(a)] == [c.not_valid_after_utc for c in subscribers(b)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"now": NOW.replace(tzinfo=None)}, "now must be timezone-aware"),
        ({"subscribers": 9}, "subscribers must be at least 10"),
        ({"base_url": "ldap://x"}, "base_url must be an http"),
    ],
)
def test_make_demo_pki_rejects_bad_arguments(tmp_path, kwargs, message):
    args = {"base_url": BASE, "subscribers": 10, "now": NOW} | kwargs
    with pytest.raises(ValueError, match=message):
        make_demo_pki(tmp_path, **args)


@pytest.mark.parametrize("which", ["root", "ca", "revoked_ca", "ocsp_root", "ocsp_ca", "good"])
def test_pkilint_pkix_finds_no_errors(pki, which):
    # The only findings below WARNING are INFO (SKI method 1) and NOTICE (policy qualifier
    # present: RFC 5280 discourages it, CPS Appendix B requires the CPS URL).
    result = subprocess.run(
        [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", str(getattr(pki, which))],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(ERROR)" not in result.stdout and "(FATAL)" not in result.stdout, result.stdout
