"""Status changes made with the CLI while the server runs show in the very next answer."""
from __future__ import annotations

from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp

from ocsp_testlib import CA, curl, get_url, post, query, request_der, verified


def _serial(demo, name: str) -> int:
    return x509.load_pem_x509_certificate((demo.pki / name).read_bytes()).serial_number


def _get_status(demo, req: bytes, tmp_path):
    r = curl(get_url(demo, req), tmp=tmp_path)
    assert r.status == 200
    return x509_ocsp.load_der_ocsp_response(r.body)


def test_revocation_hold_release_in_the_next_answer(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    server_factory(demo)
    serial = _serial(demo, "good.pem")
    req = request_der(demo, tmp_path / "req.der", "good.pem")
    # Warm every path: the pre-signed GET answer is in memory now.
    assert _get_status(demo, req, tmp_path).certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    assert "good.pem: good" in query(demo, "good.pem").stdout

    demo.cli("hold", "--issuer", CA, "--serial", f"{serial:X}")
    resp = _get_status(demo, req, tmp_path)
    assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.certificate_hold
    out = query(demo, "good.pem")
    assert verified(out) and "good.pem: revoked" in out.stdout and "Reason: certificateHold" in out.stdout

    demo.cli("release", "--issuer", CA, "--serial", f"{serial:X}")
    assert _get_status(demo, req, tmp_path).certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    out = query(demo, "good.pem", nonce=False)
    assert verified(out) and "good.pem: good" in out.stdout

    demo.cli("revoke", "--issuer", CA, "--serial", f"{serial:X}", "--reason", "keyCompromise")
    resp = _get_status(demo, req, tmp_path)
    assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.key_compromise
    assert x509_ocsp.load_der_ocsp_response(post(demo, req, tmp_path).body).certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    out = query(demo, "good.pem")
    assert verified(out) and "good.pem: revoked" in out.stdout and "Reason: keyCompromise" in out.stdout


def test_change_while_stopped_voids_the_stored_answer(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    server = server_factory(demo)
    req = request_der(demo, tmp_path / "req.der", "good.pem")
    before = _get_status(demo, req, tmp_path)
    assert before.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    assert server.stop() == 0
    # The pre-signed good answer stays in the store; the revocation must make it unusable.
    demo.cli("revoke", "--issuer", CA, "--serial", f"{_serial(demo, 'good.pem'):X}", "--reason", "superseded")
    server_factory(demo)
    resp = _get_status(demo, req, tmp_path)
    assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.superseded


def test_restart_serves_stored_answers(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    server = server_factory(demo)
    req = request_der(demo, tmp_path / "req.der", "revoked.pem")
    first = curl(get_url(demo, req), tmp=tmp_path).body
    assert server.stop() == 0
    server_factory(demo)
    # The same bytes after a restart: the answer came from the store, not a new signature.
    assert curl(get_url(demo, req), tmp=tmp_path).body == first
