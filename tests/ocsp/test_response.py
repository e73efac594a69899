"""Building OCSP responses: checked by cryptography, OpenSSL and pkilint."""
from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocsp_pki
from ocsp_helpers import VENV_BIN, ca_dir, make_request, nonce_ext, openssl_request, responder_for
from ocsp.batch_signer import BatchSigner, SignJob
from ocsp.issuers import issuer_hashes
from ocsp.request import HashAlgorithm, decode_request
from ocsp.response import (
    EPOCH,
    CertStatus,
    ResponderIdentity,
    ResponseStatus,
    SingleResponse,
    assemble,
    build_response,
    cert_id_der,
    never_issued,
    single_of,
    unsuccessful,
)
from publisher.crl import Reason
from publisher.signer import KeySigner

NOW = ocsp_pki.NOW
NEXT = NOW + dt.timedelta(hours=4)
REVOKED_AT = dt.datetime(2026, 1, 10, 8, 30, tzinfo=dt.timezone.utc)
# The pinned times lie in the past: let openssl accept an expired nextUpdate (seconds of skew).
OPENSSL_SKEW = ["-validity_period", "2000000000"]


def verify_signature(resp: x509_ocsp.OCSPResponse, public_key) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), resp.signature_hash_algorithm)
    else:
        public_key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))


def answers(ca: ocsp_pki.CA, cert_ids: list[bytes]) -> list[SingleResponse]:
    good, revoked, unknown = cert_ids
    return [
        SingleResponse(good, CertStatus.GOOD, NOW, NEXT),
        SingleResponse(revoked, CertStatus.REVOKED, NOW, NEXT, revocation_time=REVOKED_AT, reason=Reason.keyCompromise),
        SingleResponse(unknown, CertStatus.UNKNOWN, NOW, NEXT),
    ]


def lint(path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "lint_ocsp_response"), "lint", str(path)], capture_output=True, text=True)


@pytest.fixture
def request_for_three(any_ca, pki_dir, tmp_path):
    path = tmp_path / "req.der"
    data = openssl_request(
        ca_dir(pki_dir, any_ca), path, ocsp_pki.GOOD_SERIAL, ocsp_pki.REVOKED_SERIAL, ocsp_pki.NEVER_ISSUED_SERIAL
    )
    return path, decode_request(data)


