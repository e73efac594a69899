"""Notices (CP 四.8, 六.26): `pkirepo notice add|withdraw|list` through the real CLI, shown on
the home page and in the Atom feed of a real `pkirepo serve`; every refusal exits 2 naming
the value and changes nothing. The new routes answer any language, Accept-Language and
query string without a server error."""
from __future__ import annotations

import http.client
import json
import urllib.parse

import feedparser
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publisher import i18n
from repo_testlib import Server, make_demo, run_cli

BOTH = ["--title", "zh-Hant", "系統維護", "--title", "en", "Maintenance",
        "--body", "zh-Hant", "服務暫停一小時。", "--body", "en", "The service pauses for an hour."]
MARKUP_TITLE = '<script>alert("x")</script> & <b>bold</b>'


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo with its sample notices, one more with markup in its title, one withdrawn."""
    demo = make_demo(tmp_path_factory.mktemp("notices") / "demo", subscribers=10, bare=False)
    demo.cli("notice", "add", "--kind", "incident", "--start", "2026-11-30T08:00:00Z", "--end", "2026-11-30T09:00:00Z",
             "--title", "zh-Hant", MARKUP_TITLE, "--title", "en", MARKUP_TITLE,
             "--body", "zh-Hant", "<img src=x onerror=alert(1)>", "--body", "en", "<img src=x onerror=alert(1)>")
    demo.cli("notice", "add", "--kind", "ca-non-renewal", *BOTH)
    listed = json.loads(demo.cli("notice", "list", "--json").stdout)
    gone = next(n for n in listed if n["kind"] == "ca-non-renewal")["id"]
    demo.cli("notice", "withdraw", str(gone))
    server = Server(demo)
    yield demo
    server.stop()


def test_the_feed_parses_and_lists_the_notices(site):
    status, headers, body = get(site.http_port, "/notices.atom?lang=en")
    assert status == 200 and headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.get("bozo_exception")
    titles = [e.title for e in feed.entries]
    assert "Scheduled maintenance: repository and OCSP" in titles
    assert "Revocation of the Demo Retired CA 2 - 16 CA certificate" in titles
    assert MARKUP_TITLE in titles  # text, exactly as written
    assert "Maintenance" not in titles  # withdrawn
    assert len({e.id for e in feed.entries}) == len(feed.entries) == 3
    zh = feedparser.parse(get(site.http_port, "/notices.atom", {"Accept-Language": "zh-HK,zh;q=0.9"})[2])
    assert not zh.bozo and "計劃維護：儲存庫及 OCSP 服務" in [e.title for e in zh.entries]


def test_markup_in_a_notice_shows_as_text(site):
    for lang in i18n.PAGE_LANGUAGES:
        status, headers, body = get(site.http_port, f"/?lang={lang}")
        page = body.decode()
        assert status == 200 and headers["content-language"] == lang
        assert "<script>" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "服務暫停一小時" not in page and "The service pauses" not in page  # withdrawn


def test_the_demo_cps_is_chinese_text(site):
    """The demo's CPS is a PDF whose text is Chinese, drawn with the CID font MSung-Light
    (a reader supplies its glyphs), and the earlier version stays published beside it."""
    import io

    import pypdf

    for version, marker in (("1.0", "版本 1.0"), ("1.1", "版本 1.1")):
        status, headers, body = get(site.http_port, f"/documents/cps/{version}/zh-Hant.pdf")
        assert status == 200 and headers["content-type"] == "application/pdf"
        page = pypdf.PdfReader(io.BytesIO(body)).pages[0]
        text = page.extract_text()
        assert "核證作業準則" in text and marker in text
        fonts = {str(f["/BaseFont"]) for f in page["/Resources"]["/Font"].values()}
        assert any("MSung-Light" in f for f in fonts), fonts


@pytest.mark.parametrize("query, header, target", [
    ("", None, "/documents/cps/1.1/zh-Hant.pdf"), ("", "en-GB", "/documents/cps/1.1/en.pdf"),
    ("?lang=zh-Hant", "en", "/documents/cps/1.1/zh-Hant.pdf"), ("?lang=en", None, "/documents/cps/1.1/en.pdf"),
])
def test_the_certificates_cps_url_leads_to_the_current_cps(site, query, header, target):
    """The demo certificates' CPS qualifier is <base>/cps: it redirects to the current CPS."""
    status, headers, _ = get(site.http_port, f"/cps{query}", {"Accept-Language": header} if header else None)
    assert (status, headers["location"]) == (302, target)
    assert get(site.http_port, target)[0] == 200


