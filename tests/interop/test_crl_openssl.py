"""openssl as the relying party for what the running server publishes, plus our own checks
of the CRL semantics no linter covers (IDP, partitions, ARL, ordering, numbering).

Everything is fetched over HTTP from `pkirepo serve` (the session's shared server, read
only). `openssl crl -verify` and `openssl verify` are judged by their text as well as the
exit code: `openssl crl -verify` exits 0 on "verify failure".
"""
from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import crl as asn1_crl
from cryptography.hazmat.primitives.asymmetric import rsa

from crl_testlib import (
    ALL_CRLS, ARL, FULL, PARTITIONS, cdp_url, crl_serials, der_to_pem_crl, fetch, index, load_cert, load_certs,
    openssl, openssl_text, parse_crl, sha256, tbs_tags,
)
from publisher import crl as crlmod
from publisher import der as derlib
from publisher.signer import KeySigner

OID_IDP = "issuing_distribution_point"


@pytest.fixture(scope="module")
def served(shared_server) -> dict[str, bytes]:
    """Every current CRL, fetched over HTTP, by name."""
    idx = index(shared_server.url)
    assert set(idx) == set(ALL_CRLS), sorted(idx)
    return {name: fetch(entry["url"]) for name, entry in idx.items()}


@pytest.fixture(scope="module")
def pems(served, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("crl-pem")
    return {name: der_to_pem_crl(der, d / f"{name}.pem") for name, der in served.items()}


@pytest.fixture(scope="module")
def chain(shared_demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "root+ca.pem"
    path.write_bytes((shared_demo.pki / "RootCA2.pem").read_bytes() + (shared_demo.pki / "eCertCA2-17.pem").read_bytes())
    return path


def idp_of(c: asn1_crl.CertificateList):
    """(critical, value) of the IssuingDistributionPoint extension, or None."""
    for ext in c["tbs_cert_list"]["crl_extensions"]:
        if ext["extn_id"].native == OID_IDP:
            return ext["critical"].native, ext["extn_value"].parsed
    return None


def idp_urls(idp) -> list[str]:
    return [n.native for n in idp["distribution_point"].chosen if n.name == "uniform_resource_identifier"]


# Parsing and signatures


@pytest.mark.parametrize("name", ALL_CRLS)
def test_openssl_parses_every_served_crl(served, name):
    p = openssl("crl", "-inform", "DER", "-text", "-noout", input=served[name])
    text = openssl_text(p)
    assert p.returncode == 0, text
    assert "Certificate Revocation List (CRL):" in text and "Version 2 (0x1)" in text
    assert "Signature Algorithm: sha256WithRSAEncryption" in text
    assert "X509v3 CRL Number:" in text and "X509v3 Authority Key Identifier:" in text
    assert "unable to load" not in text.lower()


def test_index_lists_exactly_what_is_served(shared_server, served):
    """Every index entry's size, SHA-256 and CRL number describe the bytes served at its URL."""
    for name, entry in index(shared_server.url).items():
        der = served[name]
        assert entry["sha256"] == sha256(der), name
        assert entry["size"] == len(der), name
        c = parse_crl(der)
        assert entry["crl_number"] == c.crl_number_value.native, name
        assert entry["entries"] == len(c["tbs_cert_list"]["revoked_certificates"]), name
        assert entry["kind"] == {"RootCA2ARL": "arl", FULL: "full"}.get(name, "partition")


@pytest.mark.parametrize("name,issuer", [(ARL, "RootCA2.pem")] + [(n, "eCertCA2-17.pem") for n in (FULL, *PARTITIONS)])
def test_crl_signature_verifies_against_its_issuer(shared_demo, pems, name, issuer):
    p = openssl("crl", "-in", str(pems[name]), "-noout", "-verify", "-CAfile", str(shared_demo.pki / issuer))
    text = openssl_text(p)
    assert "verify OK" in text and "verify failure" not in text, text


def test_crl_signature_check_is_not_vacuous(shared_demo, pems, served, tmp_path):
    """The check above can fail: a flipped signature bit prints "verify failure" (exit 0
    notwithstanding in openssl 3.0) and the wrong issuer's key is refused."""
    der = bytearray(served[FULL])
    der[-5] ^= 0x01
    bad = der_to_pem_crl(bytes(der), tmp_path / "bad.pem")
    p = openssl("crl", "-in", str(bad), "-noout", "-verify", "-CAfile", str(shared_demo.pki / "eCertCA2-17.pem"))
    assert "verify failure" in openssl_text(p), openssl_text(p)
    p = openssl("crl", "-in", str(pems[FULL]), "-noout", "-verify", "-CAfile", str(shared_demo.pki / "RootCA2.pem"))
    assert "verify OK" not in openssl_text(p), openssl_text(p)


# openssl verify -crl_check with our CRLs


def _verify(chain, crl_pem, cert, *flags) -> str:
    p = openssl("verify", *flags, "-CAfile", str(chain), "-CRLfile", str(crl_pem), str(cert))
    text = openssl_text(p)
    ok = p.returncode == 0 and text.strip().endswith(": OK")
    return "OK" if ok else text


def _partition_of(shared_demo, sample: str) -> str:
    url = cdp_url(load_cert(shared_demo.pki / sample))
    name = url.rsplit("/", 1)[1].removesuffix(".crl")
    assert name in PARTITIONS, url
    return name


def test_verify_good_certificate_with_its_partition_and_full_crl(shared_demo, pems, chain):
    good = shared_demo.pki / "good.pem"
    part = _partition_of(shared_demo, "good.pem")
    assert _verify(chain, pems[part], good, "-crl_check") == "OK"
    assert _verify(chain, pems[FULL], good, "-crl_check") == "OK"


@pytest.mark.parametrize("sample", ["revoked.pem", "held.pem"])
@pytest.mark.parametrize("which", ["partition", "full"])
def test_verify_rejects_revoked_and_held(shared_demo, pems, chain, sample, which):
    crl = pems[_partition_of(shared_demo, sample) if which == "partition" else FULL]
    text = _verify(chain, crl, shared_demo.pki / sample, "-crl_check")
    assert "certificate revoked" in text, text
    assert "error 23 at 0 depth" in text, text


def test_verify_partition_scope_is_checked(shared_demo, pems, chain):
    """A partition that the certificate's CDP does not name is out of scope for openssl:
    evidence that the IDP fullName is what openssl matches against the CDP."""
    part = _partition_of(shared_demo, "good.pem")
    other = next(p for p in PARTITIONS if p != part)
    text = _verify(chain, pems[other], shared_demo.pki / "good.pem", "-crl_check")
    assert "different CRL scope" in text, text


def test_arl_rejects_the_retired_ca_and_accepts_the_issuing_ca(shared_demo, pems):
    root = shared_demo.pki / "RootCA2.pem"
    text = _verify(root, pems[ARL], shared_demo.pki / "RetiredCA2-16.pem", "-crl_check")
    assert "certificate revoked" in text, text
    assert _verify(root, pems[ARL], shared_demo.pki / "eCertCA2-17.pem", "-crl_check") == "OK"


def test_arl_is_not_in_scope_for_end_entities(shared_demo, pems, chain):
    """onlyContainsCACerts: openssl must not use the ARL for a subscriber certificate."""
    text = _verify(chain, pems[ARL], shared_demo.pki / "good.pem", "-crl_check")
    assert text != "OK" and "certificate revoked" not in text, text


# Partition, ARL and field semantics (pkilint has no IDP rules)


@pytest.fixture(scope="module")
def subscribers(shared_demo):
    return load_certs(shared_demo.pki / "subscribers.pem")


def test_partitions_hold_exactly_the_revoked_certs_whose_cdp_names_them(served, subscribers):
    full = parse_crl(served[FULL])
    assert idp_of(full) is None, "the full CRL carries no IDP"
    full_entries = {e["user_certificate"].native: e.dump() for e in full["tbs_cert_list"]["revoked_certificates"]}
    by_url: dict[str, set[int]] = {}
    for cert in subscribers:
        by_url.setdefault(cdp_url(cert), set()).add(cert.serial_number)
    assert len(by_url) == len(PARTITIONS)
    seen: set[int] = set()
    for name in PARTITIONS:
        c = parse_crl(served[name])
        critical, idp = idp_of(c)
        assert critical is True, name
        urls = idp_urls(idp)
        assert len(urls) == 1 and urls[0].endswith(f"/crl/{name}.crl"), urls
        assert idp["only_contains_user_certs"].native is True
        assert idp["only_contains_attribute_certs"].native is False
        assert idp["only_contains_ca_certs"].native is False
        assert idp["indirect_crl"].native is False and idp["only_some_reasons"].native is None
        expected = by_url[urls[0]] & set(full_entries)
        entries = {e["user_certificate"].native: e.dump() for e in c["tbs_cert_list"]["revoked_certificates"]}
        assert set(entries) == expected, name
        # The same entry bytes as in the full CRL (revocation date, reason, invalidity date).
        assert all(entries[s] == full_entries[s] for s in entries), name
        seen |= set(entries)
    assert seen == set(full_entries), "every revoked subscriber is in exactly one partition"
    assert len(seen) >= 3


def test_partition_url_is_the_one_in_the_certificates(shared_demo, served):
    for sample in ("good.pem", "revoked.pem", "held.pem"):
        url = cdp_url(load_cert(shared_demo.pki / sample))
        name = url.rsplit("/", 1)[1].removesuffix(".crl")
        _, idp = idp_of(parse_crl(served[name]))
        assert idp_urls(idp) == [url]


def test_arl_idp_and_entries(shared_demo, served):
    c = parse_crl(served[ARL])
    critical, idp = idp_of(c)
    assert critical is True
    assert idp["only_contains_ca_certs"].native is True
    assert idp["only_contains_user_certs"].native is False
    retired = load_cert(shared_demo.pki / "RetiredCA2-16.pem")
    assert crl_serials(c) == [retired.serial_number]
    assert idp_urls(idp) == [cdp_url(load_cert(shared_demo.pki / "eCertCA2-17.pem"))]


def test_held_entry_has_certificate_hold_reason(shared_demo, served):
    held = load_cert(shared_demo.pki / "held.pem").serial_number
    entry = next(e for e in parse_crl(served[FULL])["tbs_cert_list"]["revoked_certificates"]
                 if e["user_certificate"].native == held)
    assert entry.crl_reason_value.native == "certificate_hold"


@pytest.mark.parametrize("name", ALL_CRLS)
def test_entries_sorted_by_serial_and_unique(served, name):
    serials = crl_serials(parse_crl(served[name]))
    assert serials == sorted(serials) and len(set(serials)) == len(serials)


@pytest.mark.parametrize("name,issuer", [(ARL, "RootCA2.pem")] + [(n, "eCertCA2-17.pem") for n in (FULL, *PARTITIONS)])
def test_v2_aki_number_and_issuer(shared_demo, served, name, issuer):
    c = parse_crl(served[name])
    tbs = c["tbs_cert_list"]
    ca = load_cert(shared_demo.pki / issuer)
    assert tbs["version"].native == "v2"
    assert tbs["issuer"].dump() == ca.subject.dump(), "issuer Name bytes as in the CA certificate"
    assert c.authority_key_identifier == ca.key_identifier
    assert c.crl_number_value.native >= 1
    assert tbs["next_update"].native > tbs["this_update"].native
    assert tbs["signature"].dump() == c["signature_algorithm"].dump()
    names = [e["extn_id"].native for e in tbs["crl_extensions"]]
    assert len(names) == len(set(names))
    assert c.critical_extensions <= {"issuing_distribution_point"}


def test_archive_numbers_strictly_increase(shared_server):
    import json

    for name, entry in index(shared_server.url).items():
        listing = json.loads(fetch(entry["archive"]))
        numbers = [c["crl_number"] for c in listing["crls"]]
        assert numbers == sorted(set(numbers)) and numbers[-1] == entry["crl_number"], (name, numbers)


# Pure builder: the cases the demo never produces


def _signer() -> KeySigner:
    return KeySigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _params(**kw) -> crlmod.CrlParams:
    base = dict(issuer_name_der=derlib.sequence(), authority_key_id=b"\x01" * 20,
                this_update=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
                next_update=dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc), number=7)
    base.update(kw)
    return crlmod.CrlParams(**base)


def test_empty_crl_has_no_revoked_certificates_field():
    der = crlmod.sign_crl(_signer(), _params(), b"")
    # version, signature, issuer, thisUpdate, nextUpdate, [0] crlExtensions: no SEQUENCE
    # of entries between nextUpdate and the extensions (RFC 5280 §5.1.2.6).
    assert tbs_tags(der) == [derlib.INTEGER, derlib.SEQUENCE, derlib.SEQUENCE, derlib.UTC_TIME, derlib.UTC_TIME, 0xA0]
    text = openssl_text(openssl("crl", "-inform", "DER", "-text", "-noout", input=der))
    assert "No Revoked Certificates." in text, text


def test_dates_from_2050_are_generalized_time():
    utc_end = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    gen = dt.datetime(2050, 1, 1, tzinfo=dt.timezone.utc)
    entry = crlmod.encode_entry(0x1234, gen, crlmod.Reason.keyCompromise)
    der = crlmod.sign_crl(_signer(), _params(this_update=utc_end, next_update=gen), entry)
    tags = tbs_tags(der)
    assert tags[3] == derlib.UTC_TIME and tags[4] == derlib.GENERALIZED_TIME
    c = parse_crl(der)
    assert c["tbs_cert_list"]["this_update"].name == "utc_time"
    assert c["tbs_cert_list"]["next_update"].name == "general_time"
    rev = c["tbs_cert_list"]["revoked_certificates"][0]["revocation_date"]
    assert rev.name == "general_time" and rev.native == gen
    text = openssl_text(openssl("crl", "-inform", "DER", "-text", "-noout", input=der))
    assert "Next Update: Jan  1 00:00:00 2050 GMT" in text, text
