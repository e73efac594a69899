"""A running server whose store gains a CA its configuration lacks (another process, with a
newer config, imported it) goes on publishing every CA it knows, logs the problem once with
its cause, and says in `/healthz/publication` that a restart is needed. Real `pkirepo serve`
and CLI subprocesses; the pure health record is tested with a hand-moved clock."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography import x509

from crl_testlib import CA, FULL, ServerProc, copy_demo, http_get, make_tiny_ca, template_demo, wait_until
from publisher.health import PublicationHealth

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


TINY_CONFIG = '''
[[ca]]
name = "TinyCA"
certificate = "pki/TinyCA.pem"
key = "pki/TinyCA.key"
full_crl = "TinyCACRL"
'''


def test_ca_added_while_serving_stops_no_publication(tmp_path_factory, tmp_path):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    crl = x509.load_der_x509_crl((demo.crl_dir / f"{FULL}.crl").read_bytes())
    listed = {r.serial_number for r in crl}
    good = next(c for c in x509.load_pem_x509_certificates((demo.pki / "subscribers.pem").read_bytes())
                if c.serial_number not in listed)
    server = ServerProc(demo)
    try:
        # The operator adds a CA to the config of the running server and imports its index.
        make_tiny_ca(demo.pki)
        with open(demo.config, "a") as f:
            f.write(TINY_CONFIG)
        index = tmp_path / "index.txt"
        index.write_text("R\t301231235959Z\t250101000000Z,keyCompromise\t10\tunknown\t/CN=one\n"
                         "V\t301231235959Z\t\t11\tunknown\t/CN=two\n")
        p = demo.cli("import", "openssl-index", str(index), "--ca", str(demo.pki / "TinyCA.pem"))
        assert p.returncode == 0, p.stderr
        # A revocation of a CA the server knows still gets its supplementary CRL.
        p = demo.cli("revoke", "--issuer", CA, "--serial", f"{good.serial_number:X}")
        assert p.returncode == 0, p.stderr

        def revoked_published():
            status, _, body = http_get(f"{server.url}/crl/{FULL}.crl")
            return status == 200 and x509.load_der_x509_crl(body).get_revoked_certificate_by_serial_number(
                good.serial_number) is not None

        wait_until(revoked_published, what=f"a supplementary {FULL} listing the revoked certificate")

        def publication_health():
            status, _, body = http_get(f"{server.url}/healthz/publication")
            text = body.decode()
            m = re.search(r"\((\d+) rounds\)", text)
            return (status, text) if m and int(m.group(1)) >= 3 else None

        status, text = wait_until(publication_health, what="/healthz/publication after three rounds")
        assert status == 503, text
        for named in ("TinyCACRL", "TinyCA", "CN=Tiny CA", "restart"):
            assert named in text, (named, text)
        assert "issuer id" not in text
        assert http_get(f"{server.url}/healthz")[0] == 200  # the process still serves
    finally:
        server.stop()
    log = server.log()
    # Once with its cause; three rounds later it is not repeated (at most one line a minute).
    assert len(re.findall(r"TinyCACRL: .*not published", log)) == 1, log
    assert "Traceback" not in log and "issuer id" not in log, log


def test_health_logs_once_then_at_a_bounded_rate_then_recovery():
    clock = [0.0]
    health = PublicationHealth(monotonic=lambda: clock[0])
    first = health.record(NOW, {"A": "disk full"})
    assert [(ln.level, ln.first) for ln in first] == [("error", True)] and "disk full" in first[0].text
    quiet = [health.record(NOW, {"A": "disk full"}) for _ in range(30)]
    assert quiet == [[]] * 30
    assert health.problems() == [f"A: not published since {NOW.isoformat()} (31 rounds): disk full"]
    clock[0] = 61.0
    again = health.record(NOW, {"A": "disk full"})
    assert len(again) == 1 and "30 similar message(s) suppressed" in again[0].text
    other = health.record(NOW, {"A": "key unreadable"})  # a new cause is reported at once
    assert len(other) == 1 and other[0].first and "key unreadable" in other[0].text
    back = health.record(NOW, {})
    assert [ln.level for ln in back] == ["info"] and health.problems() == []


@pytest.mark.parametrize("problems", [{}, {"B": "x"}])
def test_health_problems_name_each_scope(problems):
    health = PublicationHealth(monotonic=lambda: 0.0)
    health.record(NOW, problems)
    assert [p.split(":")[0] for p in health.problems()] == sorted(problems)
