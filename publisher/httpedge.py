"""What every HTTP front-end shares at the edge of the server, below all of them: the size
of request bodies, the answer to `Expect: 100-continue`, telling a body that cannot be
decoded or a client that went away from a fault of ours (`client_fault`, which the server
log, `connections.ServerLog`, uses to note those in one line).

A client's malformed request is answered with a 4xx and noted in one line; only our own
faults are logged with a traceback.
"""
from __future__ import annotations


from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError

# The largest request body any route reads; no route of the repository takes more than an
# OCSP request.
MAX_BODY_BYTES = 64 * 1024



def expect_handler(max_bytes: int):
    """The `expect_handler` of a route whose bodies are at most `max_bytes`.

    aiohttp's default answers "100 Continue" to any body size, so a client announcing a body
    the route will refuse is first invited to send it. Here the refusal comes first (RFC 9110
    §10.1.1): 417 for an expectation we do not know, 413 for a body over the limit, and the
    connection is closed rather than read on, since the client may or may not send the body.
    """

    async def expect(request: web.Request) -> web.StreamResponse | None:
        if request.version != HttpVersion11:
            return None  # HTTP/1.0 has no 100 Continue (RFC 9110 §10.1.1)
        value = request.headers.get(hdrs.EXPECT, "")
        if value.strip().lower() != "100-continue":
            return _closing(417, f"unknown expectation {value[:60]!r}: only 100-continue is supported")
        if request.content_length is not None and request.content_length > max_bytes:
            return _closing(413, f"request bodies here are limited to {max_bytes} bytes")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the 100 is not part of the response that follows
        return None

    return expect


def _closing(status: int, text: str) -> web.Response:
    resp = web.Response(status=status, text=text + "\n")
    resp.force_close()
    return resp


def client_went_away(request: web.BaseRequest, exc: BaseException) -> bool:
    """True when `exc` is the connection closing under the request: nothing to answer, and
    nothing wrong on our side."""
    transport = request.transport
    return isinstance(exc, ConnectionError) and (transport is None or transport.is_closing())


def body_unreadable(exc: BaseException) -> str | None:
    """The reason, if `exc` says the request body could not be decoded (a Content-Encoding
    the bytes do not have, broken chunked framing); None for anything else."""
    return reason(exc) if isinstance(exc, web.RequestPayloadError) else None


def reason(exc: BaseException) -> str:
    """The first line of aiohttp's message, bounded: it may quote the client's bytes."""
    if not isinstance(exc, HttpProcessingError) and isinstance(exc.__cause__, HttpProcessingError):
        exc = exc.__cause__  # a payload error wraps the parser's, whose text is the reason
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def client_fault(exc: BaseException | None) -> bool:
    """True when aiohttp's error is the client's doing: a request line or header it cannot
    parse, a body that does not decode, a connection dropped mid-request."""
    if isinstance(exc, HttpProcessingError):
        return 400 <= (exc.code or 400) < 500
    return isinstance(exc, (web.RequestPayloadError, ConnectionError))
