"""The trust list end to end: `pkirepo trustlist ...` through the real CLI on a demo made by
`pkirepo demo init`, served by a real `pkirepo serve`. Each change issues a list with a
higher sequence number; every earlier list stays retrievable with its stored, signed bytes
(checked by signxml and xmlsec1); each refusal exits 2 naming the value and changes nothing;
no request to the trust list's routes gets a 500."""
from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import urllib.parse

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repo_testlib import Demo, Server, make_demo
from publisher import xmlsig
from publisher.cli import main as cli_main
from publisher.trustlist_xml import parse_xml

PERSONAL_OIDS = ["2.16.156.339.1.1.1.2.1", "2.16.344.8.2.2008.810.2.2018.1.1"]
ORGANISATION_OIDS = ["2.16.156.339.1.1.2.2.1"]


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def xmlsec1_ok(demo: Demo, data: bytes, name: str) -> bool:
    path = demo.dir / name
    path.write_bytes(data)
    r = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(demo.pki / "trustlist-signer.pem"), str(path)],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and r.stderr.startswith("OK")


def cli(demo: Demo, capsys, *args: str) -> tuple[int, str, str]:
    """`pkirepo --config DEMO ARGS` in this process (the same entry point as the installed
    command, without an interpreter's start-up per call): exit code, stdout, stderr."""
    capsys.readouterr()
    code = cli_main(["--config", str(demo.config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def show(demo: Demo, capsys, *args: str) -> dict:
    code, out, err = cli(demo, capsys, "trustlist", "show", "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    demo = make_demo(tmp_path_factory.mktemp("trustlist") / "demo", subscribers=10)
    server = Server(demo)
    yield demo, server
    server.stop()


def test_demo_init_lists_the_issuing_ca_for_both_types(served):
    demo, _ = served
    # Once through the installed command, as an operator runs it.
    listed = json.loads(demo.cli("trustlist", "show", "--json").stdout)
    assert listed["seq"] == 2
    entries = [(e["ca"], e["type"], e["status"], e["policy_oids"]) for e in listed["entries"]]
    assert entries == [("eCertCA2-17", "personal", "granted", PERSONAL_OIDS),
                       ("eCertCA2-17", "organisation", "granted", ORGANISATION_OIDS)]
    ca_der = (demo.pki / "eCertCA2-17.pem").read_bytes()
    from cryptography.hazmat.primitives.serialization import Encoding
    fingerprint = hashlib.sha256(x509.load_pem_x509_certificate(ca_der).public_bytes(Encoding.DER)).hexdigest()
    assert {e["ca_sha256"] for e in listed["entries"]} == {fingerprint.upper()}
    assert all(e["names"]["zh-Hant"] and e["names"]["en"] for e in listed["entries"])
    assert all(e["cps"] == f"{demo.base_url}/cps" for e in listed["entries"])
    # The demo's scheme operator signs with a key of its own, private, certified for list signing.
    assert (demo.pki / "trustlist-signer.key").stat().st_mode & 0o077 == 0
    signer = x509.load_pem_x509_certificate((demo.pki / "trustlist-signer.pem").read_bytes())
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ObjectIdentifier("0.4.0.2231.3.0") in eku


async def test_a_list_made_on_a_stale_state_is_refused(tmp_path):
    """Two operators changing the list at once: the second store of a list made from the
    same state is refused and stores nothing, so sequence numbers never repeat or skip."""
    import datetime as dt

    from publisher.errors import Conflict
    from publisher.sqlite_store import SQLiteStore

    at = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    async with SQLiteStore(tmp_path / "store.sqlite") as store:
        first = await store.add_trustlist(prev_seq=0, changed=None, issued_at=at, next_update=at, xml=b"<a/>")
        assert first.seq == 1
        with pytest.raises(Conflict, match="issued meanwhile"):
            await store.add_trustlist(prev_seq=0, changed=None, issued_at=at, next_update=at, xml=b"<b/>")
        assert [r.seq for r in await store.trustlists()] == [1]
        assert (await store.trustlist_bytes())[1] == b"<a/>"
        assert await store.trustlist_bytes(2) is None


REFUSALS = [
    ("unknown CA name", ["add", "--ca", "NoSuchCA", "--type", "personal"], ["NoSuchCA"]),
    ("unknown type", ["add", "--ca", "RootCA2", "--type", "persona"], ["'persona'", "personal or organisation"]),
    ("unknown policy OID", ["add", "--ca", "RootCA2", "--type", "personal", "--policy", "1.2.3.4"], ["'1.2.3.4'"]),
    ("OID of the other type", ["add", "--ca", "RootCA2", "--type", "organisation", "--policy", PERSONAL_OIDS[0]],
     [PERSONAL_OIDS[0], "personal"]),
    ("missing English name", ["add", "--ca", "RootCA2", "--type", "personal", "--name-en", ""], ["name in en is missing"]),
    ("missing Chinese name", ["add", "--ca", "RootCA2", "--type", "personal", "--name-zh-Hant", ""],
     ["name in zh-Hant is missing"]),
    ("listed already", ["add", "--ca", "eCertCA2-17", "--type", "personal"], ["eCertCA2-17 personal", "already"]),
    ("not a CPS URL", ["add", "--ca", "RootCA2", "--type", "personal", "--cps", "ftp://x/cps"], ["'ftp://x/cps'"]),
    ("future status date", ["suspend", "--ca", "eCertCA2-17", "--type", "personal", "--date", "2999-01-01"],
     ["2999-01-01", "future"]),
    ("status date before the current status", ["suspend", "--ca", "eCertCA2-17", "--type", "personal",
                                               "--date", "2001-01-01"], ["2001-01-01", "before"]),
    ("reinstate a granted entry", ["reinstate", "--ca", "eCertCA2-17", "--type", "organisation"],
     ["is granted", "suspended"]),
    ("entry never listed", ["withdraw", "--ca", "RootCA2", "--type", "personal"], ["RootCA2 personal", "not on"]),
    ("unknown type on suspend", ["suspend", "--ca", "eCertCA2-17", "--type", "org"], ["'org'"]),
    ("earlier list that does not exist", ["show", "--seq", "99"], ["99"]),
]


def _complete(args: list[str]) -> list[str]:
    if args[0] != "add":
        return args
    full = {"--cps": "http://127.0.0.1/cps", "--name-zh-Hant": "名稱", "--name-en": "Name"}
    for i in range(1, len(args) - 1, 2):
        full.pop(args[i], None)
    return args + [x for kv in full.items() for x in kv]


def test_refusals_exit_2_name_the_value_and_change_nothing(served, capsys):
    demo, _ = served
    before = show(demo, capsys)
    for case, args, words in REFUSALS:
        code, out, err = cli(demo, capsys, "trustlist", *_complete(args))
        assert code == 2, (case, out, err)
        assert "Traceback" not in err and err.startswith("pkirepo: error: "), (case, err)
        for w in words:
            assert w in err, (case, err)
    assert show(demo, capsys) == before


def test_each_change_issues_a_new_list_and_earlier_ones_stay_as_signed(served, capsys):
    demo, server = served
    signer_pem = (demo.pki / "trustlist-signer.pem").read_bytes()
    start = show(demo, capsys)["seq"]
    kept = {}
    for seq in range(1, start + 1):
        status, headers, body = get(demo.http_port, f"/trustlist/{seq}.xml")
        assert status == 200
        kept[seq] = body
    steps = [
        (["suspend", "--ca", "eCertCA2-17", "--type", "personal"], "suspended"),
        (["reinstate", "--ca", "eCertCA2-17", "--type", "personal"], "granted"),
        (["withdraw", "--ca", "eCertCA2-17", "--type", "personal"], "withdrawn"),
    ]
    for i, (args, status_word) in enumerate(steps, start=1):
        code, out, err = cli(demo, capsys, "trustlist", *args)
        assert code == 0, err
        assert f"trust list {start + i} issued" in out
        listed = show(demo, capsys)
        assert listed["seq"] == start + i
        assert listed["entries"][0]["status"] == status_word
        assert [h["status"] for h in listed["entries"][0]["history"]][-1] == status_word
        _, _, body = get(demo.http_port, f"/trustlist/{start + i}.xml")
        kept[start + i] = body
    # Withdrawn twice: refused, naming the entry.
    code, _, err = cli(demo, capsys, "trustlist", "withdraw", "--ca", "eCertCA2-17", "--type", "personal")
    assert code == 2 and "withdrawn already" in err
    # Every list, old and new: the bytes served are the bytes first served, and they verify.
    last = start + len(steps)
    seqs, issued = [], []
    for seq, body in kept.items():
        status, headers, again = get(demo.http_port, f"/trustlist/{seq}.xml")
        assert (status, again) == (200, body)
        assert headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert cli(demo, capsys, "trustlist", "show", "--seq", str(seq), "--xml")[1].encode() == body
        xmlsig.verify(body, signer_pem)
        assert xmlsec1_ok(demo, body, f"list-{seq}.xml")
        doc = parse_xml(body)  # validates against the shipped schema first
        seqs.append(doc.seq)
        issued.append(doc.issued)
        assert doc.next_update > doc.issued
    assert seqs == list(range(1, last + 1))
    assert issued == sorted(issued) and len(set(issued)) == len(issued)
    # One changed byte in a stored list: it no longer verifies, with either verifier.
    bad = kept[1].replace(b"<TSLSequenceNumber>1<", b"<TSLSequenceNumber>7<")
    assert len(bad) == len(kept[1])
    with pytest.raises(Exception):
        xmlsig.verify(bad, signer_pem)
    assert not xmlsec1_ok(demo, bad, "changed.xml")
    # The current list is the newest; the index lists them all.
    status, headers, current = get(demo.http_port, "/trustlist/current.xml")
    assert (status, current) == (200, kept[last]) and headers["cache-control"] == "no-cache"
    status, _, index = get(demo.http_port, "/trustlist/index.json")
    listed = json.loads(index)
    assert listed["current"] == last
    assert [(x["seq"], x["sha256"]) for x in listed["lists"]] == [
        (s, hashlib.sha256(kept[s]).hexdigest()) for s in range(1, last + 1)]
    # `trustlist add` lists the withdrawn type again, as a new entry.
    code, _, err = cli(demo, capsys, "trustlist", "add", "--ca", "eCertCA2-17", "--type", "personal",
                       "--cps", f"{demo.base_url}/cps", "--name-zh-Hant", "個人證書", "--name-en", "Personal certificates")
    assert code == 0, err
    entries = show(demo, capsys)["entries"]
    assert [(e["id"], e["type"], e["status"]) for e in entries] == [
        (1, "personal", "withdrawn"), (2, "organisation", "granted"), (3, "personal", "granted")]


def test_the_page_is_bilingual_by_accept_language_and_lang(served):
    demo, _ = served
    port = demo.http_port
    status, headers, zh = get(port, "/trustlist/")
    assert status == 200 and headers["content-language"] == "zh-Hant" and headers["vary"] == "Accept-Language"
    assert headers["content-type"] == "text/html; charset=utf-8" and headers["cache-control"] == "no-cache"
    _, en_headers, en = get(port, "/trustlist/", {"Accept-Language": "en-GB,en;q=0.9"})
    assert en_headers["content-language"] == "en"
    _, q_headers, en_by_query = get(port, "/trustlist/?lang=en", {"Accept-Language": "zh-HK"})
    assert q_headers["content-language"] == "en" and en_by_query == en
    zh_text, en_text = zh.decode(), en.decode()
    assert '<html lang="zh-Hant">' in zh_text and "符合互認條件的證書類別信任列表" in zh_text
    assert '<html lang="en">' in en_text and "Trust list of certificate types" not in zh_text.split("<body>")[0]
    for text in (zh_text, en_text):  # both names of every entry, whichever language leads
        assert "香港郵政電子證書（機構）（示範）" in text and "Hongkong Post e-Cert (Organisational) (demo)" in text
        assert "2.16.156.339.1.1.2.2.1" in text
        assert "<script" not in text and "style=" not in text
    status, headers, _ = get(port, "/trustlist/?lang=fr")
    assert status == 400
    # A 304 for the same page, by its strong ETag.
    status, again, body = get(port, "/trustlist/?lang=en", {"If-None-Match": en_headers["etag"]})
    assert (status, body) == (304, b"")


def test_earlier_pages_are_immutable(served):
    demo, _ = served
    status, headers, page = get(demo.http_port, "/trustlist/1/?lang=en")
    assert status == 200 and headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["etag"] == f'"{hashlib.sha256(page).hexdigest()}"'
    text = page.decode()
    assert "<td>1</td>" in text and "the current list" in text
    status, _, again = get(demo.http_port, "/trustlist/1/?lang=en")
    assert again == page


@pytest.mark.parametrize("path, status, words", [
    ("/trustlist/0.xml", 404, "not a trust list sequence number"),
    ("/trustlist/01.xml", 404, "not a trust list sequence number"),
    ("/trustlist/-1/", 404, "not a trust list sequence number"),
    ("/trustlist/99999.xml", 404, "no trust list number 99999"),
    ("/trustlist/99999/", 404, "no trust list number 99999"),
    ("/trustlist/1.json", 404, "no such trust list file"),
    ("/trustlist/%FF.xml", 404, "not a trust list sequence number"),
    ("/trustlist", 301, ""),
])
def test_bad_sequence_numbers_get_404_with_a_reason(served, path, status, words):
    demo, _ = served
    got, headers, body = get(demo.http_port, path)
    assert got == status
    assert words.encode() in body


_segment = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FFF), max_size=30)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=_segment, suffix=st.sampled_from(["", "/", ".xml", ".html", "/?lang=en", "?lang=%00"]),
       accept=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_no_request_to_the_routes_gets_a_500(served, segment, suffix, accept):
    demo, _ = served
    path = "/trustlist/" + urllib.parse.quote(segment, safe="") + suffix
    status, _, _ = get(demo.http_port, path, {"Accept-Language": accept})
    assert status in (200, 301, 304, 400, 404), path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lang=st.text(max_size=20), accept=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
def test_any_language_choice_gets_a_page_or_400(served, lang, accept):
    demo, _ = served
    status, headers, _ = get(demo.http_port, "/trustlist/?lang=" + urllib.parse.quote(lang, safe=""),
                             {"Accept-Language": accept})
    assert status == (200 if lang in ("zh-Hant", "en") else 400)


def _config_variant(demo: Demo, capsys, old: str, new: str) -> tuple[int, str]:
    # Beside the demo's config, so that its relative paths (pki/...) resolve the same.
    text = demo.config.read_text()
    assert old in text
    path = demo.dir / "variant.toml"
    path.write_text(text.replace(old, new, 1))
    try:
        code, out, err = cli(demo, capsys, "config", "check", str(path))
        return code, out + err
    finally:
        path.unlink()


@pytest.mark.parametrize("old, new, words", [
    ("next_update_days = 30", "next_update_days = 30\nsigning_key = \"x\"", ["[trustlist]", "signing_key"]),
    ('en = "Digital Policy Office (demo)"', 'fr = "x"', ["trustlist.operator.en", "required"]),
    ("next_update_days = 30", "next_update_days = 365", ["trustlist.next_update_days", "183"]),
    ('key = "pki/trustlist-signer.key"', 'key = "pki/eCertCA2-17.key"', ["trustlist.key", "does not belong"]),
    ('certificate = "pki/trustlist-signer.pem"', 'certificate = "pki/nope.pem"', ["trustlist.certificate", "nope.pem"]),
])
def test_config_refusals_name_the_key(served, capsys, old, new, words):
    demo, _ = served
    code, text = _config_variant(demo, capsys, old, new)
    assert code == 2, text
    for w in words:
        assert w in text, text


def test_without_a_trustlist_section_there_is_no_trust_list(served, capsys):
    demo, _ = served
    text = demo.config.read_text()
    path = demo.dir / "plain.toml"
    path.write_text(text[: text.index("# The trust list of certificate types")])
    try:
        code, out, err = cli(demo, capsys, "--config", str(path), "trustlist", "show")
    finally:
        path.unlink()
    assert code == 2 and "no [trustlist] section" in err
