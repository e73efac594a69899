"""`openssl ocsp` and curl against `pkirepo serve` with the demo PKI (read-only tests)."""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import re

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from ocsp_testlib import CA, ROOT, curl, get_url, post, query, request_der, respin, verified

NEVER_ISSUED = 0x7A11_0000_0000_0001


@pytest.fixture(scope="module")
def demo(shared_server):
    return shared_server.demo


SAMPLES = [("good.pem", "good", None), ("revoked.pem", "revoked", "keyCompromise"), ("held.pem", "revoked", "certificateHold")]


class TestOpensslClient:
    @pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no_nonce"])
    @pytest.mark.parametrize("cert, status, reason", SAMPLES, ids=[s[0] for s in SAMPLES])
    def test_status(self, demo, cert, status, reason, nonce):
        out = query(demo, cert, nonce=nonce)
        assert verified(out), out.stdout + out.stderr
        assert f"{cert}: {status}" in out.stdout
        if reason:
            assert f"Reason: {reason}" in out.stdout
        assert "Next Update:" in out.stdout

    @pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no_nonce"])
    def test_never_issued_is_unknown(self, demo, nonce):
        out = query(demo, serials=(NEVER_ISSUED,), nonce=nonce)
        assert verified(out), out.stdout + out.stderr
        assert f"{NEVER_ISSUED:#x}: unknown" in out.stdout

    def test_several_in_one_request(self, demo):
        out = query(demo, "good.pem", "revoked.pem", "held.pem", serials=(NEVER_ISSUED,))
        assert verified(out), out.stdout + out.stderr
        for cert, status, _ in SAMPLES:
            assert f"{cert}: {status}" in out.stdout
        assert ": unknown" in out.stdout

    @pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
    def test_other_certid_hashes(self, demo, digest):
        out = query(demo, "good.pem", "revoked.pem", digest=digest, nonce=False)
        assert verified(out), out.stdout + out.stderr
        assert "good.pem: good" in out.stdout and "revoked.pem: revoked" in out.stdout

    def test_root_responder(self, demo):
        # The root's own delegated responder answers for the certificates the root issued.
        out = query(demo, f"{CA}.pem", "RetiredCA2-16.pem", issuer=ROOT)
        assert verified(out), out.stdout + out.stderr
        assert f"{CA}.pem: good" in out.stdout
        assert "RetiredCA2-16.pem: revoked" in out.stdout

    def test_issuer_we_do_not_serve(self, demo, tmp_path):
        key_pem = tmp_path / "k.pem"
        other = tmp_path / "other.pem"
        # A CA of our own making that the server does not know.
        assert __import__("subprocess").run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key_pem, "-out", other, "-subj", "/CN=Stranger CA", "-days", "2"],
            capture_output=True).returncode == 0
        out = __import__("subprocess").run(
            ["openssl", "ocsp", "-issuer", other, "-serial", "0x1234", "-url", f"{demo.base_url}/ocsp",
             "-CAfile", demo.pki / f"{ROOT}.pem"], capture_output=True, text=True)
        assert "Responder Error: unauthorized (6)" in out.stdout + out.stderr

    def test_mixed_issuers_are_refused(self, demo):
        out = query(demo, "good.pem", extra=("-issuer", demo.pki / f"{ROOT}.pem", "-cert", demo.pki / f"{CA}.pem"))
        assert "Responder Error: unauthorized (6)" in out.stdout + out.stderr


