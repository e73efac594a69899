"""Bad input over HTTP: every case gets its own, correct answer and never a 500.

The table follows Boulder's responder_test.go::TestOCSP; the property test throws random
and mutated requests at the running server's handler.
"""
from __future__ import annotations

import base64
import http.client

import pytest
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocsp_testlib import curl, post, request_der
from publisher import der

MALFORMED = b"\x30\x03\x0a\x01\x01"


@pytest.fixture(scope="module")
def demo(shared_server):
    return shared_server.demo


@pytest.fixture(scope="module")
def good_request(demo, tmp_path_factory) -> bytes:
    return request_der(demo, tmp_path_factory.mktemp("req") / "req.der", "good.pem")


def _nonce_request(good: bytes, nonce: bytes) -> bytes:
    # Rebuild openssl's request with a nonce extension of the given length.
    tbs_start = 2 if good[1] < 0x80 else 2 + (good[1] & 0x7F)
    tbs = good[tbs_start:]
    inner_start = 2 if tbs[1] < 0x80 else 2 + (tbs[1] & 0x7F)
    request_list = tbs[inner_start:]
    ext = der.explicit(2, der.sequence(der.extension("1.3.6.1.5.5.7.48.1.2", der.octet_string(nonce))))
    return der.sequence(der.sequence(request_list, ext))


def _many(good: bytes, n: int) -> bytes:
    tbs_start = 2 if good[1] < 0x80 else 2 + (good[1] & 0x7F)
    tbs = good[tbs_start:]
    inner_start = 2 if tbs[1] < 0x80 else 2 + (tbs[1] & 0x7F)
    request_list = tbs[inner_start:]
    single = request_list[2:]  # openssl's list holds one Request
    return der.sequence(der.sequence(der.sequence(single * n)))


class TestPostBadInput:
    @pytest.mark.parametrize(
        "make, why",
        [
            (lambda g: b"", "empty body"),
            (lambda g: b"this is not DER", "garbage"),
            (lambda g: g[:-3], "truncated DER"),
            (lambda g: g + b"\x00\x00", "trailing data"),
            (lambda g: g.replace(b"\x06\x05\x2b\x0e\x03\x02\x1a", b"\x06\x05\x2b\x0e\x03\x02\x1b"), "unsupported hash"),
            (lambda g: _many(g, 17), "too many single requests"),
            (lambda g: _nonce_request(g, b"\x01" * 33), "nonce of 33 octets"),
            (lambda g: _nonce_request(g, b""), "empty nonce"),
        ],
        ids=lambda v: v if isinstance(v, str) else "",
    )
    def test_malformed_request(self, demo, good_request, tmp_path, make, why):
        r = post(demo, make(good_request), tmp_path)
        assert r.status == 200, why
        assert r.headers["content-type"] == "application/ocsp-response"
        assert r.body == MALFORMED, (why, r.body)
        assert x509_ocsp.load_der_ocsp_response(r.body).response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST

    def test_within_limits_is_answered(self, demo, good_request, tmp_path):
        # The limits' edges are accepted: 16 single requests, a 32-octet nonce.
        for data in (_many(good_request, 16), _nonce_request(good_request, b"\x01" * 32)):
            r = post(demo, data, tmp_path)
            assert x509_ocsp.load_der_ocsp_response(r.body).response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL

    @pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/octet-stream", "text/plain"])
    def test_wrong_content_type(self, demo, good_request, tmp_path, content_type):
        r = post(demo, good_request, tmp_path, content_type=content_type)
        assert r.status == 415

    def test_body_over_the_cap(self, demo, tmp_path):
        r = post(demo, b"\x30\x82\x28\x00" + b"\x00" * 10240, tmp_path)
        assert r.status == 413

    def test_chunked_body_over_the_cap(self, demo, tmp_path):
        r = post(demo, b"\x30" * 20000, tmp_path, extra=("-H", "Transfer-Encoding: chunked"))
        assert r.status == 413

    @pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
    def test_bad_method(self, demo, tmp_path, method):
        r = curl(f"{demo.base_url}/ocsp", "-X", method, tmp=tmp_path)
        assert r.status == 405

    def test_get_without_request(self, demo, tmp_path):
        assert curl(f"{demo.base_url}/ocsp", tmp=tmp_path).status == 405


class TestGetBadInput:
    @pytest.mark.parametrize("path", ["!!!", "MEIw*EA", "%ff%fe", "M", "", "a%2"], ids=["punct", "star", "binary", "one-char", "empty", "bad-escape"])
    def test_not_base64(self, demo, tmp_path, path):
        r = curl(f"{demo.base_url}/ocsp/{path}", tmp=tmp_path)
        assert r.status == 400
        assert r.body == MALFORMED

    @pytest.mark.parametrize("data", [b"hello world", b"\x30\x03\x02\x01\x01", b"\x30\x80\x00\x00"], ids=["text", "int", "ber"])
    def test_base64_of_garbage(self, demo, tmp_path, data):
        r = curl(f"{demo.base_url}/ocsp/{base64.b64encode(data).decode()}", tmp=tmp_path)
        assert r.status == 200
        assert r.body == MALFORMED

    def test_double_slash(self, demo, good_request, tmp_path):
        r = curl(f"{demo.base_url}/ocsp//{base64.b64encode(good_request).decode()}", tmp=tmp_path)
        assert r.status == 200
        assert x509_ocsp.load_der_ocsp_response(r.body).response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL


class _Client:
    """One kept-alive connection for the property test (curl per example would be slow)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.getheader("Content-Type", ""), r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def client(demo):
    c = _Client(demo.http_port)
    yield c
    c.conn.close()


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, value in ops:
        if not out:
            break
        pos %= len(out)
        if kind == 0:
            out[pos] ^= value or 1
        elif kind == 1:
            del out[pos : pos + 1 + value % 8]
        elif kind == 2:
            out[pos:pos] = bytes([value])
        else:
            del out[pos:]
    return bytes(out)


def _check(status: int, ctype: str, body: bytes) -> None:
    assert status in (200, 400), status
    assert ctype == "application/ocsp-response"
    resp = x509_ocsp.load_der_ocsp_response(body)
    assert resp.response_status in (
        x509_ocsp.OCSPResponseStatus.SUCCESSFUL,
        x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        x509_ocsp.OCSPResponseStatus.UNAUTHORIZED,
    )


_OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, use_get=st.booleans())
def test_mutated_requests_over_http(client, good_request, ops, use_get):
    data = _mutate(good_request, ops)
    if use_get:
        _check(*client.send("GET", "/ocsp/" + base64.b64encode(data).decode()))
    else:
        _check(*client.send("POST", "/ocsp", data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bodies_over_http(client, data):
    _check(*client.send("POST", "/ocsp", data))
