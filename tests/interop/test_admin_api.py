"""The admin API against a real `pkirepo serve`: HTTPS with client certificates made by
`demo init` (curl and aiohttp as clients), a revocation seen by OpenSSL's OCSP client and in
the next supplementary CRL, idempotent retries, refusals that change nothing, and 8 clients
revoking 1,000 certificates at once."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import sqlite3
import ssl
import subprocess

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ocsp_testlib import CA, query, verified
from repo_testlib import Server, make_demo
from workers_testlib import wait_for

from publisher.demo_admin import issue, make_ca

READER_TOKEN = "reader-token-0123456789"  # role auditor only
FEED_TOKEN = "feed-token-9876543210"  # role revoker


def _tokens_section() -> str:
    def h(t: str) -> str:
        return hashlib.sha256(t.encode()).hexdigest()
    return (f'\n[[admin.tokens]]\nname = "reader"\nsha256 = "{h(READER_TOKEN)}"\nroles = ["auditor"]\n'
            f'\n[[admin.tokens]]\nname = "feed"\nsha256 = "{h(FEED_TOKEN)}"\nroles = ["revoker"]\n')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    demo = make_demo(tmp_path_factory.mktemp("admin") / "demo", subscribers=1100, delay=0)
    with demo.config.open("a") as f:
        f.write(_tokens_section())
    server = Server(demo)
    yield demo, server
    server.stop()


def url(demo, path: str) -> str:
    return f"https://127.0.0.1:{demo.admin_port}/admin/v1{path}"


def curl(demo, path: str, *, role: str | None = "revoker", body: dict | None = None, key: str | None = None,
         cert: tuple | None = None, headers: dict | None = None) -> tuple[int, dict | None, str]:
    """(status, JSON body, content type) of one request by curl; status 0 when TLS refused."""
    pki = demo.pki
    args = ["curl", "-s", "--max-time", "20", "--cacert", str(pki / "admin-ca.pem"),
            "-w", "\n%{http_code}\n%{content_type}"]
    if cert is not None:
        args += ["--cert", str(cert[0]), "--key", str(cert[1])]
    elif role is not None:
        args += ["--cert", str(pki / f"admin-{role}.pem"), "--key", str(pki / f"admin-{role}.key")]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    if key is not None:
        args += ["-H", f"Idempotency-Key: {key}"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    p = subprocess.run(args + [url(demo, path)], capture_output=True, text=True, timeout=30)
    text, code, ctype = p.stdout.rsplit("\n", 2)
    return int(code), (json.loads(text) if text.strip() else None), ctype


def serial_of(demo, name: str) -> int:
    return x509.load_pem_x509_certificate((demo.pki / name).read_bytes()).serial_number


def store_state(demo) -> tuple:
    """What a refusal must leave as it was: the change log's head (apart from the CRLs the
    server issues on its own meanwhile) and every status."""
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        return (con.execute("SELECT max(id) FROM events WHERE kind <> 'crl'").fetchone(),
                con.execute("SELECT count(*), sum(status) FROM certificates").fetchone(),
                con.execute("SELECT count(*) FROM idempotency_keys").fetchone())
    finally:
        con.close()


def good_serials(demo, n: int) -> list[int]:
    rows = json.loads(demo.cli("cert", "list", "--issuer", CA, "--status", "good", "--json").stdout)
    return [int(r["serial"], 16) for r in rows if not r["is_ca"]][:n]


def crl_lists(demo, serial: int) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{demo.base_url}/crl/{CA}CRL1.crl", timeout=10) as r:
        crl = x509.load_der_x509_crl(r.read())
    return crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_revocation_by_client_certificate_shows_in_ocsp_and_the_next_crl_and_a_retry_changes_nothing(served):
    demo, _ = served
    serial = serial_of(demo, "good.pem")
    assert "good.pem: good" in query(demo, "good.pem").stdout
    body = {"issuer": CA, "serial": f"{serial:X}", "reason": "keyCompromise",
            "invalidity_date": "2026-01-02T03:04:05Z"}
    status, first, ctype = curl(demo, "/revoke", body=body, key="revoke-good-1")
    assert (status, ctype) == (200, "application/json"), first
    assert first["status"] == "revoked" and first["reason"] == "keyCompromise"
    out = query(demo, "good.pem")
    assert verified(out) and "good.pem: revoked" in out.stdout and "Reason: keyCompromise" in out.stdout
    wait_for(lambda: crl_lists(demo, serial), 30, "the supplementary CRL listing the revocation")

    before = store_state(demo)
    status, again, _ = curl(demo, "/revoke", body=body, key="revoke-good-1")
    assert (status, again) == (200, first)  # answered as the first time, from the store
    assert store_state(demo) == before
    status, problem, ctype = curl(demo, "/revoke", body={**body, "reason": "superseded"}, key="revoke-good-1")
    assert (status, ctype) == (422, "application/problem+json")
    assert problem["field"] == "Idempotency-Key" and problem["status"] == 422
    assert store_state(demo) == before
    # Without a key a revocation is refused before anything happens, naming the header.
    status, problem, _ = curl(demo, "/revoke", body=body)
    assert status == 400 and problem["field"] == "Idempotency-Key"
    # A second revocation under a new key is the service's refusal: a revocation is final.
    status, problem, _ = curl(demo, "/revoke", body=body, key="revoke-good-2")
    assert status == 409 and "already revoked" in problem["detail"]
    # Its history: one revocation.
    status, info, _ = curl(demo, f"/certificates/{CA}/{serial:X}", role="auditor")
    assert status == 200 and [h["action"] for h in info["history"]] == ["revoke"]
    assert any(c["listed"] for c in info["crls"])


def _write(where, name: str, cert: x509.Certificate, key) -> tuple:
    """`cert` and `key` as PEM files for curl."""
    c, k = where / f"{name}.pem", where / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def test_refusals_before_the_service_401_403_as_problems_and_nothing_changes(served, tmp_path):
    demo, _ = served
    serial = serial_of(demo, "held.pem")
    body = {"issuer": CA, "serial": f"{serial:X}"}
    before = store_state(demo)
    # No certificate, no token.
    status, problem, ctype = curl(demo, "/release", role=None, body=body, key="r1")
    assert (status, ctype) == (401, "application/problem+json")
    assert set(problem) >= {"type", "title", "status", "detail"} and problem["status"] == 401
    # An expired client certificate from the admin CA.
    ca = x509.load_pem_x509_certificate((demo.pki / "admin-ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((demo.pki / "admin-ca.key").read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    old, old_key = issue(ca, ca_key, "Demo admin revoker", now=now, days=1, not_before=now - dt.timedelta(days=30))
    status, problem, ctype = curl(demo, "/release", cert=_write(tmp_path, "old", old, old_key), body=body, key="r1")
    assert (status, ctype) == (401, "application/problem+json") and "expired" in problem["detail"]
    # A token that is not configured; a token without the role.
    status, problem, _ = curl(demo, "/release", role=None, body=body, key="r1",
                              headers={"Authorization": "Bearer not-a-token"})
    assert status == 401
    status, problem, ctype = curl(demo, "/release", role=None, body=body, key="r1",
                                  headers={"Authorization": f"Bearer {READER_TOKEN}"})
    assert (status, ctype) == (403, "application/problem+json") and "revoker" in problem["detail"]
    # A client certificate whose role is another.
    status, problem, _ = curl(demo, "/release", role="publisher", body=body, key="r1")
    assert status == 403
    # A certificate from a CA the admin API does not trust; one from a CA that only copies
    # the admin CA's name; a certificate made for servers, not clients: each a 401 saying why
    # (the handshake lets them through, so the caller gets an answer, not a TLS alert).
    fake_ca, fake_key = make_ca("Demo Admin Client CA", now=now)
    forged, forged_key = issue(fake_ca, fake_key, "Demo admin revoker", now=now)
    for (c, k), why in (((demo.pki / "trustlist-signer.pem", demo.pki / "trustlist-signer.key"), "admin.client_cas"),
                        (_write(tmp_path, "forged", forged, forged_key), "admin.client_cas"),
                        ((demo.pki / "admin-server.pem", demo.pki / "admin-server.key"), "clientAuth")):
        status, problem, ctype = curl(demo, "/release", cert=(c, k), body=body, key="r1")
        assert (status, ctype) == (401, "application/problem+json") and why in problem["detail"], (c, problem)
    # Field validation: each refusal names its field.
    for bad, field in (({"issuer": CA, "serial": "-12"}, "serial"), ({"issuer": CA}, "serial"),
                       ({"issuer": "no/such", "serial": "12"}, "issuer"),
                       ({**body, "colour": "red"}, "colour")):
        status, problem, _ = curl(demo, "/release", body=bad, key="r1")
        assert status == 400 and problem["field"] == field, problem
    status, problem, _ = curl(demo, "/revoke", body={**body, "reason": "certificateHold"}, key="r1")
    assert status == 400 and problem["field"] == "reason"
    status, problem, _ = curl(demo, "/revoke", body={**body, "revocation_time": "yesterday"}, key="r1")
    assert status == 400 and problem["field"] == "revocation_time"
    status, problem, _ = curl(demo, "/certificates", role="publisher", body={"certificates": [{"der": "%%%"}]})
    assert status == 400 and problem["field"] == "certificates"
    status, problem, _ = curl(demo, "/certificates", role="publisher",
                              body={"certificates": [{"pem": "x"}] * 101})
    assert status == 400 and "max_batch" in problem["detail"]
    assert store_state(demo) == before
    # The feed token holds the role: the release goes through.
    status, answer, _ = curl(demo, "/release", role=None, body=body, key="r1",
                             headers={"Authorization": f"Bearer {FEED_TOKEN}"})
    assert status == 200 and answer["status"] == "good"


def test_a_body_over_the_cap_is_413_and_unknown_routes_are_problems(served, tmp_path):
    demo, _ = served
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"certificates": [{"pem": "A" * (2 * 1024 * 1024)}]}))
    p = subprocess.run(["curl", "-s", "--cacert", str(demo.pki / "admin-ca.pem"),
                        "--cert", str(demo.pki / "admin-publisher.pem"), "--key", str(demo.pki / "admin-publisher.key"),
                        "-H", "Content-Type: application/json", "--data-binary", f"@{big}",
                        "-w", "\n%{http_code}", url(demo, "/certificates")], capture_output=True, text=True, timeout=30)
    text, code = p.stdout.rsplit("\n", 1)
    assert code == "413" and json.loads(text)["status"] == 413
    status, problem, ctype = curl(demo, "/no-such-thing", role="auditor")
    assert (status, ctype, problem["status"]) == (404, "application/problem+json", 404)
    # The auditor reads the trail: the refusals just made are on it, with their actor.
    status, body, _ = curl(demo, "/audit?since=2026-01-01T00:00:00Z", role="auditor")
    assert status == 200, body
    assert any(r["result"].startswith("refused") and "publisher" in r["actor"]["name"] for r in body["records"]), \
        body["records"][-5:]
    status, problem, _ = curl(demo, "/audit?since=2026-01-01T00:00:00Z", role="revoker")
    assert status == 403 and problem["status"] == 403


def test_a_batch_of_certificates_is_added_all_or_nothing(served, tmp_path):
    demo, _ = served
    ca = demo.pki / "ca.pem"
    # Two new certificates from the demo CA (as its own systems would issue them).
    pems = []
    for i in range(2):
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(tmp_path / f"n{i}.key"), "-subj", f"/CN=API Subscriber {i}",
                        "-out", str(tmp_path / f"n{i}.csr")], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", str(tmp_path / f"n{i}.csr"), "-CA", str(ca),
                        "-CAkey", str(demo.pki / f"{CA}.key"), "-set_serial", f"0x7{i}AB{i}CD", "-days", "30",
                        "-out", str(tmp_path / f"n{i}.pem")], check=True, capture_output=True)
        pems.append((tmp_path / f"n{i}.pem").read_text())
    import base64

    der0 = base64.b64encode(x509.load_pem_x509_certificate(pems[0].encode()).public_bytes(
        serialization.Encoding.DER)).decode()
    before = store_state(demo)
    # One already in the repository: nothing of the batch is added.
    status, problem, _ = curl(demo, "/certificates", role="publisher",
                              body={"certificates": [{"der": der0}, {"pem": (demo.pki / "good.pem").read_text()}]})
    assert status == 409 and "certificates[1]" in problem["detail"]
    assert store_state(demo) == before
    status, answer, _ = curl(demo, "/certificates", role="publisher",
                             body={"certificates": [{"der": der0}, {"pem": pems[1]}]}, key="batch-1")
    assert (status, answer) == (201, {"added": 2})
    status, again, _ = curl(demo, "/certificates", role="publisher",
                            body={"certificates": [{"der": der0}, {"pem": pems[1]}]}, key="batch-1")
    assert (status, again) == (201, {"added": 2})


def test_maintenance_by_the_operator_pauses_changes_and_a_paused_change_is_not_kept(served):
    demo, _ = served
    day = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).strftime("%Y-%m-%dT02:00:00Z")
    status, window, _ = curl(demo, "/maintenance", role="operator", key="m-1",
                             body={"start": day, "duration_minutes": 30, "reason": "store upgrade"})
    assert status == 201 and window["state"] == "announced"
    status, problem, _ = curl(demo, "/maintenance", role="operator",
                              body={"start": day.replace("T02", "T05"), "duration_minutes": 100, "reason": "too long"})
    assert status == 409 and "120" in problem["detail"]  # over the weekly budget, as the CLI says
    status, listed, _ = curl(demo, "/maintenance", role="operator")
    assert status == 200 and [w["id"] for w in listed["windows"]] == [window["id"]]
    assert curl(demo, f"/maintenance/{window['id']}/cancel", role="operator", body={})[0] == 200
    assert curl(demo, "/maintenance/emergency", role="operator", body={"reason": "disk"})[0] == 201
    serial = serial_of(demo, "revoked.pem") + 0  # any certificate: the window refuses first
    body = {"issuer": CA, "serial": f"{serial:X}"}
    try:
        status, problem, _ = curl(demo, "/hold", body=body, key="m-hold")
        assert status == 503 and "in maintenance" in problem["detail"]
    finally:
        assert curl(demo, "/maintenance/end", role="operator", body={"reason": "done"})[0] == 200
    # The 503 was not kept as the key's answer: the retry is carried out (and refused by the
    # service: a revoked certificate cannot be held).
    status, problem, _ = curl(demo, "/hold", body=body, key="m-hold")
    assert status == 409 and "already revoked" in problem["detail"]


def test_eight_clients_revoke_1000_certificates_at_once_each_stored_once(served):
    demo, _ = served
    serials = good_serials(demo, 1000)
    assert len(serials) == 1000
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    (revokes_before,) = con.execute("SELECT count(*) FROM events WHERE kind = 'revoke'").fetchone()
    con.close()
    ctx = ssl.create_default_context(cafile=str(demo.pki / "admin-ca.pem"))
    ctx.load_cert_chain(demo.pki / "admin-revoker.pem", demo.pki / "admin-revoker.key")

    async def client(share: list[int]) -> list[int]:
        statuses = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1)) as s:
            for serial in share:
                async with s.post(url(demo, "/revoke"), json={"issuer": CA, "serial": f"{serial:X}",
                                                              "reason": "cessationOfOperation"},
                                  headers={"Idempotency-Key": f"bulk-{serial:X}"}) as r:
                    statuses.append(r.status)
        return statuses

    async def main():
        return await asyncio.gather(*(client(serials[i::8]) for i in range(8)))

    results = asyncio.run(main())
    assert [s for shard in results for s in shard] == [200] * 1000
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        (revokes_after,) = con.execute("SELECT count(*) FROM events WHERE kind = 'revoke'").fetchone()
        assert revokes_after - revokes_before == 1000  # each stored once
        rows = json.loads(demo.cli("cert", "list", "--issuer", CA, "--status", "revoked", "--json").stdout)
        assert {int(r["serial"], 16) for r in rows} >= set(serials)
        # Each on record once, by the client certificate that made it, and the chain unbroken.
        recorded = con.execute("SELECT object, actor_kind, actor_name FROM audit WHERE action = 'revoke'"
                               " AND result = 'ok' AND object LIKE ?", (f"certificate {CA} %",)).fetchall()
        mine = [r for r in recorded if int(r[0].rsplit(" ", 1)[1], 16) in set(serials)]
        assert len(mine) == 1000 and len({r[0] for r in mine}) == 1000
        assert all(kind == "certificate" and "revoker" in name for _, kind, name in mine)
    finally:
        con.close()
    verify = demo.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
