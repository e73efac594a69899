"""Responder configurations: expired responder, never-issued as revoked, CA-key signing,
signed requests required."""
from __future__ import annotations

import datetime as dt
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ocsp_testlib import CA, ROOT, curl, lint, query, verified

NEVER_ISSUED = 0x7A11_0000_0000_0003


def _expired_responder(demo) -> None:
    ca_cert = x509.load_pem_x509_certificate((demo.pki / f"{CA}.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((demo.pki / f"{CA}.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Expired OCSP responder")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (demo.pki / "ocsp-expired.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = demo.pki / "ocsp-expired.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    demo.set_config(f'ocsp_responder = "pki/ocsp-{CA}.pem"', 'ocsp_responder = "pki/ocsp-expired.pem"')
    demo.set_config(f'ocsp_responder_key = "pki/ocsp-{CA}.key"', 'ocsp_responder_key = "pki/ocsp-expired.key"')


def test_expired_responder_fails_readiness_and_answers_try_later(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    _expired_responder(demo)
    server_factory(demo)
    ready = curl(f"{demo.base_url}/healthz/ocsp", tmp=tmp_path)
    assert ready.status == 503
    assert b"expired" in ready.body
    out = query(demo, "good.pem")
    assert "Responder Error: trylater (3)" in out.stdout + out.stderr
    # The other CA's responder is unaffected, and so is the rest of the repository.
    out = query(demo, f"{CA}.pem", issuer=ROOT)
    assert verified(out) and f"{CA}.pem: good" in out.stdout
    assert curl(f"{demo.base_url}/crl/", tmp=tmp_path).status == 200


def test_missing_responder_fails_readiness(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    (demo.pki / f"ocsp-{CA}.pem").unlink()
    server_factory(demo)
    ready = curl(f"{demo.base_url}/healthz/ocsp", tmp=tmp_path)
    assert ready.status == 503 and b"cannot read" in ready.body
    assert "Responder Error: trylater (3)" in "".join(query(demo, "good.pem").stdout)


def test_ready_when_all_is_well(shared_server, tmp_path):
    r = curl(f"{shared_server.url}/healthz/ocsp", tmp=tmp_path)
    assert r.status == 200 and r.body.startswith(b"ready\npre-signing: ")


def test_never_issued_as_revoked_signed_by_the_ca(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    with demo.config.open("a") as f:
        f.write('\n[ocsp]\nnever_issued = "revoked"\nsigner = "ca"\n')
    server_factory(demo)
    resp_path = tmp_path / "resp.der"
    out = query(demo, "good.pem", serials=(NEVER_ISSUED,), extra=("-respout", resp_path))
    assert verified(out), out.stdout + out.stderr
    assert "good.pem: good" in out.stdout
    assert f"{NEVER_ISSUED:#x}: revoked" in out.stdout
    assert "Reason: certificateHold" in out.stdout
    assert "Revocation Time: Jan  1 00:00:00 1970 GMT" in out.stdout
    resp = x509_ocsp.load_der_ocsp_response(resp_path.read_bytes())
    ext = resp.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.9"))
    assert not ext.critical  # RFC 6960 §4.4.8: Extended Revoked Definition, NULL
    ca_cert = x509.load_pem_x509_certificate((demo.pki / f"{CA}.pem").read_bytes())
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key()).digest
    result = lint(resp_path)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout


def test_signed_requests_required(fresh_demo, server_factory):
    demo = fresh_demo
    with demo.config.open("a") as f:
        f.write("\n[ocsp]\nrequire_signed_requests = true\n")
    server_factory(demo)
    out = query(demo, "good.pem")
    assert "Responder Error: sigrequired (5)" in out.stdout + out.stderr
    # Signed by a certificate one of our CAs issued: answered.
    signer = ("-signer", demo.pki / f"ocsp-{ROOT}.pem", "-signkey", demo.pki / f"ocsp-{ROOT}.key")
    out = query(demo, "good.pem", extra=signer)
    assert verified(out) and "good.pem: good" in out.stdout
    # Signed by a stranger: unauthorized.
    stranger_key, stranger = demo.dir / "stranger.key", demo.dir / "stranger.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", stranger_key, "-out", stranger, "-subj", "/CN=Stranger", "-days", "2"],
                   capture_output=True, check=True)
    out = query(demo, "good.pem", extra=("-signer", stranger, "-signkey", stranger_key))
    assert "Responder Error: unauthorized (6)" in out.stdout + out.stderr
