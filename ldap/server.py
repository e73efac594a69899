"""The LDAP protocol: a read-only directory server on Twisted, over ldaptor's request codec.

Why not ldaptor's `LDAPServer`: it accepts writes by default, buffers any PDU a client
announces, ignores size and time limits, and decodes and re-encodes every request and entry
with its (slow) object codec.  This protocol frames messages itself (with a size cap), answers
writes with insufficientAccessRights without decoding them, decodes the other requests with
ldaptor's `pureldap`, and sends entries from bytes encoded once per snapshot.  Complete search
responses are cached per snapshot, keyed on the request bytes after the messageID: a repeated
search (the CRL entry, a certificate by mail) is a dict lookup and one write.

Flow control: the protocol is a streaming producer on its transport.  When the client does not
read and the transport's buffer fills, the current search pauses and the server stops reading
further requests from that connection; the idle timeout then closes it.  Long searches are
cut into slices (`slice_entries`, `slice_bytes`) with a return to the event loop between them,
so HTTP and other connections sharing the loop keep being served.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Iterator

from ldaptor.protocols import pureber, pureldap
from twisted.internet import interfaces, protocol, tcp
from twisted.python.failure import Failure
from zope.interface import implementer

from publisher.errors import MalformedInput, RepoError

from . import ber, schema
from . import dn as dnmod
from .codes import NOTICE_OF_DISCONNECTION, PASSWORD_MODIFY, WHO_AM_I, ResultCode
from .directory import Directory, Entry, NoSuchObject, ResponseCache, Selection
from .filters import compile_filter
from .requests import decode_search
from .settings import LdapSettings

log = logging.getLogger("pkirepo.ldap")

DirectoryProvider = Callable[[], Directory]

# ldaptor's decoder contexts for one protocolOp, as its own BaseLDAPServer builds them.
_OP_CONTEXT = pureldap.LDAPBERDecoderContext(
    fallback=pureber.BERDecoderContext(),
    inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
)
_CONTROLS_CONTEXT = pureber.BERDecoderContext(
    inherit=pureldap.LDAPBERDecoderContext_LDAPControls(inherit=pureber.BERDecoderContext())
)
_CONTROLS_TOP = pureldap.LDAPBERDecoderContext_LDAPMessage(
    inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext())
)

# Write requests and the response tag each one gets.
_WRITES = {
    ber.ADD_REQUEST: ber.ADD_RESPONSE,
    ber.DEL_REQUEST: ber.DEL_RESPONSE,
    ber.MODIFY_REQUEST: ber.MODIFY_RESPONSE,
    ber.MODDN_REQUEST: ber.MODDN_RESPONSE,
}

_READ_ONLY = b"the directory is read-only"


class _Fatal(Exception):
    """Ends the session with a Notice of Disconnection (RFC 4511 4.4.1)."""

    def __init__(self, code: ResultCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class _RequestError(Exception):
    """Ends one operation with a result code; the session goes on."""

    def __init__(self, code: int, message: str = "", matched_dn: str = "") -> None:
        super().__init__(message)
        self.code = int(code)
        self.matched_dn = matched_dn


def _decode_op(op: bytes) -> Any:
    try:
        obj, used = pureber.berDecodeObject(_OP_CONTEXT, op)
    except Exception as e:  # ldaptor reports bad input with asserts and IndexErrors
        raise _Fatal(ResultCode.PROTOCOL_ERROR, f"malformed request: {type(e).__name__}") from e
    if obj is None or used != len(op):
        raise _Fatal(ResultCode.PROTOCOL_ERROR, "malformed request")
    return obj


def _check_controls(controls: bytes) -> None:
    """Critical controls we do not implement fail the operation (RFC 4511 4.1.11)."""
    if not controls:
        return
    try:
        obj, _ = pureber.berDecodeObject(_CONTROLS_TOP, controls)
        items = list(obj) if obj is not None else []
    except Exception as e:
        raise _Fatal(ResultCode.PROTOCOL_ERROR, "malformed controls") from e
    for c in items:
        if getattr(c, "criticality", None):
            oid = c.controlType
            oid = oid.decode("ascii", "replace") if isinstance(oid, bytes) else str(oid)
            raise _RequestError(
                ResultCode.UNAVAILABLE_CRITICAL_EXTENSION, f"unsupported critical control {oid}"
            )


def _text(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("utf-8")


class _Search:
    """One search in progress: entries are examined and sent a slice at a time."""

    __slots__ = (
        "message_id", "key", "cands", "predicate", "selection", "types_only",
        "size_limit", "deadline", "sent", "collected", "collected_bytes", "ops", "cache",
    )

    def __init__(self, message_id: int, key: bytes, cands: Iterator[Entry] | None,
                 predicate: Any, selection: Selection | None, types_only: bool,
                 size_limit: int, deadline: float | None, ops: Iterator[bytes] | None = None,
                 cache: ResponseCache | None = None) -> None:
        self.message_id = message_id
        self.key = key
        self.cands = cands
        self.predicate = predicate
        self.selection = selection
        self.types_only = types_only
        self.size_limit = size_limit
        self.deadline = deadline
        self.sent = 0
        # The response as sent so far, kept for the cache while it stays small enough.
        self.collected: list[bytes] | None = [] if ops is None else None
        self.collected_bytes = 0
        self.ops = ops  # replay of a cached response
        self.cache = cache  # of the snapshot this search runs on


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
        self._job: _Search | None = None
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
                    raise _Fatal(ResultCode.PROTOCOL_ERROR, "expected an LDAPMessage")
                if start - pos + n > cap:
                    raise _Fatal(
                        ResultCode.PROTOCOL_ERROR,
                        f"message of {start - pos + n} bytes exceeds the limit of {cap}",
                    )
                if len(buf) < start + n:
                    break
                frame = ber.split_message(bytes(buf[start : start + n]))
                pos = start + n
                self._accept(frame)
                if self._closing:
                    return
            if len(buf) - pos > cap:
                raise _Fatal(ResultCode.PROTOCOL_ERROR, "message exceeds the size limit")
        except ber.FrameError as e:
            self._disconnect(ResultCode.PROTOCOL_ERROR, f"malformed message: {e}")
            return
        except _Fatal as e:
            self._disconnect(e.code, str(e))
            return
        except Exception:
            log.exception("LDAP input handling failed")
            self._disconnect(ResultCode.OTHER, "internal error")
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
                raise _Fatal(ResultCode.PROTOCOL_ERROR, "malformed abandon request")
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
            raise _Fatal(ResultCode.PROTOCOL_ERROR, "messageID 0 is reserved")
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
        while not self._closing and not self._write_paused:
            if self._job is not None:
                if not self._step(self._job, budget):
                    if not self._write_paused and not self._closing:
                        self._scheduled = self.clock.callLater(0, self._pump)
                    return
                self._job = None
                continue
            if not self._queue:
                break
            frame = self._queue.popleft()
            try:
                self._handle(frame)
            except _Fatal as e:
                self._disconnect(e.code, str(e))
                return
            except ber.FrameError as e:
                self._disconnect(ResultCode.PROTOCOL_ERROR, f"malformed request: {e}")
                return
            except Exception:
                log.exception("LDAP request failed")
                self._disconnect(ResultCode.OTHER, "internal error")
                return
            if budget[0] <= 0 or budget[1] <= 0:
                if not self._closing and (self._queue or self._job):
                    self._scheduled = self.clock.callLater(0, self._pump)
                break
        if self._read_paused and len(self._queue) < self.settings.max_pending // 2 + 1:
            self._read_paused = False
            if not self._closing:
                self.transport.resumeProducing()

    def _send(self, message_id: int, op: bytes) -> None:
        """Queue one LDAPMessage; queued output goes out at the end of the turn (`_flush`),
        so an entry and its SearchResultDone leave in one segment."""
        self._out.append(ber.message_header(message_id, len(op)))
        self._out.append(op)
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

    def _disconnect(self, code: ResultCode, message: str) -> None:
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
        mid = frame.message_id
        if tag == ber.SEARCH_REQUEST:
            self._search(frame)
            return
        response_tag = _WRITES.get(tag)
        if response_tag is not None:
            self._send(mid, ber.ldap_result(
                response_tag, ResultCode.INSUFFICIENT_ACCESS_RIGHTS, b"", _READ_ONLY))
            return
        if tag == ber.BIND_REQUEST:
            self._send(mid, self._bind(frame))
        elif tag == ber.COMPARE_REQUEST:
            self._send(mid, self._compare(frame))
        elif tag == ber.EXTENDED_REQUEST:
            self._send(mid, self._extended(frame))
        else:
            raise _Fatal(ResultCode.PROTOCOL_ERROR, f"not a request: tag 0x{tag:02x}")

    # -- operations -------------------------------------------------------------------------

    def _bind(self, frame: ber.Frame) -> bytes:
        req = _decode_op(frame.op)
        if not isinstance(req, pureldap.LDAPBindRequest):
            raise _Fatal(ResultCode.PROTOCOL_ERROR, "malformed bind request")

        def result(code: int, msg: str = "") -> bytes:
            return ber.ldap_result(ber.BIND_RESPONSE, code, b"", msg.encode())

        try:
            _check_controls(frame.controls)
        except _RequestError as e:
            return result(e.code, str(e))
        if req.version != 3:
            return result(ResultCode.PROTOCOL_ERROR, "only LDAPv3 is supported")
        if req.sasl:
            return result(ResultCode.AUTH_METHOD_NOT_SUPPORTED, "SASL is not supported")
        name = _text(req.dn)
        if name:
            try:
                dnmod.parse(name)
            except MalformedInput:
                return result(ResultCode.INVALID_DN_SYNTAX, "invalid DN")
        if _text(req.auth):
            return result(ResultCode.INVALID_CREDENTIALS, "only anonymous binds are accepted")
        return result(ResultCode.SUCCESS)

    def _compare(self, frame: ber.Frame) -> bytes:
        req = _decode_op(frame.op)
        if not isinstance(req, pureldap.LDAPCompareRequest):
            raise _Fatal(ResultCode.PROTOCOL_ERROR, "malformed compare request")

        def result(code: int, matched: str = "", msg: str = "") -> bytes:
            return ber.ldap_result(ber.COMPARE_RESPONSE, code, matched.encode(), msg.encode())

        try:
            _check_controls(frame.controls)
            ndn = dnmod.normalise(_text(req.entry))
            directory = self.factory.provider()
            entry = directory.root_dse if not ndn else directory.lookup(ndn)
            d = schema.parse_description(_text(req.ava.attributeDesc.value))
            values = entry.norm.get(d.key) if d.usable else None
            if values is None:
                return result(ResultCode.NO_SUCH_ATTRIBUTE)
            want = schema.normalise_value(d.key, _text(req.ava.assertionValue.value))
            return result(ResultCode.COMPARE_TRUE if want in values else ResultCode.COMPARE_FALSE)
        except _RequestError as e:
            return result(e.code, msg=str(e))
        except NoSuchObject as e:
            return result(ResultCode.NO_SUCH_OBJECT, e.matched_dn)
        except RepoError as e:
            return result(e.ldap_result, msg=e.message)

    def _extended(self, frame: ber.Frame) -> bytes:
        req = _decode_op(frame.op)
        if not isinstance(req, pureldap.LDAPExtendedRequest):
            raise _Fatal(ResultCode.PROTOCOL_ERROR, "malformed extended request")
        name = _text(req.requestName)

        def result(code: int, msg: str = "", extra: bytes = b"") -> bytes:
            return ber.ldap_result(ber.EXTENDED_RESPONSE, code, b"", msg.encode(), extra)

        try:
            _check_controls(frame.controls)
        except _RequestError as e:
            return result(e.code, str(e))
        if name == WHO_AM_I:
            # RFC 4532: an empty authzId for an anonymous session.
            return result(ResultCode.SUCCESS, extra=ber.octets(b"", ber.RESPONSE_VALUE))
        if name == PASSWORD_MODIFY:
            return result(ResultCode.INSUFFICIENT_ACCESS_RIGHTS, _READ_ONLY.decode())
        # RFC 4511 4.12: an unrecognised requestName gets protocolError.
        return result(
            ResultCode.PROTOCOL_ERROR,
            f"unsupported extended operation {name.decode('ascii', 'replace')}",
        )

    def _search(self, frame: ber.Frame) -> None:
        mid = frame.message_id
        directory, responses = self.factory.cache_for(self.factory.provider())
        cached = responses.get(frame.key)
        if cached is not None:
            if len(cached) <= 2 or sum(len(o) for o in cached) <= self.settings.slice_bytes:
                for op in cached:
                    self._send(mid, op)
            else:
                self._job = _Search(mid, frame.key, None, None, None, False, 0, None,
                                    ops=iter(cached))
            return

        def done(code: int, matched: str = "", msg: str = "") -> None:
            op = ber.ldap_result(ber.SEARCH_RESULT_DONE, code, matched.encode(), msg.encode())
            self._send(mid, op)
            if code in (ResultCode.NO_SUCH_OBJECT, ResultCode.INVALID_DN_SYNTAX):
                responses.put(frame.key, (op,))

        req = decode_search(frame.op)  # FrameError: Notice of Disconnection
        try:
            _check_controls(frame.controls)
            if req.scope not in (0, 1, 2):
                raise _RequestError(ResultCode.PROTOCOL_ERROR, "bad scope")
            base = dnmod.normalise(req.base)
            predicate, hint = compile_filter(req.filter)
            selection = Selection.from_request(req.attributes)
            cands = directory.candidates(base, req.scope, hint)
            first = next(cands, None)  # raises NoSuchObject now rather than mid-search
        except _RequestError as e:
            done(e.code, e.matched_dn, str(e))
            return
        except NoSuchObject as e:
            done(ResultCode.NO_SUCH_OBJECT, e.matched_dn)
            return
        except RepoError as e:
            done(e.ldap_result, msg=e.message)
            return
        s = self.settings
        size = min((x for x in (req.size_limit, s.size_limit) if x > 0), default=0)
        tl = min((x for x in (req.time_limit, s.time_limit) if x > 0), default=0)
        deadline = self.clock.seconds() + tl if tl else None

        def chain() -> Iterator[Entry]:
            if first is not None:
                yield first
            yield from cands

        self._job = _Search(mid, frame.key, chain(), predicate, selection,
                            req.types_only, size, deadline, cache=responses)

    def _step(self, job: _Search, budget: list[int]) -> bool:
        """Advance a search; True when it has finished (result sent)."""
        mid = job.message_id
        if job.ops is not None:  # replaying a cached response
            for op in job.ops:
                self._send(mid, op)
                budget[1] -= len(op)
                if self._write_paused or self._closing or budget[1] <= 0:
                    return False
            return True
        if job.deadline is not None and self.clock.seconds() >= job.deadline:
            return self._finish(job, ResultCode.TIME_LIMIT_EXCEEDED, cache=False)
        predicate = job.predicate
        examined = 0
        for entry in job.cands:  # type: ignore[union-attr]
            examined += 1
            if predicate(entry) is True:
                if job.size_limit and job.sent >= job.size_limit:
                    return self._finish(job, ResultCode.SIZE_LIMIT_EXCEEDED)
                op = entry.encode(job.selection, job.types_only)  # type: ignore[arg-type]
                self._send(mid, op)
                job.sent += 1
                budget[1] -= len(op)
                if job.collected is not None:
                    job.collected.append(op)
                    job.collected_bytes += len(op)
                    if job.collected_bytes > job.cache.max_bytes // 8:  # type: ignore[union-attr]
                        job.collected = None
                if self._closing or self._job is not job:
                    return True
            if examined >= budget[0] or budget[1] <= 0 or self._write_paused:
                budget[0] -= examined
                return False
            if job.deadline is not None and examined % 64 == 0 and \
                    self.clock.seconds() >= job.deadline:
                return self._finish(job, ResultCode.TIME_LIMIT_EXCEEDED, cache=False)
        budget[0] -= examined
        return self._finish(job, ResultCode.SUCCESS)

    def _finish(self, job: _Search, code: ResultCode, cache: bool = True) -> bool:
        op = ber.ldap_result(ber.SEARCH_RESULT_DONE, code)
        self._send(job.message_id, op)
        if cache and job.collected is not None and job.cache is not None:
            job.collected.append(op)
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
