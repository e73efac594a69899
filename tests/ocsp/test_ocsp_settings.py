"""The [ocsp] settings and the responder files of each CA."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

import ocsp_pki
from ocsp.config import NeverIssued, SignerMode
from ocsp.request import HashAlgorithm
from ocsp.responders import load_responders
from publisher.root import load_settings
from publisher.errors import ConfigError
from publisher.signer import KeySigner
from publisher.store import Issuer


def _config(tmp_path, ec_ca, *, ocsp: str = "", ca_extra: str = "") -> object:
    ocsp_pki.write(ec_ca, tmp_path / "pki")
    text = f"""
[[ca]]
name = "TestCA"
certificate = "pki/ca.pem"
{ca_extra}
{ocsp}
"""
    path = tmp_path / "pkirepo.toml"
    path.write_text(text)
    return load_settings(path)


class TestLoadOcspSettings:
    def test_defaults(self, tmp_path, ec_ca):
        s = _config(tmp_path, ec_ca).ocsp
        assert s.enabled and s.signer is SignerMode.DELEGATED
        assert (s.max_requests, s.max_nonce_length, s.max_body_bytes) == (16, 32, 10240)
        assert s.refresh == dt.timedelta(hours=4) and s.validity == dt.timedelta(hours=8)
        assert s.presign_hashes == (HashAlgorithm.SHA1, HashAlgorithm.SHA256)
        assert s.never_issued is NeverIssued.UNKNOWN and not s.ignore_nonce and not s.require_signed_requests
        assert s.responder_files("TestCA") is None

    def test_values(self, tmp_path, ec_ca):
        s = _config(tmp_path, ec_ca, ocsp="""
[ocsp]
signer = "ca"
max_nonce_length = 128
never_issued = "revoked"
refresh_minutes = 60
validity_minutes = 120
presign_hashes = ["SHA256"]
""").ocsp
        assert s.signer is SignerMode.CA and s.max_nonce_length == 128 and s.never_issued is NeverIssued.REVOKED
        assert s.presign_hashes == (HashAlgorithm.SHA256,) and s.limits.max_nonce_length == 128

    @pytest.mark.parametrize(
        "ocsp, message",
        [
            ("max_nonce_length = 129", "ocsp.max_nonce_length: must be at most 128"),
            ("max_nonce_length = 0", "ocsp.max_nonce_length: must be at least 1"),
            ('signer = "hsm"', "ocsp.signer: 'hsm': use \"delegated\" or \"ca\""),
            ('never_issued = "good"', "ocsp.never_issued"),
            ('presign_hashes = ["md5"]', "ocsp.presign_hashes: 'md5'"),
            ("refresh_minutes = 600", "validity_minutes: must not be shorter than refresh_minutes"),
            ("nonce_max = 5", "unknown key(s): nonce_max"),
            ("ignore_nonce = 1", "ocsp.ignore_nonce: must be true or false"),
        ],
    )
    def test_errors_name_the_key(self, tmp_path, ec_ca, ocsp, message):
        with pytest.raises(ConfigError) as info:
            _config(tmp_path, ec_ca, ocsp=f"[ocsp]\n{ocsp}\n")
        assert message in info.value.message
        assert str(tmp_path / "pkirepo.toml") in info.value.message

    def test_responder_paths_relative_to_the_config(self, tmp_path, ec_ca):
        s = _config(tmp_path, ec_ca, ca_extra='ocsp_responder = "pki/responder.pem"\nocsp_responder_key = "pki/responder.key"').ocsp
        files = s.responder_files("TestCA")
        assert files.certificate == tmp_path.resolve() / "pki" / "responder.pem"

    def test_responder_needs_both_keys(self, tmp_path, ec_ca):
        with pytest.raises(ConfigError, match="ocsp_responder_key: needed together"):
            _config(tmp_path, ec_ca, ca_extra='ocsp_responder = "pki/responder.pem"')


def _issuer(ca) -> Issuer:
    return Issuer(1, "TestCA", ca.cert.subject.public_bytes(), b"k", ca.cert_der)


class TestLoadResponders:
    def test_delegated(self, tmp_path, ec_ca):
        s = _config(tmp_path, ec_ca, ca_extra='ocsp_responder = "pki/responder.pem"\nocsp_responder_key = "pki/responder.key"').ocsp
        r = load_responders(s, [_issuer(ec_ca)], {})[1]
        assert r.problem is None and r.identity is not None
        assert r.not_after == ocsp_pki.RESPONDER_NOT_AFTER
        assert r.problem_at(ocsp_pki.NOW) is None
        assert "expired" in r.problem_at(ocsp_pki.RESPONDER_NOT_AFTER)
        assert "not valid before" in r.problem_at(ocsp_pki.RESPONDER_NOT_BEFORE - dt.timedelta(seconds=1))

    def test_missing_files_and_wrong_certificates_are_problems_not_crashes(self, tmp_path, ec_ca, rsa_ca):
        base = 'ocsp_responder = "pki/{cert}"\nocsp_responder_key = "pki/{key}"'
        s = _config(tmp_path, ec_ca, ca_extra=base.format(cert="nope.pem", key="responder.key")).ocsp
        assert "cannot read" in load_responders(s, [_issuer(ec_ca)], {})[1].problem
        # The CA certificate itself: not issued by... itself as a responder (no OCSPSigning EKU).
        s = _config(tmp_path, ec_ca, ca_extra=base.format(cert="ca.pem", key="responder.key")).ocsp
        assert "id-kp-OCSPSigning" in load_responders(s, [_issuer(ec_ca)], {})[1].problem
        # Another CA's responder.
        ocsp_pki.write(rsa_ca, tmp_path / "other")
        s = _config(tmp_path, ec_ca, ca_extra='ocsp_responder = "other/responder.pem"\nocsp_responder_key = "pki/responder.key"').ocsp
        assert "not issued by CA TestCA" in load_responders(s, [_issuer(ec_ca)], {})[1].problem
        # The right certificate with the wrong key.
        (tmp_path / "pki" / "wrong.key").write_bytes(rsa_ca.responder_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (tmp_path / "pki" / "wrong.key").chmod(0o600)
        s = _config(tmp_path, ec_ca, ca_extra=base.format(cert="responder.pem", key="wrong.key")).ocsp
        assert "does not belong to" in load_responders(s, [_issuer(ec_ca)], {})[1].problem
        # A key file others can read.
        s = _config(tmp_path, ec_ca, ca_extra=base.format(cert="responder.pem", key="responder.key")).ocsp
        (tmp_path / "pki" / "responder.key").chmod(0o644)
        assert "chmod 600" in load_responders(s, [_issuer(ec_ca)], {})[1].problem

    def test_no_responder_configured(self, tmp_path, ec_ca):
        s = _config(tmp_path, ec_ca).ocsp
        assert "has no ocsp_responder" in load_responders(s, [_issuer(ec_ca)], {})[1].problem

    def test_ca_key_mode(self, tmp_path, ec_ca):
        s = _config(tmp_path, ec_ca, ocsp='[ocsp]\nsigner = "ca"\n').ocsp
        assert "has no key" in load_responders(s, [_issuer(ec_ca)], {})[1].problem
        r = load_responders(s, [_issuer(ec_ca)], {"TestCA": KeySigner(ec_ca.key)})[1]
        assert r.problem is None and r.identity.certificate_der == ec_ca.cert_der
