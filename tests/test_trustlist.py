"""The trust list's pure parts: the changes an operator may make and the refusals of the
others, the XML against the shipped schema (built and read back, for any list), the
enveloped signature checked by signxml and by xmlsec1, and the page's language choice."""
from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from publisher import trustlist as tl
from publisher import trustlist_html, trustlist_xml, xmlsig
from publisher.errors import Conflict, MalformedInput, NotFound, VerificationError

T0 = dt.datetime(2026, 6, 1, 1, 15, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)
NAMES = (("zh-Hant", "香港郵政電子證書（個人）"), ("en", "Hongkong Post e-Cert (Personal)"))
OPERATOR = (("zh-Hant", "數字政策辦公室"), ("en", "Digital Policy Office"))


def make_cert(key, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(T0 - 24 * HOUR)
            .not_valid_after(T0 + 24 * 365 * HOUR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_CERT = make_cert(RSA_KEY, "Test trust list signer")
CA_DER = make_cert(ec.generate_private_key(ec.SECP256R1()), "Test e-Cert CA").public_bytes(serialization.Encoding.DER)
SIGNER = xmlsig.XmlSigner(RSA_KEY, RSA_CERT)
CERT_PEM = RSA_CERT.public_bytes(serialization.Encoding.PEM)


def granted(ca="CA1", cert_type=tl.CertType.PERSONAL, entries=(), at=T0) -> tl.Entry:
    return tl.grant(entries, ca_name=ca, ca_cert_der=CA_DER, cert_type=cert_type,
                    policy_oids=tl.POLICY_OIDS[cert_type], cps_url="https://ca.example/cps", names=NAMES, at=at)


def listing(*entries: tl.Entry, seq: int = 1) -> tl.TrustList:
    return tl.TrustList(seq, T0 + 10 * HOUR, T0 + 10 * HOUR + dt.timedelta(days=30), OPERATOR,
                        "https://tl.example/trustlist/current.xml", tuple(entries))


class TestChanges:
    def test_a_grant_then_suspension_reinstatement_and_withdrawal(self):
        e = granted()
        assert (e.id, e.status) == (1, tl.StatusPeriod(tl.Status.GRANTED, T0))
        steps = [(tl.Status.SUSPENDED, T0 + HOUR), (tl.Status.GRANTED, T0 + 2 * HOUR),
                 (tl.Status.WITHDRAWN, T0 + 3 * HOUR)]
        for status, at in steps:
            e = tl.change_status((e,), ca_name="CA1", cert_type=tl.CertType.PERSONAL, status=status, at=at)
        assert [(p.status, p.start) for p in e.history] == [(tl.Status.GRANTED, T0), *steps]
        # Withdrawn is final for that entry; listing the type again makes a new entry.
        again = granted(entries=(e,), at=T0 + 4 * HOUR)
        assert again.id == 2 and again.history == (tl.StatusPeriod(tl.Status.GRANTED, T0 + 4 * HOUR),)

    @pytest.mark.parametrize("history, status, at, error, words", [
        # suspend / withdraw of an entry not granted / suspended as required
        ([], tl.Status.SUSPENDED, T0, Conflict, None),  # placeholder replaced below
        ([tl.Status.SUSPENDED], tl.Status.SUSPENDED, T0 + 2 * HOUR, Conflict, ["is suspended", "granted"]),
        ([], tl.Status.GRANTED, T0 + HOUR, Conflict, ["is granted", "only a suspended entry"]),
        ([tl.Status.WITHDRAWN], tl.Status.WITHDRAWN, T0 + 2 * HOUR, Conflict, ["withdrawn already"]),
        ([tl.Status.WITHDRAWN], tl.Status.SUSPENDED, T0 + 2 * HOUR, Conflict, ["withdrawn already"]),
        # a status date before the current status's start
        ([tl.Status.SUSPENDED], tl.Status.WITHDRAWN, T0 + HOUR - dt.timedelta(seconds=1), Conflict,
         ["2026-06-01T02:14:59", "before", "2026-06-01T02:15:00"]),
    ][1:])
    def test_refused_changes(self, history, status, at, error, words):
        e = granted()
        for i, s in enumerate(history):
            e = tl.change_status((e,), ca_name="CA1", cert_type=tl.CertType.PERSONAL, status=s, at=T0 + (i + 1) * HOUR)
        with pytest.raises(error) as caught:
            tl.change_status((e,), ca_name="CA1", cert_type=tl.CertType.PERSONAL, status=status, at=at)
        for w in words:
            assert w in caught.value.message

    def test_the_same_type_of_the_same_ca_is_listed_once(self):
        e = granted()
        with pytest.raises(Conflict, match="on the trust list already"):
            granted(entries=(e,))
        assert granted(cert_type=tl.CertType.ORGANISATION, entries=(e,)).id == 2

    def test_a_change_to_an_entry_never_listed(self):
        with pytest.raises(NotFound, match="CA9 personal is not on the trust list"):
            tl.change_status((granted(),), ca_name="CA9", cert_type=tl.CertType.PERSONAL,
                             status=tl.Status.SUSPENDED, at=T0)

    @pytest.mark.parametrize("cert_type, oids, words", [
        (tl.CertType.PERSONAL, ["1.2.3"], ["unknown policy OID '1.2.3'"]),
        (tl.CertType.PERSONAL, ["2.16.156.339.1.1.2.2.1"], ["is for organisation certificates, not personal"]),
        (tl.CertType.ORGANISATION, ["2.16.156.339.1.1.1.2.1"], ["is for personal certificates"]),
    ])
    def test_policy_oids_are_the_cps_for_the_type(self, cert_type, oids, words):
        with pytest.raises(MalformedInput) as caught:
            tl.check_policy_oids(cert_type, oids)
        for w in words:
            assert w in caught.value.message

    def test_policy_oids_default_to_every_oid_of_the_type(self):
        assert tl.check_policy_oids(tl.CertType.PERSONAL, None) == (
            "2.16.156.339.1.1.1.2.1", "2.16.344.8.2.2008.810.2.2018.1.1")
        assert tl.check_policy_oids(tl.CertType.ORGANISATION, []) == ("2.16.156.339.1.1.2.2.1",)
        assert tl.check_policy_oids(tl.CertType.PERSONAL, ["2.16.344.8.2.2008.810.2.2018.1.1"]) == (
            "2.16.344.8.2.2008.810.2.2018.1.1",)

    @pytest.mark.parametrize("names, words", [
        ({"zh-Hant": "個人", "en": None}, ["the name in en is missing"]),
        ({"zh-Hant": "  ", "en": "Personal"}, ["the name in zh-Hant is missing"]),
        ({"en": "Personal"}, ["zh-Hant is missing"]),
        ({"zh-Hant": "個人", "en": "two\nlines"}, ["one line"]),
        ({"zh-Hant": "個" * 201, "en": "Personal"}, ["at most 200"]),
    ])
    def test_a_name_in_each_language(self, names, words):
        with pytest.raises(MalformedInput) as caught:
            tl.check_names(names, "CA1 personal")
        for w in ["CA1 personal", *words]:
            assert w in caught.value.message

    @given(st.text(max_size=60), st.text(max_size=60))
    def test_names_are_refused_or_carried_by_the_xml(self, zh, en):
        try:
            names = tl.check_names({"zh-Hant": zh, "en": en}, "CA1 personal")
        except MalformedInput:
            return
        e = dataclasses.replace(granted(), names=names)
        assert trustlist_xml.parse_xml(trustlist_xml.build_xml(listing(e))).entries == (e,)

    @given(st.text(max_size=80))
    def test_cps_urls_are_refused_or_carried_by_the_xml(self, url):
        try:
            url = tl.check_url("http://" + url, "CPS URL")
        except MalformedInput:
            return
        e = dataclasses.replace(granted(), cps_url=url)
        assert trustlist_xml.parse_xml(trustlist_xml.build_xml(listing(e))).entries == (e,)

    def test_unknown_type(self):
        with pytest.raises(MalformedInput, match="unknown certificate type 'persona'"):
            tl.parse_type("persona")

    @pytest.mark.parametrize("text", ["0", "01", "-1", "1.0", "", "１", "1234567890", "a", "1 "])
    def test_sequence_numbers_in_urls(self, text):
        with pytest.raises(NotFound, match="not a trust list sequence number"):
            tl.parse_seq(text)
        assert tl.parse_seq("1") == 1 and tl.parse_seq("987654321") == 987654321


# Lists of any shape: entries of random types, names, OIDs and histories.
_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and tl.is_plain_text(s))


@st.composite
def entries(draw) -> tuple[tl.Entry, ...]:
    out: list[tl.Entry] = []
    for i in range(draw(st.integers(0, 5))):
        ctype = draw(st.sampled_from(list(tl.CertType)))
        oids = tuple(draw(st.lists(st.sampled_from(tl.POLICY_OIDS[ctype]), min_size=1, unique=True)))
        start = T0 + draw(st.integers(0, 10_000)) * HOUR
        history = [tl.StatusPeriod(tl.Status.GRANTED, start)]
        for _ in range(draw(st.integers(0, 4))):
            start += draw(st.integers(0, 1000)) * HOUR
            history.append(tl.StatusPeriod(draw(st.sampled_from(list(tl.Status))), start))
        ca = draw(st.sampled_from(["CA1", "CA2", "eCertCA2-17"]))
        out.append(tl.Entry(i + 1, ca, CA_DER, ctype, oids, "https://ca.example/cps/" + str(i),
                            (("zh-Hant", draw(_text)), ("en", draw(_text))), tuple(history)))
    return tuple(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(), st.integers(1, 10**9))
def test_any_list_matches_the_schema_and_reads_back_the_same(es, seq):
    doc = listing(*es, seq=seq)
    xml = trustlist_xml.build_xml(doc)
    assert trustlist_xml.schema().validate(etree.fromstring(xml))
    assert trustlist_xml.parse_xml(xml) == doc


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_the_reader_refuses_anything_else_as_malformed(data):
    with pytest.raises(MalformedInput):
        trustlist_xml.parse_xml(data)


@pytest.mark.parametrize("change", [
    lambda x: x.replace(b"<TSLSequenceNumber>1<", b"<TSLSequenceNumber>0<"),
    lambda x: x.replace(b"urn:pkirepo:trustlist:status:granted", b"urn:pkirepo:trustlist:status:trusted", 1),
    lambda x: x.replace(b"<Identifier>2.16.156.339.1.1.1.2.1<", b"<Identifier>1.2.3<"),
    lambda x: x.replace(b"2026-06-01T11:15:00Z", b"2026-06-01T11:15:00+08:00", 1),
    lambda x: x.replace(b'xml:lang="en"', b'xml:lang="fr"', 1),
    lambda x: x.replace(b"<?xml version='1.0' encoding='UTF-8'?>",
                        b"<?xml version='1.0' encoding='UTF-8'?><!DOCTYPE x [<!ENTITY e 'x'>]>"),
])
def test_documents_the_schema_refuses(change):
    xml = trustlist_xml.build_xml(listing(granted()))
    bad = change(xml)
    assert bad != xml
    with pytest.raises(MalformedInput):
        trustlist_xml.parse_xml(bad)


def test_a_stated_fingerprint_must_be_the_certificates():
    e = granted()
    xml = trustlist_xml.build_xml(listing(e))
    other = "0" * 64
    with pytest.raises(MalformedInput, match="fingerprint does not match"):
        trustlist_xml.parse_xml(xml.replace(e.fingerprint.encode(), other.encode()))


# Signatures

SIGNED = SIGNER.sign(trustlist_xml.build_xml(listing(granted(), granted(cert_type=tl.CertType.ORGANISATION))))


def xmlsec1_verify(tmp_path: Path, data: bytes, cert_pem: bytes = CERT_PEM) -> tuple[bool, str]:
    """Debian's xmlsec1, with the signer's certificate as the only trusted one; its text is
    read as well as its exit code."""
    (tmp_path / "list.xml").write_bytes(data)
    (tmp_path / "signer.pem").write_bytes(cert_pem)
    r = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(tmp_path / "signer.pem"),
                        str(tmp_path / "list.xml")], capture_output=True, text=True, timeout=30)
    ok = r.returncode == 0 and r.stderr.startswith("OK") and "SignedInfo References (ok/all): 1/1" in r.stderr
    return ok, r.stderr


