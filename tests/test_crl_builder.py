"""publisher.crl and publisher.der: the pure CRL builder, checked against cryptography and
asn1crypto parsers."""
from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import crl as a1crl
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from publisher import crl, der, signer

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 25, 1, 15, tzinfo=UTC)
NAME = x509.Name.from_rfc4514_string("CN=Test CA,O=Test,C=HK").public_bytes()


@pytest.fixture(scope="module")
def rsa_signer():
    return signer.KeySigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def params(**kw) -> crl.CrlParams:
    base = dict(issuer_name_der=NAME, authority_key_id=b"\x11" * 20, this_update=NOW,
                next_update=NOW + dt.timedelta(days=1), number=7)
    base.update(kw)
    return crl.CrlParams(**base)


class TestDer:
    @pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 2**64, 2**159 - 1])
    def test_integer_matches_asn1crypto(self, value):
        from asn1crypto.core import Integer

        assert der.integer(value) == Integer(value).dump()

    def test_long_length(self):
        assert der.tlv(0x04, b"x" * 300)[:4] == b"\x04\x82\x01\x2c"

    def test_utctime_until_2049_generalized_from_2050(self):
        assert der.x509_time(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))[0] == der.UTC_TIME
        assert der.x509_time(dt.datetime(2050, 1, 1, tzinfo=UTC)) == b"\x18\x0f20500101000000Z"

    def test_naive_time_refused(self):
        with pytest.raises(ValueError):
            der.x509_time(dt.datetime(2026, 1, 1))


class TestEntries:
    def test_reason_unspecified_omitted_by_default(self):
        e = a1crl.RevokedCertificate.load(crl.encode_entry(5, NOW, crl.Reason.unspecified))
        assert e["crl_entry_extensions"].native is None or len(e["crl_entry_extensions"]) == 0

    def test_reason_unspecified_written_under_cps_profile(self):
        e = a1crl.RevokedCertificate.load(
            crl.encode_entry(5, NOW, crl.Reason.unspecified, policy=crl.ReasonPolicy.WRITE))
        assert e.crl_reason_value.native == "unspecified"

    def test_no_reason_given_has_no_extension(self):
        e = a1crl.RevokedCertificate.load(crl.encode_entry(5, NOW, None, policy=crl.ReasonPolicy.WRITE))
        assert e["crl_entry_extensions"].native in (None, [])

    def test_reason_and_invalidity_date(self):
        inv = NOW - dt.timedelta(days=2)
        e = a1crl.RevokedCertificate.load(crl.encode_entry(2**159 - 1, NOW, crl.Reason.keyCompromise, inv))
        assert e["user_certificate"].native == 2**159 - 1
        assert e.crl_reason_value.native == "key_compromise"
        assert e.invalidity_date_value.native == inv

    def test_reason_parse(self):
        assert crl.Reason.parse("key-compromise") is crl.Reason.keyCompromise
        assert crl.Reason.parse("1") is crl.Reason.keyCompromise
        with pytest.raises(ValueError, match="unknown revocation reason"):
            crl.Reason.parse("sad")


class TestCrl:
    def test_full_crl_parses_and_verifies(self, rsa_signer):
        entries = b"".join(crl.encode_entry(s, NOW, crl.Reason.superseded) for s in (1, 2, 3))
        d = crl.sign_crl(rsa_signer, params(), entries)
        c = x509.load_der_x509_crl(d)
        assert c.is_signature_valid(rsa_signer.public_key())
        assert [r.serial_number for r in c] == [1, 2, 3]
        assert c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
        assert c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == b"\x11" * 20
        with pytest.raises(x509.ExtensionNotFound):
            c.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert c.issuer.public_bytes() == NAME

    def test_empty_crl_has_no_revoked_certificates_field(self, rsa_signer):
        d = crl.sign_crl(rsa_signer, params(), b"")
        tbs = a1crl.CertificateList.load(d)["tbs_cert_list"]
        assert tbs["revoked_certificates"].native in (None, [])
        # The field is absent, not an empty SEQUENCE: nothing between nextUpdate and [0].
        assert b"\x30\x00" not in tbs.contents[-100:]

    def test_partition_idp_is_critical_with_url_and_user_only(self, rsa_signer):
        url = "http://crl1.example/crl/eCertCA2-17CRL2.crl"
        d = crl.sign_crl(rsa_signer, params(kind=crl.ScopeKind.PARTITION, dp_url=url), b"")
        ext = x509.load_der_x509_crl(d).extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert ext.critical
        assert ext.value.full_name == [x509.UniformResourceIdentifier(url)]
        assert ext.value.only_contains_user_certs and not ext.value.only_contains_ca_certs
        assert not ext.value.indirect_crl

    def test_arl_idp_only_ca_certs(self, rsa_signer):
        d = crl.sign_crl(rsa_signer, params(kind=crl.ScopeKind.ARL), b"")
        ext = x509.load_der_x509_crl(d).extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert ext.critical and ext.value.only_contains_ca_certs and not ext.value.only_contains_user_certs

    def test_partition_without_url_refused(self, rsa_signer):
        with pytest.raises(ValueError):
            crl.sign_crl(rsa_signer, params(kind=crl.ScopeKind.PARTITION), b"")

    def test_dates_from_2050_are_generalized_time(self, rsa_signer):
        p = params(this_update=dt.datetime(2050, 1, 1, tzinfo=UTC), next_update=dt.datetime(2050, 1, 2, tzinfo=UTC))
        tbs = a1crl.CertificateList.load(crl.sign_crl(rsa_signer, p, b""))["tbs_cert_list"]
        assert tbs["this_update"].name == "general_time"
        assert tbs["next_update"].name == "general_time"

    @pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
    def test_ecdsa(self, curve):
        key = ec.generate_private_key(curve)
        d = crl.sign_crl(signer.KeySigner(key), params(), crl.encode_entry(9, NOW, None))
        assert x509.load_der_x509_crl(d).is_signature_valid(key.public_key())

    def test_same_bytes_as_cryptography_builder(self, rsa_signer):
        """Our hand-built TBS is what cryptography's builder would make from the same data."""
        from cryptography.hazmat.primitives import hashes

        key = rsa_signer._key
        revoked = [
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build()
            for s in (3, 10)
        ]
        theirs = (
            x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
            .issuer_name(x509.Name.from_rfc4514_string("CN=Test CA,O=Test,C=HK"))
            .last_update(NOW).next_update(NOW + dt.timedelta(days=1))
            .add_extension(x509.AuthorityKeyIdentifier(b"\x11" * 20, None, None), critical=False)
            .add_extension(x509.CRLNumber(7), critical=False)
            .sign(key, hashes.SHA256())
        )
        ours = crl.sign_crl(rsa_signer, params(), b"".join(
            crl.encode_entry(s, NOW, crl.Reason.keyCompromise) for s in (3, 10)))
        # RSA PKCS#1 v1.5 is deterministic: identical TBS gives identical signatures.
        assert ours == theirs.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER)

    def test_crl_number_range(self):
        with pytest.raises(ValueError):
            crl.crl_number_extension(2**159)