class TestBuildResponse:
    def test_parsed_by_cryptography(self, any_ca, request_for_three):
        _, req = request_for_three
        data = build_response(responder_for(any_ca), NOW, answers(any_ca, [c.der for c in req.cert_ids]), nonce=req.nonce)
        resp = x509_ocsp.load_der_ocsp_response(data)
        assert resp.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.produced_at_utc == NOW
        assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(any_ca.responder_key.public_key()).digest
        assert resp.responder_name is None
        assert resp.certificates == [any_ca.responder_cert]
        verify_signature(resp, any_ca.responder_cert.public_key())
        singles = list(resp.responses)
        assert [s.serial_number for s in singles] == [ocsp_pki.GOOD_SERIAL, ocsp_pki.REVOKED_SERIAL, ocsp_pki.NEVER_ISSUED_SERIAL]
        assert [s.certificate_status for s in singles] == [
            x509_ocsp.OCSPCertStatus.GOOD, x509_ocsp.OCSPCertStatus.REVOKED, x509_ocsp.OCSPCertStatus.UNKNOWN
        ]
        assert all(s.this_update_utc == NOW and s.next_update_utc == NEXT for s in singles)
        assert singles[1].revocation_time_utc == REVOKED_AT
        assert singles[1].revocation_reason is x509.ReasonFlags.key_compromise
        assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == req.nonce.value

    def test_signature_covers_the_answers(self, ec_ca, request_for_three):
        _, req = request_for_three
        data = bytearray(build_response(responder_for(ec_ca), NOW, answers(ec_ca, [c.der for c in req.cert_ids])))
        good = data.index(b"\x80\x00")  # certStatus good [0] IMPLICIT NULL
        data[good] = 0x82  # ... turned into unknown
        resp = x509_ocsp.load_der_ocsp_response(bytes(data))
        with pytest.raises(InvalidSignature):
            verify_signature(resp, ec_ca.responder_cert.public_key())

    def test_verified_by_openssl(self, any_ca, pki_dir, request_for_three, tmp_path):
        req_path, req = request_for_three
        resp_path = tmp_path / "resp.der"
        resp_path.write_bytes(build_response(responder_for(any_ca), NOW, answers(any_ca, [c.der for c in req.cert_ids]), nonce=req.nonce))
        directory = ca_dir(pki_dir, any_ca)
        # With -reqin, OpenSSL checks the nonce echo against the request it sent.
        out = subprocess.run(
            ["openssl", "ocsp", "-reqin", req_path, "-respin", resp_path, "-CAfile", directory / "ca.pem", *OPENSSL_SKEW],
            capture_output=True, text=True,
        )
        assert "Response verify OK" in out.stderr + out.stdout, out.stderr
        assert "Nonce Verify error" not in out.stderr
        out = subprocess.run(
            [
                "openssl", "ocsp", "-issuer", directory / "ca.pem",
                "-cert", directory / f"leaf-{ocsp_pki.GOOD_SERIAL:x}.pem",
                "-cert", directory / f"leaf-{ocsp_pki.REVOKED_SERIAL:x}.pem",
                "-serial", hex(ocsp_pki.NEVER_ISSUED_SERIAL),
                "-no_nonce", "-respin", resp_path, "-CAfile", directory / "ca.pem", *OPENSSL_SKEW,
            ],
            capture_output=True, text=True, check=True,
        )
        assert "Response verify OK" in out.stderr
        assert f"leaf-{ocsp_pki.GOOD_SERIAL:x}.pem: good" in out.stdout
        assert f"leaf-{ocsp_pki.REVOKED_SERIAL:x}.pem: revoked" in out.stdout
        assert "Reason: keyCompromise" in out.stdout
        assert f"{ocsp_pki.NEVER_ISSUED_SERIAL:#x}: unknown" in out.stdout
        assert "WARNING" not in out.stdout + out.stderr

    def test_openssl_notices_a_wrong_nonce(self, ec_ca, pki_dir, request_for_three, tmp_path):
        req_path, req = request_for_three
        other = decode_request(make_request(extensions=[nonce_ext(b"\x42" * 16)])).nonce
        resp_path = tmp_path / "resp.der"
        resp_path.write_bytes(build_response(responder_for(ec_ca), NOW, answers(ec_ca, [c.der for c in req.cert_ids]), nonce=other))
        out = subprocess.run(
            ["openssl", "ocsp", "-reqin", req_path, "-respin", resp_path, "-CAfile", pki_dir / "ec" / "ca.pem", *OPENSSL_SKEW],
            capture_output=True, text=True,
        )
        assert "Nonce Verify error" in out.stderr

    def test_signed_by_the_ca_itself(self, any_ca, pki_dir, request_for_three, tmp_path):
        req_path, req = request_for_three
        resp_path = tmp_path / "resp.der"
        resp_path.write_bytes(
            build_response(responder_for(any_ca, use_ca_key=True), NOW, answers(any_ca, [c.der for c in req.cert_ids]), nonce=req.nonce)
        )
        resp = x509_ocsp.load_der_ocsp_response(resp_path.read_bytes())
        assert resp.certificates == []
        verify_signature(resp, any_ca.cert.public_key())
        directory = ca_dir(pki_dir, any_ca)
        out = subprocess.run(
            ["openssl", "ocsp", "-reqin", req_path, "-respin", resp_path, "-CAfile", directory / "ca.pem",
             "-verify_other", directory / "ca.pem", *OPENSSL_SKEW],
            capture_output=True, text=True,
        )
        assert "Response verify OK" in out.stderr, out.stderr

    @pytest.mark.parametrize(
        "single",
        [
            pytest.param(lambda cid: SingleResponse(cid, CertStatus.GOOD, NOW, NEXT), id="good"),
            pytest.param(lambda cid: SingleResponse(cid, CertStatus.REVOKED, NOW, NEXT, revocation_time=REVOKED_AT), id="revoked-no-reason"),
            pytest.param(lambda cid: SingleResponse(cid, CertStatus.REVOKED, NOW, NEXT, revocation_time=REVOKED_AT, reason=Reason.superseded), id="revoked-superseded"),
            pytest.param(lambda cid: SingleResponse(cid, CertStatus.REVOKED, NOW, NEXT, revocation_time=REVOKED_AT, reason=Reason.certificateHold), id="hold"),
            pytest.param(lambda cid: SingleResponse(cid, CertStatus.UNKNOWN, NOW, NEXT), id="unknown"),
            pytest.param(lambda cid: SingleResponse(cid, CertStatus.GOOD, NOW), id="good-no-next-update"),
        ],
    )
    def test_pkilint_clean(self, any_ca, single, tmp_path):
        cid = cert_id_der(HashAlgorithm.SHA1, b"\x01" * 20, b"\x02" * 20, ocsp_pki.GOOD_SERIAL)
        path = tmp_path / "resp.der"
        path.write_bytes(build_response(responder_for(any_ca), NOW, [single(cid)]))
        out = lint(path)
        assert out.returncode == 0 and out.stdout.strip() == "", out.stdout

    def test_pkilint_clean_with_nonce_and_several(self, any_ca, request_for_three, tmp_path):
        _, req = request_for_three
        path = tmp_path / "resp.der"
        path.write_bytes(build_response(responder_for(any_ca), NOW, answers(any_ca, [c.der for c in req.cert_ids]), nonce=req.nonce))
        out = lint(path)
        assert out.returncode == 0 and out.stdout.strip() == "", out.stdout

    def test_pre_encoded_pieces(self, ec_ca):
        cid = cert_id_der(HashAlgorithm.SHA256, b"\x01" * 32, b"\x02" * 32, 7)
        single = SingleResponse(cid, CertStatus.GOOD, NOW, NEXT)
        resp = x509_ocsp.load_der_ocsp_response(build_response(responder_for(ec_ca), NOW, [single.der()]))
        assert resp.serial_number == 7
        assert isinstance(resp.hash_algorithm, hashes.SHA256)

    def test_nonce_echoed_byte_for_byte(self, ec_ca):
        bare = decode_request(make_request(extensions=[nonce_ext(b"\x07" * 20, wrapped=False)])).nonce
        data = build_response(responder_for(ec_ca), NOW, [SingleResponse(b"\x30\x00", CertStatus.GOOD, NOW)], nonce=bare)
        # extnValue OCTET STRING holding exactly the 20 octets the client sent.
        assert b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x02\x04\x14" + b"\x07" * 20 in data