class TestGet:
    def test_get_post_and_encoded_get_agree(self, demo, tmp_path):
        req = request_der(demo, tmp_path / "req.der", "good.pem")
        via_post = post(demo, req, tmp_path)
        via_get = curl(get_url(demo, req), tmp=tmp_path)
        via_encoded = curl(get_url(demo, req, encode=True), tmp=tmp_path)
        for r in (via_post, via_get, via_encoded):
            assert r.status == 200
            assert r.headers["content-type"] == "application/ocsp-response"
        # Pre-signed: the same bytes whichever way it was asked.
        assert via_post.body == via_get.body == via_encoded.body
        resp = tmp_path / "resp.der"
        resp.write_bytes(via_get.body)
        out = respin(demo, resp, certs=("good.pem",))
        assert verified(out), out.stdout + out.stderr
        assert "good.pem: good" in out.stdout

    def test_get_with_slash_and_plus(self, demo, tmp_path):
        # A request whose base64 holds both "/" and "+", sent unencoded in the GET path. Long
        # serials vary a dozen base64 characters each, so one of the first few dozen does.
        ca = x509.load_pem_x509_certificate((demo.pki / f"{CA}.pem").read_bytes())
        name_hash = hashlib.sha1(ca.subject.public_bytes()).digest()
        # issuerKeyHash: SHA-1 of the subjectPublicKey bits (asn1crypto computes exactly that).
        key_hash = asn1_x509.Certificate.load(ca.public_bytes(serialization.Encoding.DER)).public_key.sha1
        for k in range(1, 2000):
            serial = 0x5DEECE66D * k * 0x9E3779B97F4A7C15
            req = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
                name_hash, key_hash, serial, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
            b64 = base64.b64encode(req).decode()
            if "/" in b64 and "+" in b64:
                break
        else:
            pytest.fail("no request with both / and + in its base64 among 2000 serials")
        plain = curl(f"{demo.base_url}/ocsp/{b64}", tmp=tmp_path)
        assert plain.status == 200
        assert x509_ocsp.load_der_ocsp_response(plain.body).serial_number == serial

    def test_rfc5019_caching_headers(self, demo, tmp_path):
        req = request_der(demo, tmp_path / "req.der", "revoked.pem")
        asked = dt.datetime.now(dt.timezone.utc)  # the server's "now" is at or after this
        r = curl(get_url(demo, req), tmp=tmp_path)
        answered = dt.datetime.now(dt.timezone.utc)  # ... and at or before this
        resp = x509_ocsp.load_der_ocsp_response(r.body)
        m = re.fullmatch(r"max-age=(\d+), public, no-transform, must-revalidate", r.headers["cache-control"])
        assert m, r.headers["cache-control"]
        assert email.utils.parsedate_to_datetime(r.headers["last-modified"]) == resp.this_update_utc
        assert email.utils.parsedate_to_datetime(r.headers["expires"]) == resp.next_update_utc
        # max-age is what is left until nextUpdate, as the server counted it while answering
        # (times in the response are whole seconds: one second of slack each way).
        assert (resp.next_update_utc - answered).total_seconds() - 1 <= int(m.group(1)) \
            <= (resp.next_update_utc - asked).total_seconds() + 1
        etag = r.headers["etag"]
        assert etag.startswith('"')
        again = curl(get_url(demo, req), "-H", f"If-None-Match: {etag}", tmp=tmp_path)
        assert again.status == 304 and again.body == b""

    def test_nonce_answers_are_not_cacheable(self, demo, tmp_path):
        req = request_der(demo, tmp_path / "req.der", "good.pem", nonce=True)
        r = curl(get_url(demo, req), tmp=tmp_path)
        assert r.status == 200
        assert r.headers["cache-control"] == "no-store"
        resp = tmp_path / "resp.der"
        resp.write_bytes(r.body)
        out = respin(demo, resp, req=tmp_path / "req.der")
        assert verified(out), out.stdout + out.stderr

    def test_pre_signed_response_is_reused(self, demo, tmp_path):
        req = request_der(demo, tmp_path / "req.der", "good.pem")
        first = post(demo, req, tmp_path).body
        second = post(demo, req, tmp_path).body
        assert first == second  # not signed again: same producedAt, same signature
        resp = x509_ocsp.load_der_ocsp_response(first)
        assert resp.produced_at_utc == resp.this_update_utc
        assert resp.responder_key_hash is not None and resp.responder_name is None  # byKey
        responder = x509.load_pem_x509_certificate((demo.pki / f"ocsp-{CA}.pem").read_bytes())
        assert resp.certificates == [responder]