def test_a_signed_list_verifies_with_signxml_and_xmlsec1(tmp_path):
    xmlsig.verify(SIGNED, CERT_PEM)
    assert trustlist_xml.parse_xml(SIGNED) == trustlist_xml.parse_xml(trustlist_xml.build_xml(
        listing(granted(), granted(cert_type=tl.CertType.ORGANISATION))))
    ok, text = xmlsec1_verify(tmp_path, SIGNED)
    assert ok, text
    root = etree.fromstring(SIGNED)
    sig = root[-1]
    assert etree.QName(sig).localname == "Signature" and etree.QName(sig).namespace == trustlist_xml.DSIG_NS
    assert sig.find(".//{*}Reference").get("URI") == ""


def test_an_ecdsa_key_signs_too(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make_cert(key, "EC signer")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    signed = xmlsig.XmlSigner(key, cert).sign(trustlist_xml.build_xml(listing(granted())))
    xmlsig.verify(signed, pem)
    ok, text = xmlsec1_verify(tmp_path, signed, pem)
    assert ok, text


def test_another_key_does_not_verify(tmp_path):
    other = make_cert(rsa.generate_private_key(public_exponent=65537, key_size=2048), "Test trust list signer")
    with pytest.raises(VerificationError):
        xmlsig.verify(SIGNED, other.public_bytes(serialization.Encoding.PEM))
    ok, _ = xmlsec1_verify(tmp_path, SIGNED, other.public_bytes(serialization.Encoding.PEM))
    assert not ok


def test_a_key_must_belong_to_its_certificate():
    with pytest.raises(ValueError, match="does not belong"):
        xmlsig.XmlSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048), RSA_CERT)


