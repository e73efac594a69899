"""The HTTP listener's defences: a cap on open connections, and how long a client may take
to send a request.

aiohttp reads requests for as long as a client cares to send them, and accepts every
connection the kernel hands it.  A few thousand clients that connect and send nothing (or
half a header, or a body one byte at a time) would hold a file descriptor each until the
process runs out, after which nobody is served, /healthz and LDAP included.  Here:

- `ConnectionGuard.site()` listens with a protocol wrapped around aiohttp's: beyond
  `max_connections` a connection is answered 503 and closed at once; a connection must
  deliver a complete request header within `header_timeout` of opening, or of its first
  byte after a finished response, else it gets 408 and is closed.
- `ConnectionGuard.middleware` reads a request's body within `body_timeout` (408 otherwise)
  before the handler runs, so no handler waits on a slow body.
- Between requests, aiohttp's own keep-alive timer (`keepalive_timeout`) closes idle ones.
- `ServerLog` is the logger aiohttp reports bad requests to: a client's malformed request is
  one line at INFO, rate-limited; only failures of the server keep their traceback.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from typing import Any, Callable

from aiohttp import web

from . import httpedge
from .config import HttpSettings
from .ratelimit import RateLimit, suffix

log = logging.getLogger("pkirepo.http")

_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 21\r\nRetry-After: 1\r\n\r\ntoo many connections\n")
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 16\r\n\r\nrequest timeout\n")


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the header timer around it."""

    def __init__(self, guard: "ConnectionGuard", inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.active = 0  # requests the application is handling
        self.requests = 0  # requests started on this connection so far
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.guard.admit(self):
            transport.write(_REFUSED)  # type: ignore[attr-defined]
            transport.close()
            return
        self.inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.active == 0 and self.timer is None:
            self._arm()  # the first bytes of the next request
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self.guard.release(self):
            self.inner.connection_lost(exc)

    def _arm(self) -> None:
        timeout = self.guard.settings.header_timeout
        if timeout > 0:
            self.timer = asyncio.get_running_loop().call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        t = self.transport
        if self.active or t is None or t.is_closing():
            return
        self.guard.note_timeout("header", t.get_extra_info("peername"))
        t.write(_TIMED_OUT)
        t.close()

    def request_started(self) -> None:
        self.active += 1
        self.requests += 1
        self._disarm()

    def request_done(self) -> None:
        self.active -= 1


class ConnectionGuard:
    """Counts and times the HTTP connections of one listener (see the module docstring)."""

    def __init__(self, settings: HttpSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.open: dict[Any, _Guarded] = {}  # by transport
        self._refusals = RateLimit(rate=1.0, burst=5, clock=clock)
        self._timeouts = RateLimit(rate=1.0, burst=5, clock=clock)

    def admit(self, conn: _Guarded) -> bool:
        if len(self.open) >= self.settings.max_connections:
            dropped = self._refusals.allow()
            if dropped is not None:
                log.warning("HTTP connection refused: %d connections open (http.max_connections)%s",
                            len(self.open), suffix(dropped))
            return False
        self.open[conn.transport] = conn
        return True

    def release(self, conn: _Guarded) -> bool:
        """Forget a closed connection; True if it had been admitted."""
        return self.open.pop(conn.transport, None) is not None

    def note_timeout(self, what: str, peer: Any) -> None:
        dropped = self._timeouts.allow()
        if dropped is not None:
            log.info("HTTP %s timeout: closing the connection from %s%s", what, peer, suffix(dropped))

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, inner())

    def site(self, runner: web.BaseRunner, host: str, port: int,
             *, sock: socket.socket | None = None, backlog: int = 128) -> "GuardedSite":
        """The listener; with `sock`, an already listening socket (inherited from a
        supervisor) instead of binding host:port. asyncio listens again with `backlog`:
        for a shared socket, give the supervisor's, which this changes for everyone."""
        return GuardedSite(runner, self, host, port, sock=sock, backlog=backlog)

    async def settle(self, timeout: float) -> None:
        """Wait up to `timeout` seconds until no connection is still to send its first
        request. Called after this process stops accepting and before aiohttp's shutdown,
        which closes every connection without a request in progress: a client whose
        connection was accepted a moment before would otherwise lose its request."""
        deadline = time.monotonic() + timeout
        # asyncio accepts a burst of queued connections at once and makes their protocols
        # in tasks of their own: let those run before looking.
        await asyncio.sleep(0.05)
        while any(c.requests == 0 for c in self.open.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        conn = self.open.get(request.transport)
        if conn is not None:
            conn.request_started()
        try:
            if request.body_exists and (request.content_length is None
                                        or request.content_length <= request.client_max_size):
                try:
                    async with asyncio.timeout(self.settings.body_timeout or None):
                        await request.read()  # kept by aiohttp for the handler
                except TimeoutError:
                    self.note_timeout("body", request.remote)
                    resp = web.Response(status=408, text="request timeout\n")
                    resp.force_close()
                    return resp
                except (web.RequestPayloadError, ConnectionError):
                    # A body that does not decode, or a client gone mid-body: the stream keeps
                    # the error, so a handler that reads the body meets it and answers in its
                    # protocol's terms; one that reads none answers as usual.
                    pass
            return await handler(request)
        finally:
            if conn is not None:
                conn.request_done()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a `ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int,
                 *, backlog: int = 128, sock: socket.socket | None = None) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._host = host
        self._port = port
        self._sock = sock

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(self._guard.protocol_factory(server), sock=self._sock,
                                                    backlog=self._backlog)
            return
        self._server = await loop.create_server(
            self._guard.protocol_factory(server), self._host, self._port,
            backlog=self._backlog, reuse_address=True)

    def stop_accepting(self) -> None:
        """Close this process's listening socket, leaving the connections it accepted (an
        inherited socket stays open in the supervisor and the other workers)."""
        if self._server is not None:
            self._server.close()


class ServerLog:
    """The logger aiohttp's server reports to.  A request that does not parse is the
    client's mistake: one line at INFO, at most a few a second.  Anything else is the
    server's and keeps its traceback, rate-limited too so a storm cannot fill the disk."""

    def __init__(self, logger: logging.Logger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._client = RateLimit(rate=2.0, burst=10, clock=clock)
        self._server = RateLimit(rate=1.0, burst=10, clock=clock)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if exc is None and exc_info is True:
            exc = sys.exc_info()[1]
        if httpedge.client_fault(exc):
            dropped = self._client.allow()
            if dropped is not None:
                self._log.info("bad HTTP request: %s (%s)%s", msg % args if args else msg,
                               httpedge.reason(exc), suffix(dropped))
            return
        dropped = self._server.allow()
        if dropped is not None:
            self._log.error(msg + suffix(dropped), *args, exc_info=exc_info, **kw)

    def warning(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.warning(msg, *args, **kw)

    def debug(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.debug(msg, *args, **kw)