def test_list_all_keeps_the_withdrawn_notice(site):
    shown = json.loads(site.cli("notice", "list", "--json").stdout)
    every = json.loads(site.cli("notice", "list", "--all", "--json").stdout)
    assert len(every) == len(shown) + 1
    gone = [n for n in every if n["withdrawn_at"]]
    assert [n["title"]["en"] for n in gone] == ["Maintenance"]
    r = site.cli("notice", "withdraw", str(gone[0]["id"]), check=False)
    assert r.returncode == 2 and "withdrawn already" in r.stderr


REFUSALS = [
    # (case, arguments after `notice add`, words the error must name)
    ("empty title", ["--kind", "incident", "--title", "zh-Hant", "  ", *BOTH[3:]], ["title in zh-Hant", "empty"]),
    ("end before start", ["--kind", "maintenance", "--start", "2026-12-05T19:00:00Z", "--end", "2026-12-05T18:00:00Z",
                          *BOTH], ["2026-12-05T18:00:00", "not after", "2026-12-05T19:00:00"]),
    ("end equal to start", ["--kind", "incident", "--start", "2026-12-05T19:00:00Z", "--end", "2026-12-05T19:00:00Z",
                            *BOTH], ["not after"]),
    ("unknown kind", ["--kind", "outage", *BOTH], ["'outage'", "maintenance"]),
    ("unknown language", ["--kind", "incident", *BOTH, "--title", "fr", "Entretien"], ["'fr'"]),
    ("missing English title", ["--kind", "incident", *BOTH[:3], *BOTH[6:]], ["title in en", "missing"]),
    ("missing English body", ["--kind", "incident", *BOTH[:9]], ["body in en", "missing"]),
    ("language given twice", ["--kind", "incident", *BOTH, "--title", "en", "Again"], ["title in en", "twice"]),
    ("maintenance without end", ["--kind", "maintenance", *BOTH], ["--end"]),
    ("control character", ["--kind", "incident", "--title", "zh-Hant", "a\u202eb", *BOTH[3:]], ["U+202E"]),
    ("bad time", ["--kind", "incident", "--start", "tomorrow", *BOTH], ["'tomorrow'"]),
]