class TestNeverIssued:
    def test_extended_revoked_definition(self, any_ca, tmp_path):
        cid = cert_id_der(HashAlgorithm.SHA1, b"\x01" * 20, b"\x02" * 20, ocsp_pki.NEVER_ISSUED_SERIAL)
        data = build_response(responder_for(any_ca), NOW, [never_issued(cid, NOW, NEXT)], extended_revoke=True)
        resp = x509_ocsp.load_der_ocsp_response(data)
        assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_time_utc == EPOCH
        assert resp.revocation_reason is x509.ReasonFlags.certificate_hold
        ext = resp.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.9"))
        assert not ext.critical
        assert ext.value.value == b"\x05\x00"  # NULL
        path = tmp_path / "resp.der"
        path.write_bytes(data)
        out = lint(path)
        assert out.returncode == 0 and out.stdout.strip() == "", out.stdout


class TestUnsuccessful:
    @pytest.mark.parametrize("status", [s for s in ResponseStatus if s != ResponseStatus.SUCCESSFUL])
    def test_parsed_by_cryptography(self, status):
        resp = x509_ocsp.load_der_ocsp_response(unsuccessful(status))
        assert resp.response_status.value == int(status)

    def test_exact_bytes(self):
        assert unsuccessful(ResponseStatus.MALFORMED_REQUEST) == b"\x30\x03\x0a\x01\x01"

    def test_successful_is_refused(self):
        with pytest.raises(ValueError, match="responseBytes"):
            unsuccessful(0)