ONE_BYTE = [
    ("a name", "Hongkong Post e-Cert (Personal)", "Hongkong Post e-Cert (Persona1)"),
    ("the sequence number", "<TSLSequenceNumber>1<", "<TSLSequenceNumber>2<"),
    ("a status", "status:granted", "status:grantee"),
    ("a date", "<StatusStartingTime>2026-06-01T01:15:00Z", "<StatusStartingTime>2026-06-01T01:15:01Z"),
    ("a policy OID", "2.16.156.339.1.1.2.2.1", "2.16.156.339.1.1.2.2.2"),
    # The declaration turned into a processing instruction outside the list (found by the
    # property test below): signxml alone accepted it, xmlsec1 does not.
    ("the XML declaration", "<?xml version", "<?x l version"),
]


@pytest.mark.parametrize("what, old, new", ONE_BYTE, ids=[w for w, _, _ in ONE_BYTE])
def test_one_changed_byte_fails_both_verifiers(tmp_path, what, old, new):
    assert len(old) == len(new) and sum(a != b for a, b in zip(old, new)) == 1
    bad = SIGNED.replace(old.encode(), new.encode(), 1)
    assert bad != SIGNED and len(bad) == len(SIGNED)
    with pytest.raises(VerificationError):
        xmlsig.verify(bad, CERT_PEM)
    ok, _ = xmlsec1_verify(tmp_path, bad)
    assert not ok


