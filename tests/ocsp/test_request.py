"""Decoding OCSP requests: what real clients send, and every kind of bad input."""
from __future__ import annotations

import base64
import hashlib
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

import ocsp_pki
from ocsp_helpers import SHA1_ALG, ca_dir, cert_id, make_request, nonce_ext, openssl_request
from ocsp import errors
from ocsp.request import DEFAULT_LIMITS, HashAlgorithm, RequestLimits, decode_get_path, decode_request
from publisher import der


class TestDecodeRequestFromClients:
    def test_openssl_with_nonce(self, ec_ca, pki_dir, tmp_path):
        data = openssl_request(ca_dir(pki_dir, ec_ca), tmp_path / "r.der", ocsp_pki.GOOD_SERIAL)
        req = decode_request(data)
        assert len(req.cert_ids) == 1
        cid = req.cert_ids[0]
        assert cid.hash_algorithm is HashAlgorithm.SHA1
        assert cid.serial == ocsp_pki.GOOD_SERIAL
        subject = ec_ca.cert.subject.public_bytes()
        assert cid.issuer_name_hash == hashlib.sha1(subject).digest()
        assert req.nonce is not None
        # OpenSSL sends 16 random octets wrapped in an OCTET STRING (RFC 6960 §4.4.1).
        assert len(req.nonce.value) == 16
        assert req.nonce.extn_value == b"\x04\x10" + req.nonce.value
        assert not req.signed
        assert cid.der in data

    def test_openssl_without_nonce_several_sha256(self, ec_ca, pki_dir, tmp_path):
        data = openssl_request(
            ca_dir(pki_dir, ec_ca), tmp_path / "r.der",
            ocsp_pki.GOOD_SERIAL, ocsp_pki.REVOKED_SERIAL, ocsp_pki.NEVER_ISSUED_SERIAL,
            digest="sha256", nonce=False,
        )
        req = decode_request(data)
        assert req.nonce is None
        assert [c.serial for c in req.cert_ids] == [ocsp_pki.GOOD_SERIAL, ocsp_pki.REVOKED_SERIAL, ocsp_pki.NEVER_ISSUED_SERIAL]
        assert {c.hash_algorithm for c in req.cert_ids} == {HashAlgorithm.SHA256}

    @pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
    def test_cryptography_builder(self, ec_ca, algorithm):
        leaf = ec_ca.leaves[ocsp_pki.GOOD_SERIAL]
        built = (
            x509_ocsp.OCSPRequestBuilder()
            .add_certificate(leaf, ec_ca.cert, algorithm)
            .add_extension(x509.OCSPNonce(b"\x01" * 32), critical=False)
            .build()
        )
        req = decode_request(built.public_bytes(serialization.Encoding.DER))
        assert req.cert_ids[0].hash_algorithm.hashlib_name == algorithm.name
        assert req.cert_ids[0].issuer_key_hash == built.issuer_key_hash
        assert req.nonce.value == b"\x01" * 32


class TestNonce:
    @pytest.mark.parametrize("length", [1, 16, 32])
    def test_accepted_lengths(self, length):
        req = decode_request(make_request(extensions=[nonce_ext(b"\xab" * length)]))
        assert req.nonce.value == b"\xab" * length
        assert req.nonce.extn_value == der.octet_string(b"\xab" * length)

    def test_unwrapped_nonce_from_old_clients(self):
        req = decode_request(make_request(extensions=[nonce_ext(b"\x99" * 16, wrapped=False)]))
        assert req.nonce.value == b"\x99" * 16
        assert req.nonce.extn_value == b"\x99" * 16

    def test_critical_nonce_is_understood(self):
        assert decode_request(make_request(extensions=[nonce_ext(b"\x01" * 8, critical=True)])).nonce

    def test_longer_limit(self):
        limits = RequestLimits(max_nonce_length=128)
        assert len(decode_request(make_request(extensions=[nonce_ext(b"\x01" * 128)]), limits).nonce.value) == 128
        with pytest.raises(errors.NonceTooLong):
            decode_request(make_request(extensions=[nonce_ext(b"\x01" * 129)]), limits)

    @pytest.mark.parametrize("bad", [0, 129, -1])
    def test_limit_out_of_range(self, bad):
        with pytest.raises(ValueError, match="max_nonce_length"):
            RequestLimits(max_nonce_length=bad)

    def test_max_requests_must_be_positive(self):
        with pytest.raises(ValueError, match="max_requests"):
            RequestLimits(max_requests=0)