class TestMisuse:
    def test_revoked_needs_time(self):
        with pytest.raises(ValueError, match="revocation_time"):
            SingleResponse(b"", CertStatus.REVOKED, NOW)

    def test_good_has_no_reason(self):
        with pytest.raises(ValueError, match="no revocation_time"):
            SingleResponse(b"", CertStatus.GOOD, NOW, reason=Reason.superseded)

    def test_next_update_before_this_update(self):
        with pytest.raises(ValueError, match="before"):
            SingleResponse(b"", CertStatus.GOOD, NOW, NOW - dt.timedelta(seconds=1))

    def test_naive_time(self):
        single = SingleResponse(b"\x30\x00", CertStatus.GOOD, NOW.replace(tzinfo=None))
        with pytest.raises(ValueError, match="naive"):
            single.der()

    def test_no_singles(self, ec_ca):
        with pytest.raises(ValueError, match="at least one"):
            build_response(responder_for(ec_ca), NOW, [])

    def test_certificate_for_another_key(self, ec_ca):
        with pytest.raises(ValueError, match="not for the signer's key"):
            ResponderIdentity.from_certificate(KeySigner(ec_ca.key), ec_ca.responder_der)

    def test_responder_identity_key_hash(self, ec_ca):
        ident = responder_for(ec_ca)
        expected = x509.SubjectKeyIdentifier.from_public_key(ec_ca.responder_key.public_key()).digest
        assert ident.key_hash == expected
        assert ident.certificate_der == ec_ca.responder_cert.public_bytes(serialization.Encoding.DER)


class TestStoredParts:
    """A pre-signed answer is stored as its signed part and served joined to the responder's
    `certs` field: the bytes served must be exactly what the one-shot builder makes."""

    _STATES = st.one_of(
        st.just((0, None, None, False)),  # good
        st.tuples(st.just(1), st.one_of(st.none(), st.sampled_from([0, 1, 3, 4, 5, 9, 10])),
                  st.integers(0, 2_000_000_000), st.just(False)),  # revoked, with or without reason
        st.tuples(st.just(2), st.just(6), st.integers(0, 2_000_000_000), st.just(False)),  # on hold
        st.just((None, None, None, False)),  # never issued: unknown
        st.just((None, None, None, True)),  # never issued: revoked, Extended Revoked Definition
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(state=_STATES, serial=st.integers(1, 2**159), this=st.integers(1_000_000_000, 2_000_000_000),
           validity=st.integers(1, 7 * 86400), alg=st.sampled_from(list(HashAlgorithm)),
           with_cert=st.booleans())
    def test_assembled_equals_one_shot(self, rsa_ca, state, serial, this, validity, alg, with_cert):
        # RSA PKCS#1 v1.5 signatures are deterministic, so both ways must give the same bytes.
        status, reason, revoked_at, extended = state
        identity = ResponderIdentity.from_certificate(KeySigner(rsa_ca.key), rsa_ca.cert_der,
                                                      include_certificate=with_cert)
        issuer_id = 7
        batch = BatchSigner([(issuer_id, identity.signer, identity.key_hash, rsa_ca.cert_der)])
        job = SignJob(issuer_id, serial, alg.hashlib_name, status, reason, revoked_at, this, this + validity, extended)
        signed = batch.sign_one(job)
        served = assemble(signed, identity.certs_der)

        h = issuer_hashes(rsa_ca.cert_der, alg)
        cid = cert_id_der(alg, h.name_hash, h.key_hash, serial)
        at = lambda ts: dt.datetime.fromtimestamp(ts, dt.timezone.utc)  # noqa: E731
        if extended:
            single = never_issued(cid, at(this), at(this + validity))
        elif status is None:
            single = SingleResponse(cid, CertStatus.UNKNOWN, at(this), at(this + validity))
        elif status == 0:
            single = SingleResponse(cid, CertStatus.GOOD, at(this), at(this + validity))
        else:
            r = Reason.certificateHold if status == 2 else (None if reason in (None, 0) else Reason(reason))
            single = SingleResponse(cid, CertStatus.REVOKED, at(this), at(this + validity),
                                    revocation_time=at(revoked_at), reason=r)
        assert served == build_response(identity, at(this), [single], extended_revoke=extended)
        assert single_of(signed) == single.der()
        parsed = x509_ocsp.load_der_ocsp_response(served)
        assert parsed.serial_number == serial and len(parsed.certificates) == int(with_cert)
