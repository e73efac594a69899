"""HTTP at the edge: request bodies that do not decode, clients that leave mid-request,
`Expect: 100-continue`, and a property test over every route of the public app.

The application is the real one (`publisher.root.create_app` over a copied demo, its store
and signing keys) served as `pkirepo serve` serves it: an AppRunner and a TCP site on
127.0.0.1, whose handlers run on when a client goes away. It runs on a thread of its own,
so requests are written byte for byte on plain sockets. The log is captured: an ERROR
record with a traceback fails the test, as does any 500.
"""
from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crl_testlib import ARL, CA, FULL, ROOT, copy_demo, template_demo
from publisher.clock import SystemClock
from publisher.root import CONNECTIONS, create_app, load_settings, make_runner, open_backend
from publisher.service import load_signers

MALFORMED = b"\x30\x03\x0a\x01\x01"


class AppServer:
    """The app on its own event loop and thread, listening on an ephemeral port."""

    def __init__(self, config) -> None:
        self.config = config
        self.port = 0
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="app-server", daemon=True)
        self._thread.start()
        assert self._ready.wait(60), "the app did not start"
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            settings_ = load_settings(self.config)
            backend = await open_backend(settings_)
            app = create_app(settings_, store=backend.store, signers=load_signers(settings_),
                             clock=SystemClock(), presigned=backend.presigned)
            runner = make_runner(app, settings_, shutdown_timeout=2)
            await runner.setup()
            site = app[CONNECTIONS].site(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
        except BaseException as e:  # reported to the test thread
            self._failure = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await backend.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("edge") / "demo")


