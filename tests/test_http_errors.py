"""HTTP publication: bad input, unknown names, path traversal, HEAD, conditional GET,
caching headers, content types, archive listing and the PKCS#7 chain.

The app is the real one (`publisher.root.create_app` over a copied demo's settings and a real
`SQLiteStore`) served by aiohttp's TestServer on 127.0.0.1. It gets no signers, so nothing
is issued behind the tests' backs and a pinned clock can be used for the caching headers.
Requests whose exact bytes matter (traversal) are sent with http.client, which sends the
path as given.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import http.client
import json
import re

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from asn1crypto import cms
from cryptography import x509

from crl_testlib import ARL, CA, FULL, PARTITIONS, ROOT, copy_demo, load_cert, openssl, openssl_text, template_demo
from publisher.root import create_app
from publisher.clock import FixedClock, SystemClock
from publisher.root import load_settings
from publisher.sqlite_store import SQLiteStore


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("http") / "demo")
    # A second CRL for the full scope, so the archive has more than one entry.
    assert d.cli("publish", "--issuer", CA).returncode == 0
    return d


async def _client(demo, clock):
    settings = load_settings(demo.config)
    store = SQLiteStore(settings.store_path)
    await store.open()
    app = create_app(settings, store=store, signers={}, clock=clock)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client, store


# One app and one event loop for the module: starting the app per test costs ~0.15 s.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(demo):
    c, store = await _client(demo, SystemClock())
    yield c
    await c.close()
    await store.close()


def raw_get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)  # sent exactly as written: no normalisation, no quoting
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


async def raw(client, path: str, method: str = "GET") -> tuple[int, bytes]:
    return await asyncio.to_thread(raw_get, client.port, path, method)


# Bad input and unknown names

LONG = "A" * 41
BAD_REQUESTS = [
    # (path, status, reason text)
    ("/crl/bad%20name.crl", 400, "not a valid CRL name"),
    ("/crl/.hidden.crl", 400, "not a valid CRL name"),
    ("/crl/%00.crl", 400, "not a valid CRL name"),
    ("/crl/archive/eCertCA2-17CRL1/1x.crl", 400, "is not a CRL number"),
    ("/crl/archive/eCertCA2-17CRL1/0x1.crl", 400, "is not a CRL number"),
    ("/crl/archive/eCertCA2-17CRL1/-1.crl", 400, "not a valid archived CRL name"),
    ("/crl/archive/eCertCA2-17CRL1/" + "9" * 50 + ".crl", 400, "is not a CRL number"),
    ("/crl/archive/b%20d/", 400, "not a valid CRL name"),
    ("/crl/archive/b%20d/1.crl", 400, "not a valid CRL name"),
    ("/certs/eCertCA2-17/XYZ.cer", 400, "is not a serial number"),
    (f"/certs/eCertCA2-17/{LONG}.cer", 400, "is not a serial number"),
    ("/certs/eCertCA2-17/-1.cer", 400, "not a valid certificate name"),
    ("/certs/b%20d/00.cer", 400, "not a valid issuer name"),
    ("/ca/b%20d.cer", 400, "not a valid CA certificate name"),
    ("/ca/b%20d.p7c", 400, "not a valid CA certificate name"),
    # unknown
    ("/crl/nope.crl", 404, "no CRL named 'nope'"),
    ("/crl/eCertCA2-17CRL1.txt", 404, "names end in .crl"),
    ("/crl/eCertCA2-17CRL1", 404, "names end in .crl"),
    ("/crl/archive/nope/", 404, "no CRL named 'nope'"),
    ("/crl/archive/nope/1.crl", 404, "no CRL named 'nope'"),
    ("/crl/archive/eCertCA2-17CRL1/999.crl", 404, "no CRL number 999"),
    ("/crl/archive/eCertCA2-17CRL1/0.crl", 404, "no CRL number 0"),
    ("/ca/nope.cer", 404, "unknown issuer 'nope'"),
    ("/ca/nope.p7c", 404, "unknown issuer 'nope'"),
    ("/ca/RootCA2.der", 404, "names end in .cer"),
    ("/cps", 404, "no CPS is published yet"),
    ("/certs/nope/00.cer", 404, "unknown issuer 'nope'"),
    ("/certs/eCertCA2-17/00.cer", 404, "no certificate 00 from eCertCA2-17"),
    ("/certs/eCertCA2-17/01.pem", 404, "names end in .cer"),
    ("/nothing-here", 404, ""),
]


@pytest.mark.parametrize("path,status,reason", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_and_unknown(client, path, status, reason):
    got, body = await raw(client, path)
    assert got == status, body
    assert reason in body.decode(errors="replace"), body
    assert b"Traceback" not in body and b"internal error" not in body


async def test_certificate_under_the_wrong_issuer_is_unknown(client, demo):
    serial = load_cert(demo.pki / "good.pem").serial_number
    got, _ = await raw(client, f"/certs/{ROOT}/{serial:X}.cer")
    assert got == 404
    got, body = await raw(client, f"/certs/{CA}/{serial:x}.cer")  # lower-case hex is fine
    assert got == 200 and body == load_cert(demo.pki / "good.pem").dump()


async def test_other_methods_not_allowed(client):
    for method in ("POST", "PUT", "DELETE"):
        got, _ = await raw(client, f"/crl/{FULL}.crl", method)
        assert got == 405, method


# Path traversal: nothing outside what the app publishes is ever answered

TRAVERSALS = [
    "/crl/../pkirepo.toml",
    "/crl/../../pkirepo.toml",
    "/crl/%2e%2e/pkirepo.toml",
    "/crl/%2E%2E/%2E%2E/pkirepo.toml",
    "/crl/..%2fpkirepo.toml",
    "/crl/..%2Fpkirepo.toml",
    "/crl/%2e%2e%2fpkirepo.toml",
    "/crl/..%5cpkirepo.toml",
    "/crl/..%2f..%2fpki%2fRootCA2.key",
    "/crl/%2e%2e%2f%2e%2e%2fpki%2feCertCA2-17.key",
    "/crl/..%2fpub%2fcrl%2feCertCA2-17CRL1.crl",
    "/crl/..%2f..%2fpki%2fRootCA2.crl",
    "/ca/..%2f..%2fpki%2fRootCA2.key",
    "/ca/..%2fpki%2fRootCA2.cer",
    "/certs/..%2f..%2fpki/RootCA2.key",
    "/certs/eCertCA2-17/..%2f..%2f..%2fpkirepo.toml",
    "/crl/archive/..%2f..%2f/1.crl",
    "/crl/archive/eCertCA2-17CRL1/..%2f..%2f..%2fpkirepo.toml",
    "/crl/archive/%2e%2e/",
    "/..%2fpkirepo.toml",
    "/%2e%2e/pkirepo.toml",
    "//etc/passwd",
    "/crl//etc/passwd",
    "/crl/archive/eCertCA2-17CRL1/%2fetc%2fpasswd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_path_traversal_never_escapes(client, demo, path):
    got, body = await raw(client, path)
    assert got in (400, 404), (got, body[:200])
    secrets = [demo.config.read_bytes(), (demo.pki / "RootCA2.key").read_bytes(),
               (demo.pki / "eCertCA2-17.key").read_bytes(), open("/etc/passwd", "rb").read()]
    assert not any(s[:64] in body for s in secrets)
    assert b"PRIVATE KEY" not in body and b"[store]" not in body and b"root:" not in body


async def test_crl_name_with_traversal_is_refused_with_a_reason(client):
    got, body = await raw(client, "/crl/..%2f..%2fpki%2fRootCA2.crl")
    assert got == 400 and b"not a valid CRL name" in body


# HEAD, ETag, conditional GET, caching


async def test_head(client):
    get = await client.get(f"/crl/{FULL}.crl")
    body = await get.read()
    head = await client.head(f"/crl/{FULL}.crl")
    assert head.status == 200
    assert await head.read() == b""
    assert int(head.headers["Content-Length"]) == len(body)
    for h in ("ETag", "Last-Modified", "Cache-Control", "Content-Type"):
        assert head.headers[h] == get.headers[h], h
    for path in ("/crl/", f"/ca/{CA}.cer", f"/ca/{CA}.p7c", f"/crl/archive/{FULL}/", f"/crl/archive/{FULL}/1.crl"):
        r = await client.head(path)
        assert r.status == 200 and await r.read() == b"", path
    assert (await client.head("/crl/nope.crl")).status == 404


@pytest.mark.parametrize("path", [f"/crl/{FULL}.crl", f"/crl/{PARTITIONS[0]}.crl", f"/crl/{ARL}.crl",
                                  f"/crl/archive/{FULL}/1.crl"])
async def test_strong_etag_and_conditional_get(client, path):
    r = await client.get(path)
    body = await r.read()
    etag = r.headers["ETag"]
    assert etag == f'"{hashlib.sha256(body).hexdigest()}"', "strong ETag over the bytes"
    lm = r.headers["Last-Modified"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"x", {etag}'}, {"If-None-Match": f"W/{etag}"},
                    {"If-None-Match": "*"}, {"If-Modified-Since": lm},
                    {"If-Modified-Since": email.utils.format_datetime(
                        email.utils.parsedate_to_datetime(lm) + dt.timedelta(hours=1), usegmt=True)}):
        c = await client.get(path, headers=headers)
        assert c.status == 304, headers
        assert await c.read() == b""
        assert c.headers["ETag"] == etag
    for headers in ({"If-None-Match": '"0000"'},
                    {"If-Modified-Since": email.utils.format_datetime(
                        email.utils.parsedate_to_datetime(lm) - dt.timedelta(seconds=1), usegmt=True)},
                    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
                    {"If-None-Match": '"0000"', "If-Modified-Since": lm}):
        c = await client.get(path, headers=headers)
        assert c.status == 200 and await c.read() == body, headers


# RFC 9110 §13.1.3: a conditional header that does not parse is ignored, never a failure.
UNREADABLE_CONDITIONS = [
    {"If-Modified-Since": "Fri, 31 Dec 99999999999 23:59:59 GMT"},  # year past datetime's range
    {"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 -2359"},  # in range until moved to UTC
    {"If-Modified-Since": "Fri, 31 Dec 2020 23:59:59 +99999999999999999999"},
    {"If-Modified-Since": "Sat, 31 Feb 2026 00:00:00 GMT"},
    {"If-Modified-Since": "Tue, 01 Dec 2026 99:00:00 GMT"},
    {"If-Modified-Since": "yesterday"},
    {"If-None-Match": "not-quoted, W/"},
    {"If-None-Match": '"unterminated'},
]


@pytest.mark.parametrize("path", [f"/crl/{FULL}.crl", f"/crl/{ARL}.crl", f"/crl/archive/{FULL}/1.crl"])
@pytest.mark.parametrize("headers", UNREADABLE_CONDITIONS, ids=lambda h: repr(h)[:40])
async def test_unreadable_conditional_headers_are_ignored(client, path, headers):
    full = await (await client.get(path)).read()
    r = await client.get(path, headers=headers)
    assert r.status == 200, (headers, await r.text())
    assert await r.read() == full


def _max_age(headers) -> int:
    m = re.search(r"max-age=(\d+)", headers["Cache-Control"])
    assert m, headers["Cache-Control"]
    return int(m.group(1))


async def test_cache_control_never_reaches_past_next_update(client):
    index = {e["name"]: e for e in (await (await client.get("/crl/")).json())["crls"]}
    for name, e in index.items():
        r = await client.get(f"/crl/{name}.crl")
        next_update = dt.datetime.fromisoformat(e["next_update"])
        now = email.utils.parsedate_to_datetime(r.headers["Date"])
        assert 0 < _max_age(r.headers) <= (next_update - now).total_seconds() + 1, name
        assert email.utils.parsedate_to_datetime(r.headers["Expires"]) <= next_update
        assert "public" in r.headers["Cache-Control"]


@pytest.mark.parametrize("before_next_update,expect_max", [(100, 100), (1, 1), (0, 0), (-3600, 0)])
async def test_cache_control_near_and_past_next_update(demo, before_next_update, expect_max):
    """A pinned clock just before (and after) nextUpdate: max-age shrinks to what is left."""
    settings = load_settings(demo.config)
    store = SQLiteStore(settings.store_path)
    await store.open()
    try:
        full = next(c for c in await store.current_crls() if c.scope.name == FULL)
    finally:
        await store.close()
    clock = FixedClock(full.next_update - dt.timedelta(seconds=before_next_update))
    client, store = await _client(demo, clock)
    try:
        r = await client.get(f"/crl/{FULL}.crl")
        assert r.status == 200
        assert _max_age(r.headers) == expect_max, r.headers["Cache-Control"]
        assert email.utils.parsedate_to_datetime(r.headers["Expires"]) <= full.next_update
        index = {e["name"]: e for e in (await (await client.get("/crl/")).json())["crls"]}
        assert index[FULL]["expired"] is (before_next_update <= 0)
    finally:
        await client.close()
        await store.close()


async def test_content_types(client, demo):
    serial = load_cert(demo.pki / "good.pem").serial_number
    expected = {
        f"/crl/{FULL}.crl": "application/pkix-crl",
        f"/crl/{ARL}.crl": "application/pkix-crl",
        f"/crl/archive/{FULL}/1.crl": "application/pkix-crl",
        "/crl/": "application/json",
        f"/crl/archive/{FULL}/": "application/json",
        f"/ca/{CA}.cer": "application/pkix-cert",
        f"/ca/{CA}.p7c": "application/pkcs7-mime",
        f"/certs/{CA}/{serial:X}.cer": "application/pkix-cert",
    }
    for path, ctype in expected.items():
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == ctype, (path, r.headers["Content-Type"])
    r = await client.get("/crl/nope.crl")
    assert r.content_type == "text/plain"


# Archive, CA certificates, chain


async def test_archive_listing_matches_archived_bytes(client):
    index = (await (await client.get("/crl/")).json())["crls"]
    assert {e["name"] for e in index} == {ARL, FULL, *PARTITIONS}
    for e in index:
        listing = await (await client.get(f"/crl/archive/{e['name']}/")).json()
        assert listing["name"] == e["name"] and listing["retention_days"] >= 7 * 365
        numbers = [c["crl_number"] for c in listing["crls"]]
        assert numbers == sorted(set(numbers)) and numbers[-1] == e["crl_number"]
        for c in listing["crls"]:
            r = await client.get(f"/crl/archive/{e['name']}/{c['crl_number']}.crl")
            der = await r.read()
            assert hashlib.sha256(der).hexdigest() == c["sha256"] and len(der) == c["size"]
            crl = x509.load_der_x509_crl(der)
            assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == c["crl_number"]
            assert "immutable" in r.headers["Cache-Control"]
        # the newest archived CRL is the current one
        cur = await (await client.get(f"/crl/{e['name']}.crl")).read()
        assert hashlib.sha256(cur).hexdigest() == listing["crls"][-1]["sha256"] == e["sha256"]
    full = await (await client.get(f"/crl/archive/{FULL}/")).json()
    assert len(full["crls"]) >= 2


@pytest.mark.parametrize("name", [CA, ROOT])
async def test_ca_certificate(client, demo, name):
    r = await client.get(f"/ca/{name}.cer")
    assert await r.read() == load_cert(demo.pki / f"{name}.pem").dump()


@pytest.mark.parametrize("name,chain", [(CA, [CA, ROOT]), (ROOT, [ROOT])])
async def test_p7c_is_a_certs_only_pkcs7_with_the_chain(client, demo, tmp_path, name, chain):
    der = await (await client.get(f"/ca/{name}.p7c")).read()
    info = cms.ContentInfo.load(der)
    assert info["content_type"].native == "signed_data"
    sd = info["content"]
    assert len(sd["signer_infos"]) == 0, "certs-only: no signers"
    assert sd["encap_content_info"]["content"].native is None
    certs = [c.chosen.dump() for c in sd["certificates"]]
    assert sorted(certs) == sorted(load_cert(demo.pki / f"{n}.pem").dump() for n in chain)
    # and openssl agrees
    (tmp_path / "chain.p7c").write_bytes(der)
    p = openssl("pkcs7", "-inform", "DER", "-in", str(tmp_path / "chain.p7c"), "-print_certs", "-noout")
    text = openssl_text(p)
    assert p.returncode == 0, text
    subjects = re.findall(r"^subject=.*CN = (.+)$", text, re.M)
    expected = {CA: "Demo e-Cert CA 2 - 17", ROOT: "Demo Root CA 2"}
    assert sorted(subjects) == sorted(expected[n] for n in chain), text


async def test_index_json(client, demo):
    r = await client.get("/crl/")
    data = await r.json()
    for e in data["crls"]:
        assert set(e) >= {"name", "kind", "issuer", "crl_number", "this_update", "next_update", "size", "sha256", "url"}
        der = await (await client.get(f"/crl/{e['name']}.crl")).read()
        assert e["size"] == len(der) and e["sha256"] == hashlib.sha256(der).hexdigest()
    assert {e["kind"] for e in data["crls"]} == {"arl", "full", "partition"}
    body = json.dumps(data)
    assert str(demo.dir) not in body, "no file system paths in the index"
