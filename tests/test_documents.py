"""Disclosure documents (CPS 8, CP 四.9): `pkirepo doc publish` and `doc list` through the real
CLI, served by a real `pkirepo serve`. Every version stays at its own immutable URL, the
disclosure record lists every publication in order, and each refusal leaves the store and
the publication directory as they were."""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import urllib.parse

import pypdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repo_testlib import Demo, Server, make_demo
from publisher.documents import DocumentPath, check_document, media_ext, parse_document_path
from publisher.errors import MalformedInput, NotFound

CPS_OID = "1.3.6.1.4.1.16030.1.8.2"


def make_pdf(title: str) -> bytes:
    """A one-page PDF whose bytes differ by title, made as any PDF writer would."""
    w = pypdf.PdfWriter()
    w.add_blank_page(width=200, height=200)
    w.add_metadata({"/Title": title})
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


CPS_1 = make_pdf("CPS 1.0")
CPS_2 = make_pdf("CPS 2.0")
CP_1 = "<!DOCTYPE html>\n<html lang=\"en\"><body><h1>Certificate Policy 1</h1><p>互認</p></body></html>\n".encode()


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})  # sent as written
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A demo with two CPS versions and a CP published through the CLI, being served."""
    work = tmp_path_factory.mktemp("documents")
    demo = make_demo(work / "demo", subscribers=10)
    files = {"cps1.pdf": CPS_1, "cps2.pdf": CPS_2, "cp1.html": CP_1}
    for name, data in files.items():
        (work / name).write_bytes(data)
    demo.cli("doc", "publish", "--kind", "cps", "--version", "1.0", "--effective", "2025-06-01",
             "--lang", "zh-Hant", "--oid", CPS_OID, str(work / "cps1.pdf"))
    demo.cli("doc", "publish", "--kind", "cps", "--version", "2.0", "--effective", "2026-06-01",
             "--lang", "zh-Hant", "--oid", CPS_OID, str(work / "cps2.pdf"))
    demo.cli("doc", "publish", "--kind", "cp", "--version", "1", "--effective", "2020-01-01",
             "--lang", "en", str(work / "cp1.html"))
    server = Server(demo)
    yield demo, server, work
    server.stop()


EXPECTED = [
    ("cps", "1.0", "zh-Hant", "application/pdf", "pdf", CPS_1),
    ("cps", "2.0", "zh-Hant", "application/pdf", "pdf", CPS_2),
    ("cp", "1", "en", "text/html; charset=utf-8", "html", CP_1),
]


@pytest.mark.parametrize("kind, version, lang, media_type, ext, data", EXPECTED)
def test_every_version_is_served_with_its_exact_bytes(published, kind, version, lang, media_type, ext, data):
    demo, _, _ = published
    path = f"/documents/{kind}/{version}/{lang}.{ext}"
    status, headers, body = get(demo.http_port, path)
    assert status == 200
    assert body == data
    sha = hashlib.sha256(data).hexdigest()
    assert headers["etag"] == f'"{sha}"'
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-type"] == media_type
    assert headers["x-content-type-options"] == "nosniff"
    status, headers304, body = get(demo.http_port, path, {"If-None-Match": f'"{sha}"'})
    assert (status, body) == (304, b"")
    assert headers304["etag"] == f'"{sha}"'
    status, _, _ = get(demo.http_port, path, {"If-None-Match": '"0000"'})
    assert status == 200
    # The publication directory holds the same bytes.
    assert (demo.dir / "pub" / "documents" / kind / version / f"{lang}.{ext}").read_bytes() == data


def _record_rows(entries: list[dict]) -> list[tuple]:
    return [(e["kind"], e["version"], e["lang"], e["media_type"], e["size"], e["sha256"]) for e in entries]


def test_the_disclosure_record_lists_every_publication_in_order(published):
    demo, _, _ = published
    want = [(k, v, lang, mt, len(d), hashlib.sha256(d).hexdigest()) for k, v, lang, mt, _, d in EXPECTED]
    status, headers, body = get(demo.http_port, "/documents/index.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    record = json.loads(body)["documents"]
    assert _record_rows(record) == want
    assert [e["oid"] for e in record] == [CPS_OID, CPS_OID, None]
    assert [e["effective"] for e in record] == ["2025-06-01", "2026-06-01", "2020-01-01"]
    assert record[0]["url"] == f"{demo.base_url}/documents/cps/1.0/zh-Hant.pdf"
    # Content negotiation on /documents/ gives the same JSON; a browser gets the HTML list.
    status, _, negotiated = get(demo.http_port, "/documents/", {"Accept": "application/json"})
    assert status == 200 and json.loads(negotiated) == json.loads(body)
    status, headers, page = get(demo.http_port, "/documents/", {"Accept": "text/html,*/*"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    text = page.decode()
    positions = [text.index(f"/documents/{k}/{v}/{lang}.{ext}") for k, v, lang, _, ext, _ in EXPECTED]
    assert positions == sorted(positions)
    for _, _, _, _, _, data in EXPECTED:
        assert hashlib.sha256(data).hexdigest() in text
    # The CLI reads the same record.
    listed = json.loads(demo.cli("doc", "list", "--json").stdout)
    assert _record_rows(listed) == want
    lines = demo.cli("doc", "list").stdout.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [["cps", "1.0", "zh-Hant"], ["cps", "2.0", "zh-Hant"],
                                                        ["cp", "1", "en"]]


def _state(demo: Demo) -> tuple[str, list[str]]:
    files = sorted(str(p.relative_to(demo.dir)) for p in (demo.dir / "pub" / "documents").rglob("*"))
    return demo.cli("doc", "list", "--json").stdout, files


NOT_A_PDF = b"%PDF-1.4\nthis is no PDF at all\n%%EOF\n"
TRUNCATED = CPS_1[: len(CPS_1) // 2]
HTML_NOT_UTF8 = "<html><body>\u6587</body></html>".encode("big5")

REFUSALS = [
    # (case, file name, bytes, kind, version, effective, lang, words the error must name)
    ("pdf that does not parse", "bad.pdf", NOT_A_PDF, "cps", "3.0", "2027-01-01", "zh-Hant", ["bad.pdf", "PDF"]),
    ("truncated pdf", "cut.pdf", TRUNCATED, "cps", "3.0", "2027-01-01", "zh-Hant", ["cut.pdf", "%%EOF"]),
    ("pdf named, not a pdf", "plain.pdf", b"<html>hello</html>", "cps", "3.0", "2027-01-01", "zh-Hant",
     ["plain.pdf", "%PDF-"]),
    ("html not utf-8", "big5.html", HTML_NOT_UTF8, "cp", "2", "2027-01-01", "en", ["big5.html", "UTF-8"]),
    ("text without <html", "note.html", b"just words\n", "cp", "2", "2027-01-01", "en", ["note.html", "<html"]),
    ("empty file", "empty.pdf", b"", "cps", "3.0", "2027-01-01", "zh-Hant", ["empty.pdf", "empty"]),
    ("version already published", "again.pdf", make_pdf("again"), "cps", "2.0", "2027-01-01", "zh-Hant",
     ["'2.0'", "already published"]),
    ("effective before current", "early.pdf", make_pdf("early"), "cps", "3.0", "2026-05-31", "zh-Hant",
     ["2026-05-31", "2026-06-01"]),
    ("unknown kind", "k.pdf", make_pdf("k"), "cpx", "1", "2027-01-01", "zh-Hant", ["'cpx'"]),
    ("unknown language", "l.pdf", make_pdf("l"), "cps", "3.0", "2027-01-01", "fr", ["'fr'"]),
]


@pytest.mark.parametrize("case, name, data, kind, version, effective, lang, words", REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_value_and_change_nothing(published, case, name, data, kind, version, effective,
                                                    lang, words):
    demo, _, work = published
    path = work / name
    path.write_bytes(data)
    before = _state(demo)
    r = demo.cli("doc", "publish", "--kind", kind, "--version", version, "--effective", effective,
                 "--lang", lang, str(path), check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("pkirepo: error: ") and "Traceback" not in r.stderr
    for word in words:
        assert word in r.stderr
    assert _state(demo) == before


def test_same_version_in_another_language_is_its_own_publication(tmp_path):
    """Uniqueness and the effective-date order hold per kind and language: the English CPS
    1.0 may follow the Chinese one."""
    demo = make_demo(tmp_path / "demo", subscribers=10)
    (tmp_path / "a.pdf").write_bytes(CPS_1)
    for lang in ("zh-Hant", "en"):
        demo.cli("doc", "publish", "--kind", "cps", "--version", "1.0", "--effective", "2025-06-01",
                 "--lang", lang, str(tmp_path / "a.pdf"))
    assert [d["lang"] for d in json.loads(demo.cli("doc", "list", "--json").stdout)] == ["zh-Hant", "en"]


def test_configured_kinds(tmp_path):
    demo = make_demo(tmp_path / "demo", subscribers=10)
    demo.config.write_text(demo.config.read_text() + '\n[documents]\nkinds = ["trust-list"]\n')
    (tmp_path / "t.html").write_bytes(b"<html><body>list</body></html>")
    demo.cli("doc", "publish", "--kind", "trust-list", "--version", "1", "--effective", "2026-01-01",
             "--lang", "zh-Hant", str(tmp_path / "t.html"))
    demo.config.write_text(demo.config.read_text().replace('"trust-list"', '"Trust List"'))
    r = demo.cli("doc", "list", check=False)
    assert r.returncode == 2 and "documents.kinds" in r.stderr and "'Trust List'" in r.stderr


# The path parser: any segments give a path, 400 or 404, never anything else.

SEGMENT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["cps", "cp", "1.0", "zh-Hant.pdf", "en.html", "..", ".", "%2e%2e", "zh-Hant.", ".pdf"]),
)


@given(kind=SEGMENT, version=SEGMENT, file=SEGMENT)
def test_parse_document_path_gives_a_path_or_a_client_error(kind, version, file):
    try:
        p = parse_document_path(kind, version, file)
    except (MalformedInput, NotFound) as e:
        assert e.http_status in (400, 404)
        return
    assert isinstance(p, DocumentPath)
    assert p.relative == f"documents/{kind}/{version}/{file}"
    assert ".." not in p.relative.split("/") and "/" not in version


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=SEGMENT, version=SEGMENT, file=SEGMENT)
def test_served_document_paths_are_never_a_server_error(published, kind, version, file):
    demo, _, _ = published
    path = "/documents/" + "/".join(urllib.parse.quote(s, safe="") for s in (kind, version, file))
    status, _, _ = get(demo.http_port, path)
    assert status in (200, 304, 400, 404), path


def test_check_document_tells_the_type_from_the_contents():
    kinds = ("cps", "cp")
    doc = check_document(kind="cps", version="1", lang="en", effective=__import__("datetime").date(2026, 1, 1),
                         oid=None, data=CPS_1, source="cps.bin", kinds=kinds)
    assert doc.ext == "pdf"
    assert media_ext(CP_1, "cp.txt") == "html"
    with pytest.raises(MalformedInput, match="not an OID"):
        check_document(kind="cps", version="1", lang="en", effective=doc.effective, oid="1.2.x", data=CPS_1,
                       source="cps.pdf", kinds=kinds)
    with pytest.raises(MalformedInput, match="version"):
        check_document(kind="cps", version="../1", lang="en", effective=doc.effective, oid=None, data=CPS_1,
                       source="cps.pdf", kinds=kinds)


def test_a_lost_document_file_is_rewritten_from_the_store(tmp_path):
    """The store is authoritative: `pkirepo serve` puts back a document file that is gone
    or altered, as it does CRL files."""
    demo = make_demo(tmp_path / "demo", subscribers=10)
    (tmp_path / "a.pdf").write_bytes(CPS_1)
    (tmp_path / "b.html").write_bytes(CP_1)
    demo.cli("doc", "publish", "--kind", "cps", "--version", "1.0", "--effective", "2025-06-01",
             "--lang", "zh-Hant", str(tmp_path / "a.pdf"))
    demo.cli("doc", "publish", "--kind", "cp", "--version", "1", "--effective", "2025-06-01",
             "--lang", "en", str(tmp_path / "b.html"))
    docs = demo.dir / "pub" / "documents"
    (docs / "cps" / "1.0" / "zh-Hant.pdf").unlink()
    (docs / "cp" / "1" / "en.html").write_bytes(b"<html>tampered</html>")
    server = Server(demo)
    try:
        assert (docs / "cps" / "1.0" / "zh-Hant.pdf").read_bytes() == CPS_1
        assert (docs / "cp" / "1" / "en.html").read_bytes() == CP_1
        assert "rewrote 2 document file(s)" in server.log()
    finally:
        server.stop()


def test_each_ca_entry_names_the_current_cps_and_cp_by_labeled_uri(published):
    """LDAP clients find the current policy documents on the CA's entry (RFC 2079
    labeledURI): CPS 2.0, not 1.0, and the CP."""
    import ldap3

    demo, _, _ = published
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=demo.ldap_port, get_info=ldap3.NONE), auto_bind=True)
    try:
        assert conn.search("c=HK", "(objectClass=pkiCA)", attributes=["labeledURI", "objectClass"])
        assert len(conn.entries) >= 2
        want = [f"{demo.base_url}/documents/cps/2.0/zh-Hant.pdf CPS 2.0 (zh-Hant)",
                f"{demo.base_url}/documents/cp/1/en.html CP 1 (en)"]
        for e in conn.entries:
            assert list(e.entry_attributes_as_dict["labeledURI"]) == want
            assert "labeledURIObject" in e.entry_attributes_as_dict["objectClass"]
        # The attribute filters like any other directory string.
        assert conn.search("c=HK", "(labeledURI=*cps/2.0*)", attributes=["cn"])
        assert len(conn.entries) >= 2
    finally:
        conn.unbind()


def test_a_damaged_pdf_is_refused_in_one_line(published):
    """A PDF whose cross-reference table is damaged is one error line, not pypdf's log of
    each repair it tried."""
    demo, _, work = published
    # No catalogue and a shifted xref: pypdf warns through every repair, then gives up.
    damaged = (CPS_1.replace(b"/Root", b"/Rxxx", 1).replace(b"/Catalog", b"/Catalxx", 1)
               .replace(b"xref\n0 ", b"xref\n9 ", 1))
    assert damaged != CPS_1
    (work / "damaged.pdf").write_bytes(damaged)
    r = demo.cli("doc", "publish", "--kind", "cps", "--version", "9", "--effective", "2027-01-01",
                 "--lang", "zh-Hant", str(work / "damaged.pdf"), check=False)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("pkirepo: error: ") and "damaged.pdf" in r.stderr