@pytest.mark.parametrize("case, args, words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_value(site, case, args, words):
    r = site.cli("notice", "add", *args, check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("pkirepo: error: ") or "error: argument" in r.stderr
    assert "Traceback" not in r.stderr
    for word in words:
        assert word in r.stderr, r.stderr


def test_the_refusals_changed_nothing(site):
    every = json.loads(site.cli("notice", "list", "--all", "--json").stdout)
    assert sorted(n["kind"] for n in every) == ["ca-non-renewal", "ca-revocation", "incident", "maintenance"]


@pytest.mark.parametrize("ident, words", [("999", ["no notice 999"]), ("x1", ["'x1'"]), ("-1", ["'-1'"])])
def test_withdraw_refuses_what_is_not_a_notice(site, ident, words):
    r = run_cli("--config", str(site.config), "notice", "withdraw", "--", ident, check=False)
    assert r.returncode == 2
    for word in words:
        assert word in r.stderr, r.stderr


@pytest.mark.parametrize("header, lang", [
    (None, "zh-Hant"), ("en", "en"), ("en-GB;q=0.9, zh-TW;q=0.8", "en"), ("zh-CN, en;q=0.5", "zh-Hant"),
    ("fr, en;q=0.1", "en"), ("fr", "zh-Hant"), ("en;q=0, zh", "zh-Hant"), ("*", "zh-Hant"), ("en;q=abc", "zh-Hant"),
    ("en;q=nan", "zh-Hant"), ("en;q=2", "zh-Hant"),
])
def test_accept_language_chooses_the_page_language(header, lang):
    assert i18n.choose(None, header) == lang
    assert i18n.choose("en", header) == "en" and i18n.choose("zh-Hant", header) == "zh-Hant"
    assert i18n.choose("fr", header) == lang  # an unknown ?lang= is ignored


@given(st.text(max_size=200))
def test_any_accept_language_gives_a_page_language_or_none(header):
    assert i18n.from_accept_language(header) in (*i18n.PAGE_LANGUAGES, None)
    assert i18n.choose(None, header) in i18n.PAGE_LANGUAGES


def test_the_home_page_shows_what_is_published(site):
    """Every CA certificate with its fingerprint and downloads, every CRL with the number and
    size the index gives, the OCSP URL, the current CPS of each language, the trust list."""
    page = get(site.http_port, "/?lang=en")[2].decode()
    for name in ("RootCA2", "eCertCA2-17"):
        cert = x509.load_pem_x509_certificate((site.pki / f"{name}.pem").read_bytes())
        digest = cert.fingerprint(hashes.SHA256()).hex().upper()
        assert ":".join(digest[i:i + 2] for i in range(0, 64, 2)) in page
        for ext in ("cer", "pem", "p7c"):
            assert f'href="/ca/{name}.{ext}"' in page
            assert get(site.http_port, f"/ca/{name}.{ext}")[0] == 200
        assert get(site.http_port, f"/ca/{name}.pem")[2] == (site.pki / f"{name}.pem").read_bytes()
    crls = json.loads(get(site.http_port, "/crl/")[2])["crls"]
    assert len(crls) == 5
    for c in crls:
        row = page[page.index(f'<th scope="row">{c["name"]}</th>'):]
        row = row[:row.index("</tr>")]
        assert f"<td>{c['crl_number']}</td>" in row and f"<td>{c['entries']}</td>" in row
        assert f'href="/crl/{c["name"]}.crl"' in row and 'href="ldap://127.0.0.1:' in row
    assert f"<code>{site.base_url}/ocsp</code>" in page
    assert 'href="/documents/cps/1.1/zh-Hant.pdf"' in page and 'href="/documents/cps/1.1/en.pdf"' in page
    assert 'href="/documents/cps/1.0/zh-Hant.pdf"' not in page  # not current: in the disclosure record
    assert 'href="/trustlist/"' in page and 'href="/relying-parties?lang=en"' in page
    assert "Every published CRL and ARL is current" in page


@pytest.mark.parametrize("path", ["/", "/relying-parties", "/documents/"])
@pytest.mark.parametrize("lang", ["zh-Hant", "en"])
def test_the_pages_are_valid_html(site, path, lang):
    """HTML Tidy (Debian's tidy, installed by `make sysdeps`) finds neither an error nor a
    warning in any page, notices with markup included."""
    import subprocess

    status, _, body = get(site.http_port, f"{path}?lang={lang}")
    assert status == 200
    p = subprocess.run(["tidy", "-q", "-e", "-utf8"], input=body, capture_output=True, timeout=60)
    assert (p.returncode, p.stderr.decode()) == (0, ""), path


ROUTES = st.sampled_from(["/", "/relying-parties", "/notices.atom", "/documents/", "/static/site.css", "/ca/x.pem",
                          "/cps"])
QUERY = st.lists(st.tuples(st.sampled_from(["lang", "LANG", "l", "lang[]", ""]) | st.text(max_size=8),
                           st.sampled_from(["en", "zh-Hant", "zh-hant", "", "en\x00"]) | st.text(max_size=20)),
                 max_size=4)
ACCEPT_LANGUAGE = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=80),
                            st.lists(st.tuples(st.sampled_from(["en", "zh", "zh-Hant", "*", "fr", "", "en-"]),
                                               st.floats(allow_nan=True) | st.text(max_size=5)),
                                     max_size=5).map(lambda items: ", ".join(f"{t};q={q}" for t, q in items))
                            # A line break would end the header: no client can send one inside it.
                            .filter(lambda h: "\r" not in h and "\n" not in h))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=ROUTES, query=QUERY, accept=ACCEPT_LANGUAGE, raw=st.text(max_size=30))
@example(route="/cps", query=[], accept="en;q=\x1f", raw="")  # found by CI: a control character in the header
def test_the_pages_never_answer_a_server_error(site, route, query, accept, raw):
    qs = urllib.parse.urlencode(query) if query else urllib.parse.quote(raw, safe="=&;%+")
    path = f"{route}?{qs}" if qs else route
    # Sent as UTF-8 bytes: a header value out of Latin-1 reaches the server as a client would send it.
    status, headers, body = get(site.http_port, path,
                                {"Accept-Language": accept.encode()} if accept is not None else None)
    assert status in (200, 302, 400, 404), (path, accept, status, body[:200])
    # RFC 9110 §5.5: a control character makes the field value invalid, and the HTTP parser refuses
    # the request with 400 before any route sees it.
    if accept is not None and any(ord(c) < 0x20 and c != "\t" or c == "\x7f" for c in accept):
        assert status == 400 and body, (path, accept, status)
        return
    assert (status == 302) == (route == "/cps")
    if status == 200 and route not in ("/static/site.css",):
        assert headers["content-language"] in i18n.PAGE_LANGUAGES
        assert headers["vary"] == "Accept-Language"
