"""Matching CertIDs to the CAs we serve."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

import ocsp_pki
from ocsp_helpers import ca_dir, cert_id, make_request, openssl_request
from ocsp.issuers import IssuerIndex, issuer_hashes
from ocsp.request import HashAlgorithm, decode_request


@pytest.fixture(scope="module")
def index(ec_ca, rsa_ca) -> IssuerIndex[str]:
    return IssuerIndex([("ec", ec_ca.cert_der), ("rsa", rsa_ca.cert_der)])


class TestIssuerIndex:
    @pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
    def test_openssl_cert_ids(self, index, any_ca, pki_dir, tmp_path, digest):
        data = openssl_request(ca_dir(pki_dir, any_ca), tmp_path / "r.der", ocsp_pki.GOOD_SERIAL, digest=digest)
        cid = decode_request(data).cert_ids[0]
        assert cid.hash_algorithm.hashlib_name == digest
        assert index.find(cid) == ("rsa" if any_ca.name.startswith("Test RSA") else "ec")

    @pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
    def test_agrees_with_cryptography(self, ec_ca, algorithm):
        built = x509_ocsp.OCSPRequestBuilder().add_certificate(ec_ca.leaves[ocsp_pki.GOOD_SERIAL], ec_ca.cert, algorithm).build()
        alg = {h.hashlib_name: h for h in HashAlgorithm}[algorithm.name]
        h = issuer_hashes(ec_ca.cert_der, alg)
        assert (h.name_hash, h.key_hash) == (built.issuer_name_hash, built.issuer_key_hash)

    def test_unknown_issuer(self, index):
        assert index.find(decode_request(make_request()).cert_ids[0]) is None

    def test_name_matches_but_key_does_not(self, index, ec_ca, rsa_ca):
        h = issuer_hashes(ec_ca.cert_der, HashAlgorithm.SHA1)
        other = issuer_hashes(rsa_ca.cert_der, HashAlgorithm.SHA1)
        cid = decode_request(make_request([cert_id(name_hash=h.name_hash, key_hash=other.key_hash)])).cert_ids[0]
        assert index.find(cid) is None

    def test_hash_under_another_algorithm_does_not_match(self, index, ec_ca):
        # SHA-256 hashes truncated are not SHA-1 hashes; nothing may match by accident.
        h = issuer_hashes(ec_ca.cert_der, HashAlgorithm.SHA256)
        cid = decode_request(make_request([cert_id(name_hash=h.name_hash[:20], key_hash=h.key_hash[:20])])).cert_ids[0]
        assert index.find(cid) is None

    def test_key_rollover_same_name(self, ec_ca):
        rolled = ocsp_pki.make_ca(ec_ca.name, ocsp_pki._ec_key(0xCA02), serial=9)
        index = IssuerIndex([("old", ec_ca.cert_der), ("new", rolled.cert_der)])
        assert len(index) == 2
        built = x509_ocsp.OCSPRequestBuilder().add_certificate(rolled.leaves[ocsp_pki.GOOD_SERIAL], rolled.cert, hashes.SHA1()).build()
        cid = decode_request(built.public_bytes(serialization.Encoding.DER)).cert_ids[0]
        assert index.find(cid) == "new"

    def test_same_ca_twice_under_two_keys_is_refused(self, ec_ca):
        with pytest.raises(ValueError, match="same name and key"):
            IssuerIndex([("a", ec_ca.cert_der), ("b", ec_ca.cert_der)])

    def test_name_hash_uses_subject_der_as_encoded(self, ec_ca):
        # The subject as it sits in the certificate, not a re-encoding by any library.
        h = issuer_hashes(ec_ca.cert_der, HashAlgorithm.SHA1)
        assert h.name_hash == hashlib.sha1(ec_ca.cert.subject.public_bytes()).digest()
