"""OCSP keeps answering when the pre-signed table cannot be written (a full disk, a
read-only file): reads are served from memory and from what is stored, only saving fails,
and /healthz/ocsp says why.  The failure is made real and deterministic with a trigger
that refuses every write to the table, the way SQLite refuses a write to a full disk."""
from __future__ import annotations

import sqlite3

from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp

from crl_testlib import wait_until
from ocsp_testlib import CA, curl, get_url, request_der


def _serial(demo, name: str) -> int:
    return x509.load_pem_x509_certificate((demo.pki / name).read_bytes()).serial_number


def _status(demo, req: bytes, tmp_path):
    r = curl(get_url(demo, req), tmp=tmp_path)
    assert r.status == 200
    resp = x509_ocsp.load_der_ocsp_response(r.body)
    assert resp.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL, resp.response_status
    return resp.certificate_status


def test_unwritable_table_still_answers(fresh_demo, server_factory, tmp_path):
    demo = fresh_demo
    server = server_factory(demo)
    good = request_der(demo, tmp_path / "good.der", "good.pem")
    assert _status(demo, good, tmp_path) is x509_ocsp.OCSPCertStatus.GOOD
    store = next(demo.dir.glob("*.sqlite"))
    with sqlite3.connect(store) as db:
        for op in ("INSERT", "UPDATE"):
            db.execute(f"CREATE TRIGGER full_{op.lower()} BEFORE {op} ON ocsp_responses "
                       "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    # A change forces a new answer, which cannot be saved: it is served all the same.
    demo.cli("hold", "--issuer", CA, "--serial", f"{_serial(demo, 'good.pem'):X}")
    assert _status(demo, good, tmp_path) is x509_ocsp.OCSPCertStatus.REVOKED
    # The failed save is pre-signing's, in the background: readiness says so once it was tried.
    ready = wait_until(lambda: (r := curl(f"{demo.base_url}/healthz/ocsp", tmp=tmp_path)).status == 503 and r,
                       what="readiness reporting the failed save")
    assert b"cannot save pre-signed OCSP answers" in ready.body and b"disk is full" in ready.body
    log = server.log()
    assert "internalError" not in log and "Traceback" not in log
    # Writable again: the next save succeeds and readiness recovers.
    with sqlite3.connect(store) as db:
        db.execute("DROP TRIGGER full_insert")
        db.execute("DROP TRIGGER full_update")
    demo.cli("release", "--issuer", CA, "--serial", f"{_serial(demo, 'good.pem'):X}")
    assert _status(demo, good, tmp_path) is x509_ocsp.OCSPCertStatus.GOOD
    # The answer is served as soon as it is signed; the save that clears the problem is
    # pre-signing's, in the background, and may land a moment after.
    wait_until(lambda: curl(f"{demo.base_url}/healthz/ocsp", tmp=tmp_path).status == 200,
               what="readiness back after a successful save")


def test_malformed_requests_are_logged_at_a_bounded_rate(fresh_demo, server_factory, tmp_path):
    server = server_factory(fresh_demo)
    for i in range(150):
        r = curl(f"{fresh_demo.base_url}/ocsp/{'A' * (i % 7 + 4)}", tmp=tmp_path)
        assert r.status in (200, 400)
    lines = [line for line in server.log().splitlines() if "OCSP" in line and ("refused" in line or "GET from" in line)]
    assert 1 <= len(lines) <= 60, len(lines)
    assert "Traceback" not in server.log()