@pytest.fixture(scope="module")
def server(demo):
    s = AppServer(demo.config)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ocsp_request(demo) -> bytes:
    cert = x509.load_pem_x509_certificate((demo.pki / "good.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((demo.pki / f"{CA}.pem").read_bytes())
    req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return req.public_bytes(Encoding.DER)


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def tracebacks(records) -> list[str]:
    """ERROR records carrying an exception: a fault of ours, or a client's fault logged as one."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR and r.exc_info]


@dataclass
class Reply:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    interim: list[int] = field(default_factory=list)  # 1xx answers before the final one


def exchange(port: int, *parts: bytes, head: bool = False, pause: float = 0.0, timeout: float = 15) -> Reply:
    """Write `parts` (with `pause` seconds between them), then read one final answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed before taking all of it
        return _read_reply(s, head)


def _read_reply(s: socket.socket, head: bool) -> Reply:
    buf = b""
    interim: list[int] = []

    def more() -> bool:
        nonlocal buf
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        buf += chunk
        return bool(chunk)

    while True:
        while b"\r\n\r\n" not in buf:
            if not more():
                return Reply(None, interim=interim)
        raw, buf = buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if 100 <= status < 200:
            interim.append(status)
            continue
        length = 0 if head or status in (204, 304) else int(headers.get("content-length", "0"))
        while len(buf) < length:
            if not more():
                break
        return Reply(status, headers, buf[:length], interim)


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
            *, length: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    hdrs = dict(headers or {})
    if length and body and "Transfer-Encoding" not in hdrs and "Content-Length" not in hdrs:
        hdrs["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


OCSP_POST = {"Content-Type": "application/ocsp-request"}


# Bodies that do not decode as they claim


@pytest.mark.parametrize("headers,body", [
    ({"Content-Encoding": "gzip"}, b"this is not gzip"),
    ({"Content-Encoding": "deflate"}, b"this is not deflate"),
    ({"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n"),
], ids=["gzip", "deflate", "chunked-gzip"])
def test_ocsp_body_that_does_not_decode_is_malformed(server, log, headers, body):
    r = exchange(server.port, request("POST", "/ocsp", {**OCSP_POST, **headers}, body))
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/ocsp-response"
    assert r.body == MALFORMED
    assert tracebacks(log.records) == []


@pytest.mark.parametrize("coding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_ocsp_body_that_decodes_is_answered(server, log, ocsp_request, coding, compress):
    r = exchange(server.port, request("POST", "/ocsp", {**OCSP_POST, "Content-Encoding": coding},
                                      compress(ocsp_request)))
    assert r.status == 200, r
    assert x509_ocsp.load_der_ocsp_response(r.body).response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert tracebacks(log.records) == []


@pytest.mark.parametrize("path", ["/healthz", f"/crl/{FULL}.crl", "/ocsp/MA=="])
def test_an_undecodable_body_on_a_route_that_reads_none_is_ignored(server, log, path):
    r = exchange(server.port, request("GET", path, {"Content-Encoding": "gzip"}, b"this is not gzip"))
    assert r.status in (200, 400), r
    assert tracebacks(log.records) == []


@pytest.mark.parametrize("headers,sent", [
    ({**OCSP_POST, "Content-Length": "500"}, b"\x30\x82\x01"),
    ({**OCSP_POST, "Transfer-Encoding": "chunked"}, b"5\r\n\x30\x82\x01\xf0\x30\r\n"),
], ids=["content-length", "chunked"])
def test_client_leaving_mid_body_is_one_line(server, log, headers, sent):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request("POST", "/ocsp", headers, length=False) + sent)
        time.sleep(0.2)  # the handler is waiting for the rest of the body
    deadline = time.monotonic() + 10
    while not any("closed the connection" in r.getMessage() for r in log.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in log.records]
        time.sleep(0.05)
    lines = [r for r in log.records if "closed the connection" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and not lines[0].exc_info
    assert "POST /ocsp" in lines[0].getMessage()
    assert tracebacks(log.records) == []


# Expect: 100-continue


@pytest.mark.parametrize("method,path,headers,length,want", [
    ("POST", "/ocsp", OCSP_POST, 10_000_000, 413),
    ("POST", "/ocsp", OCSP_POST, 64 * 1024 + 1, 413),
    ("GET", f"/crl/{FULL}.crl", {}, 10_000_000, 413),
    ("GET", "/healthz", {}, 2**62, 413),
    ("POST", "/ocsp", {**OCSP_POST, "Expect": "200-ok"}, 10, 417),
], ids=["ocsp-10M", "ocsp-64k", "crl-10M", "healthz-huge", "unknown"])
def test_expect_is_refused_before_the_body_is_invited(server, log, method, path, headers, length, want):
    hdrs = {"Expect": "100-continue", **headers, "Content-Length": str(length)}
    r = exchange(server.port, request(method, path, hdrs))  # the body is never sent
    assert r.interim == [], "no 100 Continue for a body that will be refused"
    assert r.status == want, r
    assert r.headers.get("connection", "").lower() == "close"
    assert tracebacks(log.records) == []


def test_expect_with_an_acceptable_body_continues(server, log, ocsp_request):
    hdrs = {**OCSP_POST, "Expect": "100-continue", "Content-Length": str(len(ocsp_request))}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request("POST", "/ocsp", hdrs))
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(ocsp_request)
        r = _read_reply(s, head=False)
    assert r.status == 200
    assert x509_ocsp.load_der_ocsp_response(r.body).response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL


# Every route, any request line, conditional and framing headers and body


NAMES = [FULL, ARL, CA, ROOT, "nope", "..", "%2e%2e", "a%00b", "\u00e9", "x" * 300, "", "%ff", "A" * 41]


@st.composite
def paths(draw) -> str:
    name = draw(st.sampled_from(NAMES) | st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="/?#% "), max_size=20))
    number = draw(st.sampled_from(["1", "0", "-1", "9" * 60, "0x1", "1.5"]) | st.integers(0, 2**70).map(str))
    serial = draw(st.sampled_from(["01", "00", "-1", "f" * 41, "zz"]) | st.integers(0, 2**170).map("{:x}".format))
    ext = draw(st.sampled_from([".crl", ".cer", ".p7c", ".pem", ""]))
    b64 = draw(st.binary(max_size=60)).hex()
    return draw(st.sampled_from([
        "/", "/healthz", "/crl/", f"/crl/{name}{ext}", f"/crl/archive/{name}/",
        f"/crl/archive/{name}/{number}{ext}", f"/ca/{name}{ext}", f"/certs/{name}/{serial}{ext}",
        "/ocsp", f"/ocsp/{b64}", f"/ocsp/{name}", "/healthz/ocsp", "//", "/crl//x", f"/{name}",
    ]))


HTTP_DATES = st.sampled_from([
    "Fri, 31 Dec 99999999999 23:59:59 GMT", "Fri, 31 Dec 9999 23:59:59 -2359", "Sat, 31 Feb 2026 00:00:00 GMT",
    "Tue, 01 Dec 2026 00:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 01 Jan 0001 00:00:00 +2359", "", "0",
]) | st.builds("Fri, 31 Dec {} 23:59:59 {}".format, st.integers(-10**20, 10**20),
               st.sampled_from(["GMT", "+9999", "-0000", "+99999999999999999999"]))
TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
ETAGS = st.sampled_from(["*", '"x"', 'W/"x"', '"', "W/", '"a", W/"b", c', ""]) | TEXT


@st.composite
def exchanges(draw) -> tuple[bytes, bool]:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW", "G\u00c9T"]))
    path = draw(paths())
    headers: dict[str, str] = {}
    for name, values in [
        ("If-Modified-Since", HTTP_DATES), ("If-Unmodified-Since", HTTP_DATES),
        ("If-None-Match", ETAGS), ("If-Match", ETAGS), ("If-Range", HTTP_DATES | ETAGS),
        ("Content-Type", st.sampled_from(["application/ocsp-request", "text/plain", "", ";;;"])),
        ("Expect", st.sampled_from(["100-continue", "100-CONTINUE", "x", ""])),
    ]:
        if draw(st.booleans()):
            headers[name] = draw(values)
    body = draw(st.binary(max_size=300))
    coding = draw(st.sampled_from([None, "gzip", "deflate", "identity", "br", "x-unknown", "gzip, deflate"]))
    if coding is not None:
        headers["Content-Encoding"] = coding
        if draw(st.booleans()) and coding in ("gzip", "deflate"):
            body = (gzip.compress if coding == "gzip" else zlib.compress)(body)
    framing = draw(st.sampled_from(["length", "chunked", "bad-chunk", "none", "shorter"]))
    if framing == "length":
        headers["Content-Length"] = str(len(body))
    elif framing == "shorter":  # what is left over reads as a next request
        headers["Content-Length"] = str(len(body) // 2)
    elif framing == "chunked":
        headers["Transfer-Encoding"] = draw(st.sampled_from(["chunked", "CHUNKED", "gzip, chunked"]))
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif framing == "bad-chunk":
        headers["Transfer-Encoding"] = "chunked"
        body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    else:
        body = b""
    if "Expect" in headers and framing not in ("length", "shorter"):
        del headers["Expect"]  # a client expecting 100 waits for it: not a hang of ours
    wire = request(method, path, headers, body, length=False)
    return wire, method == "HEAD"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ex=exchanges())
def test_no_request_gets_a_500_or_a_traceback(server, log, ex):
    wire, head = ex
    seen = len(log.records)
    r = exchange(server.port, wire, head=head)
    assert r.status is not None, f"no answer to {wire[:300]!r}"
    assert r.status < 500 or r.status == 503, (r.status, r.body[:200], wire[:300])
    assert b"Traceback" not in r.body
    assert tracebacks(log.records[seen:]) == [], wire[:300]