def _too_many() -> bytes:
    return make_request([cert_id(serial=i) for i in range(DEFAULT_LIMITS.max_requests + 1)])


_VALID = make_request()

# Table of bad requests: (name, bytes, the exact error class expected).
BAD_REQUESTS = [
    ("empty", b"", errors.EmptyRequest),
    ("garbage text", b"hello, is this OCSP?", errors.NotDER),
    ("http form", b"ocsp=MEIwQDA%2BMDwwOjAJBgUrDgMCGgUA", errors.NotDER),
    ("lone sequence tag", b"\x30", errors.TruncatedRequest),
    ("truncated by one", _VALID[:-1], errors.TruncatedRequest),
    ("truncated to half", _VALID[: len(_VALID) // 2], errors.TruncatedRequest),
    ("incomplete length", b"\x30\x82\x01", errors.TruncatedRequest),
    ("trailing octet", _VALID + b"\x00", errors.TrailingData),
    ("two requests", _VALID + _VALID, errors.TrailingData),
    ("indefinite length", b"\x30\x80" + _VALID[2:] + b"\x00\x00", errors.NotDER),
    ("huge length", b"\x30\x89" + b"\xff" * 9, errors.NotDER),
    ("empty sequence", b"\x30\x00", errors.NotDER),
    ("sequence of null", der.sequence(der.tlv(der.NULL, b"")), errors.NotDER),
    ("inner length lies", b"\x30\x05\x30\x09\x30\x00\x00", errors.NotDER),
    ("version v2", make_request(version=1), errors.UnsupportedVersion),
    ("empty request list", make_request([]), errors.NoRequests),
    ("too many single requests", _too_many(), errors.TooManyRequests),
    ("md5 CertID", make_request([cert_id(der.sequence(der.oid("1.2.840.113549.2.5"), der.tlv(der.NULL, b"")), b"\x11" * 16, b"\x22" * 16)]), errors.UnsupportedHashAlgorithm),
    ("sha3 CertID", make_request([cert_id(der.sequence(der.oid("2.16.840.1.101.3.4.2.8")), b"\x11" * 32, b"\x22" * 32)]), errors.UnsupportedHashAlgorithm),
    ("short name hash", make_request([cert_id(name_hash=b"\x11" * 19)]), errors.BadHashLength),
    ("sha256 alg with sha1 hashes", make_request([cert_id(der.sequence(der.oid("2.16.840.1.101.3.4.2.1")))]), errors.BadHashLength),
    ("hash parameters", make_request([cert_id(der.sequence(der.oid("1.3.14.3.2.26"), der.integer(1)))]), errors.NotDER),
    ("empty nonce", make_request(extensions=[nonce_ext(b"")]), errors.EmptyNonce),
    ("empty unwrapped nonce", make_request(extensions=[nonce_ext(b"", wrapped=False)]), errors.EmptyNonce),
    ("nonce of 33", make_request(extensions=[nonce_ext(b"\x01" * 33)]), errors.NonceTooLong),
    ("nonce of 129", make_request(extensions=[nonce_ext(b"\x01" * 129)]), errors.NonceTooLong),
    ("unwrapped nonce of 40", make_request(extensions=[nonce_ext(b"\x01" * 40, wrapped=False)]), errors.NonceTooLong),
    ("two nonces", make_request(extensions=[nonce_ext(b"\x01"), nonce_ext(b"\x02")]), errors.DuplicateExtension),
    ("unknown critical extension", make_request(extensions=[der.extension("1.2.3.4", b"\x05\x00", critical=True)]), errors.UnsupportedCriticalExtension),
    ("unknown critical single extension", make_request(single_extensions=[der.extension("1.2.3.4", b"\x05\x00", critical=True)]), errors.UnsupportedCriticalExtension),
    ("serial is a string", make_request([der.sequence(SHA1_ALG, der.octet_string(b"\x11" * 20), der.octet_string(b"\x22" * 20), der.tlv(0x0C, b"12"))]), errors.NotDER),
    ("certid missing serial", make_request([der.sequence(SHA1_ALG, der.octet_string(b"\x11" * 20), der.octet_string(b"\x22" * 20))]), errors.NotDER),
    ("signature is garbage", make_request(signature=b"\x04\x02hi"), errors.NotDER),
]


class TestBadRequests:
    @pytest.mark.parametrize("data, expected", [pytest.param(d, e, id=n) for n, d, e in BAD_REQUESTS])
    def test_table(self, data, expected):
        with pytest.raises(errors.MalformedRequest) as info:
            decode_request(data)
        assert type(info.value) is expected, info.value
        assert info.value.ocsp_status == 1  # malformedRequest, whatever the detail

    def test_limit_of_requests_is_configurable(self):
        data = make_request([cert_id(serial=i) for i in range(3)])
        assert len(decode_request(data, RequestLimits(max_requests=3)).cert_ids) == 3
        with pytest.raises(errors.TooManyRequests):
            decode_request(data, RequestLimits(max_requests=2))

    def test_unknown_noncritical_extension_is_ignored(self):
        req = decode_request(make_request(extensions=[der.extension("1.2.3.4", b"\x05\x00")]))
        assert req.nonce is None


class TestSignedRequest:
    def test_signature_is_captured(self, ec_ca):
        key = ec.derive_private_key(0x5161, ec.SECP256R1())
        tbs = der.sequence(der.sequence(der.sequence(cert_id())))
        sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        signature = der.sequence(
            der.sequence(der.oid("1.2.840.10045.4.3.2")),
            der.bit_string(sig),
            der.explicit(0, der.sequence(ec_ca.responder_der)),
        )
        req = decode_request(der.sequence(tbs, der.explicit(0, signature)))
        assert req.signed
        assert req.tbs_der == tbs
        assert req.signature.algorithm_oid == "1.2.840.10045.4.3.2"
        assert req.signature.signature == sig
        assert req.signature.certificates == (ec_ca.responder_der,)


_REQ = make_request()  # its base64 holds neither "/" nor "+"; find one that does
_SLASHY = next(
    r for r in (make_request([cert_id(serial=s)]) for s in range(1, 5000))
    if "/" in base64.b64encode(r).decode() and "+" in base64.b64encode(r).decode()
)


class TestDecodeGetPath:
    @pytest.mark.parametrize(
        "how",
        [
            lambda b: b,
            lambda b: urllib.parse.quote(b, safe=""),
            lambda b: urllib.parse.quote(b, safe="/"),
            lambda b: urllib.parse.quote(b, safe="/+="),
            lambda b: "/" + b,  # a doubled slash after /ocsp
            lambda b: b.replace("+", " "),  # a proxy form-decoded the +
            lambda b: b.rstrip("="),  # padding dropped
            lambda b: b.replace("+", "-").replace("/", "_"),  # URL-safe alphabet
            lambda b: b.replace("=", "%3d"),  # lower-case percent escapes
        ],
        ids=["plain", "quoted", "quoted-keep-slash", "quoted-keep-all", "double-slash", "space-for-plus", "unpadded", "urlsafe", "lowercase-escape"],
    )
    def test_round_trip(self, how):
        encoded = base64.b64encode(_SLASHY).decode()
        assert decode_get_path(how(encoded)) == _SLASHY

    @pytest.mark.parametrize(
        "path",
        ["", "/", "%", "!!!!", "MEIw*EA=", "M", "MEIwQ", "MEIw\u00e9", "%ff%fe", "MEI=wQ==", "MEIwQDA===="],
    )
    def test_not_base64(self, path):
        with pytest.raises(errors.BadBase64) as info:
            decode_get_path(path)
        assert info.value.ocsp_status == 1
