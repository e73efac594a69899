"""`pkirepo demo init` past a few chunks: subscriber certificates made by worker processes,
streamed into a real SQLite store with their planned statuses, the PEM bundle written as
they come, and the CRLs issued over them. Run through the real CLI."""
from __future__ import annotations

import sqlite3

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from publisher.demo import CHUNK
from publisher.demo_pki import _plan
from repo_testlib import run_cli

N = 2 * CHUNK + 500  # past the size made in-process: a pool of workers makes them


def test_demo_init_streams_through_worker_processes(tmp_path):
    demo = tmp_path / "demo"
    proc = run_cli("demo", "init", str(demo), "--subscribers", str(N), "--issuing-key", "ec",
                   "--revoke-every", "10")
    assert f"subscriber certificates: {N}/{N} (100%)" in proc.stderr

    ca = x509.load_pem_x509_certificate((demo / "pki" / "ca.pem").read_bytes())
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    bundle = x509.load_pem_x509_certificates((demo / "pki" / "subscribers.pem").read_bytes())
    assert len(bundle) == N
    for cert in bundle[:: N // 50]:
        cert.verify_directly_issued_by(ca)
    assert [c.subject.get_attributes_for_oid(x509.NameOID.EMAIL_ADDRESS)[0].value for c in bundle[:2]] == [
        "subscriber0000@example.hk", "subscriber0001@example.hk"]

    db = sqlite3.connect(demo / "pkirepo.sqlite")
    try:
        (ca_id,) = db.execute("SELECT id FROM issuers WHERE name = 'eCertCA2-17'").fetchone()
        rows = db.execute("SELECT serial, der, status FROM certificates WHERE issuer_id = ? AND is_ca = 0",
                          (ca_id,)).fetchall()
        revoked_rows = db.execute("SELECT count(*) FROM revoked WHERE issuer_id = ?", (ca_id,)).fetchone()[0]
    finally:
        db.close()
    assert len(rows) == N
    assert sorted(bytes(r[1]) for r in rows) == sorted(c.public_bytes(Encoding.DER) for c in bundle)
    plan = _plan(N, 10)
    statuses = [r[2] for r in rows]
    assert statuses.count(1) == len(plan.revoked) and statuses.count(2) == 1
    assert revoked_rows == len(plan.revoked) + 1

    full = x509.load_der_x509_crl((demo / "pub" / "crl" / "eCertCA2-17CRL1.crl").read_bytes())
    assert full.is_signature_valid(ca.public_key())
    assert len(full) == len(plan.revoked) + 1  # every revocation and the hold
    assert full.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number == 1
