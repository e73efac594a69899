"""The LDAP protocol on Twisted: framing, limits, flow control and dispatch to the
operations of `ldap.operations`.

Why not ldaptor's `LDAPServer`: it accepts writes by default, buffers any PDU a client
announces, ignores size and time limits, and decodes and re-encodes every request and entry
with its (slow) object codec.  This protocol frames messages itself (with a size cap), answers
writes with insufficientAccessRights without decoding them, decodes the other requests with
`ldap.requests` and `ldap.decode`, and sends entries from bytes encoded once per snapshot.
Complete search responses are cached per snapshot, keyed on the request bytes after the
messageID: a repeated search (the CRL entry, a certificate by mail) is a dict lookup and one
write.

Errors: operations raise the errors of `ldap.errors`; `_fail` is the one place they become a
reply (an operation's result, or a Notice of Disconnection for a protocol violation or an
unforeseen failure).

Flow control: the protocol is a streaming producer on its transport.  When the client does not
read and the transport's buffer fills, the current search pauses and the server stops reading
further requests from that connection; the idle timeout then closes it.  Long searches are
cut into slices (`slice_entries`, `slice_bytes`) with a return to the event loop between them,
so HTTP and other connections sharing the loop keep being served.  A slice ends on elapsed
time too (`slice_seconds`), and the filter's size bounds the work done on one entry, so no
request holds the loop for much longer than `slice_seconds`.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Iterator

from twisted.internet import interfaces, protocol, tcp
from twisted.python.failure import Failure
from zope.interface import implementer

from . import ber, decode, errors, operations
from .codes import NOTICE_OF_DISCONNECTION, ResultCode
from .directory import Directory, ResponseCache
from .errors import ProtocolViolation
from .requests import FilterLimits, decode_search
from .settings import LdapSettings

log = logging.getLogger("pkirepo.ldap")

DirectoryProvider = Callable[[], Directory]


class _Job:
    """The search in progress on a session: a planned search run a slice at a time, or the
    replay of a cached response too large for one slice."""

    __slots__ = ("message_id", "key", "search", "ops", "cache", "collected", "collected_bytes", "frame",
                 "waiting_on")

    def __init__(self, message_id: int, key: bytes,
                 search: operations.Search | operations.Compare | None = None,
                 ops: Iterator[bytes] | None = None,
                 cache: ResponseCache | None = None, frame: ber.Frame | None = None) -> None:
        self.message_id = message_id
        self.key = key
        self.search = search
        self.ops = ops  # iterator over a cached response
        self.cache = cache  # of the snapshot this search runs on
        # The response as sent so far, kept for the cache while it stays small enough.
        self.collected: list[bytes] | None = [] if search is not None and cache is not None else None
        self.collected_bytes = 0
        self.frame = frame  # the request, for `_fail`
        self.waiting_on: Any = None  # the store read the job waits for, once a callback is set


@implementer(interfaces.IPushProducer)
class DirectoryProtocol(protocol.Protocol):
    """One LDAP session.  Created by `DirectoryFactory`."""

    factory: "DirectoryFactory"

    def __init__(self, factory: "DirectoryFactory") -> None:
        self.factory = factory
        self.settings = factory.settings
        self.clock = factory.clock
        self._buf = bytearray()
        self._queue: deque[ber.Frame] = deque()
        self._job: _Job | None = None
        self._write_paused = False
        self._read_paused = False
        self._closing = False
        self._scheduled: Any = None
        self._idle_call: Any = None
        self._last_activity = 0.0
        self._direct_socket: Any = None
        self._out: list[bytes] = []
        self._out_len = 0

    # -- connection life -------------------------------------------------------------------

    def connectionMade(self) -> None:
        # Direct sends only on a plain Twisted TCP connection with the attributes we rely on.
        t = self.transport
        self._direct_socket = (
            t.socket if isinstance(t, tcp.Connection) and hasattr(t, "_tempDataBuffer")
            and hasattr(t, "dataBuffer") else None
        )
        if self._direct_socket is not None:
            t.setTcpNoDelay(True)
        self.factory.connections.add(self)
        self.transport.registerProducer(self, True)
        self._last_activity = self.clock.seconds()
        if self.settings.idle_timeout > 0:
            self._idle_call = self.clock.callLater(self.settings.idle_timeout, self._idle)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.factory.connections.discard(self)
        self._closing = True
        self._job = None
        self._queue.clear()
        for call in (self._idle_call, self._scheduled):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._scheduled = None
        self.factory.connection_closed(self)

    def _idle(self) -> None:
        self._idle_call = None
        if self._closing:
            return
        now = self.clock.seconds()
        busy = self._job is not None and not self._write_paused
        remaining = self._last_activity + self.settings.idle_timeout - now
        if busy or remaining > 0:
            self._idle_call = self.clock.callLater(
                remaining if remaining > 0 else self.settings.idle_timeout, self._idle
            )
            return
        log.info("closing idle LDAP connection from %s", self.transport.getPeer())
        self._closing = True
        # abortConnection: a client that does not read would keep loseConnection waiting.
        self.transport.abortConnection()

    # -- IPushProducer: the transport tells us when its write buffer is full or drained -----

    def pauseProducing(self) -> None:
        self._write_paused = True

    def resumeProducing(self) -> None:
        self._write_paused = False
        self._last_activity = self.clock.seconds()
        if not self._closing:
            self._pump()

    def stopProducing(self) -> None:
        self._closing = True
        self._job = None

    # -- input ------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = self.clock.seconds()
        buf = self._buf
        buf += data
        pos = 0
        cap = self.settings.max_pdu
        try:
            while True:
                h = ber.header(buf, pos)
                if h is None:
                    break
                tag, start, n = h
                if tag != ber.SEQUENCE:
                    raise ProtocolViolation("expected an LDAPMessage")
                if start - pos + n > cap:
                    raise ProtocolViolation(
                        f"message of {start - pos + n} bytes exceeds the limit of {cap}"
                    )
                if len(buf) < start + n:
                    break
                frame = ber.split_message(bytes(buf[start : start + n]))
                pos = start + n
                self._accept(frame)
                if self._closing:
                    return
            if len(buf) - pos > cap:
                raise ProtocolViolation("message exceeds the size limit")
        except Exception as e:
            self._fail(None, e)
            return
        finally:
            if pos and not self._closing:
                del buf[:pos]
        self._pump()
        if len(self._queue) >= self.settings.max_pending and not self._read_paused:
            self._read_paused = True
            self.transport.pauseProducing()

    def _accept(self, frame: ber.Frame) -> None:
        """Abandon and unbind act at once; everything else is queued in order."""
        if frame.op_tag == ber.ABANDON_REQUEST:
            h = ber.header(frame.op, 0)
            if h is None or h[2] == 0 or h[2] > 4 or h[1] + h[2] != len(frame.op):
                raise ProtocolViolation("malformed abandon request")
            target = int.from_bytes(frame.op[h[1]:], "big", signed=True)
            if self._job is not None and self._job.message_id == target:
                self._job = None  # RFC 4511 4.11: no response for an abandoned search
            self._queue = deque(f for f in self._queue if f.message_id != target)
            return
        if frame.op_tag == ber.UNBIND_REQUEST:
            self._closing = True
            self._queue.clear()
            self._job = None
            self.transport.loseConnection()
            return
        if frame.message_id == 0:
            raise ProtocolViolation("messageID 0 is reserved")
        self._queue.append(frame)

    # -- the work loop ----------------------------------------------------------------------

    def _pump(self) -> None:
        """Serve queued requests until done, paused by flow control, or out of slice."""
        try:
            self._pump_once()
        finally:
            self._flush()

    def _pump_once(self) -> None:
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        budget = [self.settings.slice_entries, self.settings.slice_bytes]
        slice_end = self.clock.seconds() + self.settings.slice_seconds
        while not self._closing and not self._write_paused:
            if self._job is not None:
                job = self._job
                try:
                    finished = self._step(job, budget, slice_end)
                except Exception as e:
                    self._job = None
                    self._fail(job.frame, e)
                    if self._closing:
                        return
                    continue
                if not finished:
                    waiting = job.search.waiting if job.search is not None else None
                    if waiting is not None and self._job is job:
                        self._wait_for(job, waiting)
                    elif not self._write_paused and not self._closing:
                        self._scheduled = self.clock.callLater(0, self._pump)
                    return
                self._job = None
                continue
            if not self._queue:
                break
            frame = self._queue.popleft()
            try:
                self._handle(frame)
            except Exception as e:
                self._fail(frame, e)
                if self._closing:
                    return
            if budget[0] <= 0 or budget[1] <= 0 or self.clock.seconds() >= slice_end:
                if not self._closing and (self._queue or self._job):
                    self._scheduled = self.clock.callLater(0, self._pump)
                break
        if self._read_paused and len(self._queue) < self.settings.max_pending // 2 + 1:
            self._read_paused = False
            if not self._closing:
                self.transport.resumeProducing()

    def _wait_for(self, job: _Job, future: Any) -> None:
        """Go on with `job` once the store read it waits for is done; meanwhile the loop
        serves everyone else (the session's later requests wait their turn)."""
        if job.waiting_on is future:
            return
        job.waiting_on = future

        def resume(_: Any) -> None:
            if self._job is job and not self._closing and not self._write_paused:
                self._pump()

        future.add_done_callback(resume)

    def _send(self, message_id: int, op: bytes) -> None:
        """Queue one LDAPMessage; queued output goes out at the end of the turn (`_flush`),
        so an entry and its SearchResultDone leave in one segment."""
        self._out.append(ber.message_header(message_id, len(op)))
        self._out.append(op)
        if self.factory.observe is not None and op[0] != ber.SEARCH_RESULT_ENTRY:
            self.factory.observe(op)
        self._out_len += len(op) + 8
        if self._out_len >= 65536:
            self._flush()

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        n = self._out_len
        self._out_len = 0
        if n < 262144:
            self._write(b"".join(out))
        else:
            self.transport.writeSequence(out)

    def _write(self, data: bytes) -> None:
        """Write data, straight to the socket when nothing is queued before it.

        Twisted's TCP transport only buffers in write() and sends on the next turn of the
        loop, which costs an extra loop iteration and two epoll changes per answer; asyncio's
        own transports try the send at once.  Anything not sent goes through the transport,
        which keeps order and flow control.
        """
        t = self.transport
        sock = self._direct_socket
        if sock is not None and not t.dataBuffer and not t._tempDataBuffer and not t.disconnecting:
            try:
                n = sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                n = 0  # the transport's own write path will notice and close
            if n == len(data):
                return
            data = data[n:]
        t.write(data)

    def _fail(self, frame: ber.Frame | None, e: Exception) -> None:
        """The one place an error becomes an answer: the result of the failed operation, or
        a Notice of Disconnection when the session cannot go on (no frame, a protocol
        violation, an unforeseen failure)."""
        code, matched_dn, message = errors.result_of(e)
        if code == ResultCode.OTHER:
            log.error("LDAP request failed", exc_info=e)
        if frame is None or errors.ends_session(e) or frame.op_tag not in ber.RESPONSE_TAGS:
            self._disconnect(code, message)
            return
        op = ber.ldap_result(ber.RESPONSE_TAGS[frame.op_tag], code, matched_dn.encode(),
                             message.encode())
        self._send(frame.message_id, op)
        if frame.op_tag == ber.SEARCH_REQUEST and operations.repeatable(code):
            # A search fails before it starts, on the snapshot whose cache `_search` has
            # just selected.
            self.factory.cache.put(frame.key, (op,))

    def _disconnect(self, code: int, message: str) -> None:
        if self._closing:
            return
        log.info("LDAP notice of disconnection to %s: %s (%s)",
                 self.transport.getPeer(), message, int(code))
        self._closing = True
        self._job = None
        self._queue.clear()
        self._buf.clear()
        self._send(0, notice_of_disconnection(code, message))
        self._flush()
        self.transport.loseConnection()

    def _handle(self, frame: ber.Frame) -> None:
        tag = frame.op_tag
        if tag == ber.SEARCH_REQUEST:
            self._search(frame)
            return
        if tag in operations.WRITE_REQUESTS:
            operations.refuse_write()
        if tag == ber.BIND_REQUEST:
            bind = decode.bind_request(frame.op)
            operations.check_controls(decode.controls(frame.controls))
            op = operations.bind(bind)
        elif tag == ber.COMPARE_REQUEST:
            compare = decode.compare_request(frame.op)
            operations.check_controls(decode.controls(frame.controls))
            # Run as a job: the entry may have to be read from the store first.
            self._job = _Job(frame.message_id, frame.key,
                             operations.Compare(self.factory.provider(), compare), frame=frame)
            return
        elif tag == ber.EXTENDED_REQUEST:
            extended = decode.extended_request(frame.op)
            operations.check_controls(decode.controls(frame.controls))
            op = operations.extended(extended)
        else:
            raise ProtocolViolation(f"not a request: tag 0x{tag:02x}")
        self._send(frame.message_id, op)

    def _search(self, frame: ber.Frame) -> None:
        mid = frame.message_id
        directory, responses = self.factory.cache_for(self.factory.provider())
        cached = responses.get(frame.key)
        if cached is not None:
            if len(cached) <= 2 or sum(len(o) for o in cached) <= self.settings.slice_bytes:
                for op in cached:
                    self._send(mid, op)
            else:
                self._job = _Job(mid, frame.key, ops=iter(cached))
            return
        s = self.settings
        req = decode_search(frame.op, FilterLimits(s.max_filter_items, s.max_filter_depth))
        operations.check_controls(decode.controls(frame.controls))
        search = operations.plan_search(directory, req, size_limit=s.size_limit,
                                        time_limit=s.time_limit,
                                        max_filter_items=s.max_filter_items,
                                        max_filter_depth=s.max_filter_depth,
                                        now=self.clock.seconds)
        self._job = _Job(mid, frame.key, search, cache=responses, frame=frame)

    def _step(self, job: _Job, budget: list[int], slice_end: float) -> bool:
        """Advance a search until it finishes (True: result sent) or the slice runs out of
        entries, bytes or time (False)."""
        mid = job.message_id
        if job.ops is not None:  # replaying a cached response
            for op in job.ops:
                self._send(mid, op)
                budget[1] -= len(op)
                if self._write_paused or self._closing or budget[1] <= 0:
                    return False
            return True
        search = job.search
        assert search is not None
        for op in search.run(budget[0], slice_end):
            self._send(mid, op)
            budget[1] -= len(op)
            if job.collected is not None:
                job.collected.append(op)
                job.collected_bytes += len(op)
                if job.collected_bytes > job.cache.max_bytes // 8:  # type: ignore[union-attr]
                    job.collected = None
            if search.code is not None:
                break  # that was the SearchResultDone
            if self._closing or self._job is not job:
                return True
            if budget[1] <= 0 or self._write_paused:
                break
        budget[0] -= search.examined
        if search.code is None:
            return False
        if (job.collected is not None and job.cache is not None
                and operations.repeatable(search.code)):
            job.cache.put(job.key, tuple(job.collected))
        return True


def notice_of_disconnection(code: int, message: str) -> bytes:
    return ber.ldap_result(
        ber.EXTENDED_RESPONSE, code, b"", message.encode(),
        ber.octets(NOTICE_OF_DISCONNECTION, ber.RESPONSE_NAME),
    )


class _Refuse(protocol.Protocol):
    """Sent to connections over the cap: a Notice of Disconnection, then close."""

    def connectionMade(self) -> None:
        op = notice_of_disconnection(ResultCode.UNAVAILABLE, "too many connections")
        self.transport.write(ber.message(0, op))
        self.transport.loseConnection()


class DirectoryFactory(protocol.ServerFactory):
    """Builds sessions over whatever snapshot `provider()` returns at each operation."""

    def __init__(self, provider: DirectoryProvider, settings: LdapSettings, clock: Any) -> None:
        self.provider = provider
        self.settings = settings
        self.clock = clock
        self.connections: set[DirectoryProtocol] = set()
        self._closed_waiters: list[Callable[[], None]] = []
        self._cache_dir: Directory | None = None
        self.cache = ResponseCache(settings.cache_entries, settings.cache_bytes)
        # Told of every response but search entries (the metrics count operations by result).
        self.observe: Callable[[bytes], None] | None = None

    def cache_for(self, directory: Directory) -> tuple[Directory, ResponseCache]:
        """The response cache of this snapshot: a new snapshot starts an empty one."""
        if directory is not self._cache_dir:
            self._cache_dir = directory
            self.cache = ResponseCache(self.settings.cache_entries, self.settings.cache_bytes)
        return directory, self.cache

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        if len(self.connections) >= self.settings.max_connections:
            log.warning("LDAP connection from %s refused: %d connections open",
                        addr, len(self.connections))
            p: protocol.Protocol = _Refuse()
        else:
            p = DirectoryProtocol(self)
        p.factory = self
        return p

    def connection_closed(self, proto: DirectoryProtocol) -> None:
        if not self.connections:
            waiters, self._closed_waiters = self._closed_waiters, []
            for w in waiters:
                w()