def test_a_changed_signature_value_fails_both_verifiers(tmp_path):
    root = etree.fromstring(SIGNED)
    value = root.find(".//{*}SignatureValue").text.strip()
    flipped = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    bad = SIGNED.replace(value.encode(), flipped.encode())
    with pytest.raises(VerificationError):
        xmlsig.verify(bad, CERT_PEM)
    assert not xmlsec1_verify(tmp_path, bad)[0]


def _c14n(data: bytes) -> bytes:
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    for sig in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(sig)
    return etree.tostring(root, method="c14n")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_one_byte_change_of_the_signed_content_fails(data):
    """Every byte of the list before its signature: changed, the list no longer verifies,
    unless the change leaves the same document (a quote character swapped, say)."""
    end = SIGNED.index(b"<ds:Signature")
    pos = data.draw(st.integers(0, end - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != SIGNED[pos]))
    bad = SIGNED[:pos] + bytes([byte]) + SIGNED[pos + 1:]
    try:
        xmlsig.verify(bad, CERT_PEM)
    except VerificationError:
        return
    assert _c14n(bad) == _c14n(SIGNED), f"byte {pos} changed to {byte:#x} still verifies"


class TestLanguage:
    @pytest.mark.parametrize("query, header, lang", [
        (None, None, "zh-Hant"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "zh-HK", "zh-Hant"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-Hant"),
        (None, "fr, en;q=0.5", "en"),
        (None, "en;q=0.3, zh-TW;q=0.8", "zh-Hant"),
        (None, "fr, de", "zh-Hant"),
        (None, "en;q=nan, en;q=2", "zh-Hant"),
        ("en", "zh-HK", "en"),
        ("zh-Hant", "en", "zh-Hant"),
    ])
    def test_negotiation(self, query, header, lang):
        assert trustlist_html.negotiate(query, header) == lang

    def test_an_unknown_lang_parameter_is_refused(self):
        with pytest.raises(MalformedInput, match="no page in language 'fr'"):
            trustlist_html.negotiate("fr", None)

    @given(st.text(max_size=200))
    def test_any_accept_language_gives_a_language(self, header):
        assert trustlist_html.negotiate(None, header) in tl.LANGUAGES


@pytest.mark.parametrize("lang", tl.LANGUAGES)
def test_the_page_escapes_and_shows_both_languages(lang):
    hostile = (("zh-Hant", "<script>alert(1)</script>個人"), ("en", 'Personal "<b>" & co'))
    e = dataclasses.replace(granted(), names=hostile)
    page = trustlist_html.render(listing(e), lang, base_url="https://tl.example", current=True, now=T0)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;個人" in page
    assert "Personal &#34;&lt;b&gt;&#34; &amp; co" in page
    assert f'<html lang="{lang}">' in page
    for words in ("已認可", "Granted", "個人證書", "Personal certificate", "2.16.344.8.2.2008.810.2.2018.1.1",
                  e.fingerprint, "數字政策辦公室", "Digital Policy Office", "https://ca.example/cps"):
        assert words in page
    assert "style=" not in page and "<script" not in page


def test_a_current_page_past_its_next_update_says_so():
    doc = listing(granted())
    fresh = trustlist_html.render(doc, "en", base_url="https://tl.example", current=True, now=doc.next_update)
    stale = trustlist_html.render(doc, "en", base_url="https://tl.example", current=True,
                                  now=doc.next_update + dt.timedelta(seconds=1))
    assert "past its next update" not in fresh and "past its next update" in stale
