"""The LDAP operations of a read-only directory, as functions of one immutable snapshot.

Each operation takes a decoded request (`ldap.requests`) and returns the protocolOp of its
response, or raises an error from `ldap.errors` that carries the resultCode (and matchedDN)
to answer with.  A search is planned here (`plan_search`: base, scope, filter, limits) and
then run in slices (`Search.run`), so the caller decides how much work goes into one turn
of its event loop.  Writes of any kind are refused with insufficientAccessRights.

Pure: no Twisted, no I/O; the clock comes in as a function.
"""
from __future__ import annotations

from itertools import chain
from typing import Callable, Iterable, Iterator, NoReturn

from publisher.errors import MalformedInput, RepoError

from . import ber, errors, schema
from . import dn as dnmod
from .codes import PASSWORD_MODIFY, WHO_AM_I, ResultCode
from .directory import SCOPE_BASE, Directory, Entry, Selection, Wait
from .errors import (
    AuthMethodNotSupported,
    InvalidCredentials,
    NoSuchAttribute,
    ProtocolError,
    ReadOnly,
    UnsupportedCriticalControl,
)
from .filters import Predicate, check_limits, compile_filter
from .requests import BindRequest, CompareRequest, Control, ExtendedRequest, SearchRequest

# Filter items evaluated between two looks at the clock (see `Search.run`).
CLOCK_EVERY = 256
# The filter limits when the caller gives none (`LdapSettings` holds the configured ones).
DEFAULT_FILTER_ITEMS = 500
DEFAULT_FILTER_DEPTH = 10

# Requests that would change the directory; they are refused without being decoded.
WRITE_REQUESTS = frozenset(
    (ber.ADD_REQUEST, ber.DEL_REQUEST, ber.MODIFY_REQUEST, ber.MODDN_REQUEST)
)

# Results a search ends with that depend only on the snapshot and the request bytes, so the
# whole response may be kept for the next identical request.  A time limit depends on the
# clock and is never kept.
_REPEATABLE = frozenset(
    (ResultCode.SUCCESS, ResultCode.SIZE_LIMIT_EXCEEDED, ResultCode.NO_SUCH_OBJECT,
     ResultCode.INVALID_DN_SYNTAX)
)


def repeatable(code: int) -> bool:
    """True when a search that ended with this resultCode gives the same answer on the
    same snapshot, whenever it is asked."""
    return code in _REPEATABLE


def check_controls(controls: Iterable[Control]) -> None:
    """Fail the operation on a critical control we do not implement (RFC 4511 4.1.11);
    non-critical ones are ignored."""
    for c in controls:
        if c.critical:
            raise UnsupportedCriticalControl(
                f"unsupported critical control {c.oid.decode('ascii', 'replace')}"
            )


def refuse_write() -> NoReturn:
    """Add, delete, modify and modify-DN: the directory is published, not edited."""
    raise ReadOnly()


def bind(req: BindRequest) -> bytes:
    """Anonymous and unauthenticated simple binds succeed; nothing else does."""
    if req.version != 3:
        raise ProtocolError("only LDAPv3 is supported")
    if req.sasl:
        raise AuthMethodNotSupported("SASL is not supported")
    if req.name:
        try:
            dnmod.parse(req.name)
        except MalformedInput as e:
            raise dnmod.InvalidDN("invalid DN") from e
    if req.password:
        # No entry holds a password, so any password is wrong.
        raise InvalidCredentials("only anonymous binds are accepted")
    return ber.ldap_result(ber.BIND_RESPONSE, ResultCode.SUCCESS)


def compare_entry(entry: Entry, req: CompareRequest) -> bytes:
    """compareTrue or compareFalse; noSuchAttribute when the entry has no value of that type."""
    d = schema.parse_description(req.attribute)
    values = entry.norm.get(d.key) if d.usable else None
    if values is None:
        raise NoSuchAttribute("")
    want = schema.normalise_value(d.key, req.value)
    code = ResultCode.COMPARE_TRUE if want in values else ResultCode.COMPARE_FALSE
    return ber.ldap_result(ber.COMPARE_RESPONSE, code)


def compare(directory: Directory, req: CompareRequest) -> bytes:
    """compare_entry on a snapshot that holds every entry; noSuchObject (with matchedDN) for
    an unknown entry."""
    ndn = dnmod.normalise(req.entry)
    entry = directory.root_dse if not ndn else directory.lookup(ndn)
    return compare_entry(entry, req)


class Compare:
    """A compare run like a search (`Search.run`), for directories whose entries may have
    to be read from the store first (a `Wait` among the candidates)."""

    __slots__ = ("_candidates", "_req", "examined", "code", "waiting")

    def __init__(self, directory: Directory, req: CompareRequest) -> None:
        self._candidates = directory.candidates(dnmod.normalise(req.entry), SCOPE_BASE, None)
        self._req = req
        self.examined = 0
        self.code: int | None = None
        self.waiting: object | None = None

    def run(self, max_examined: int, slice_end: float | None = None) -> Iterator[bytes]:
        self.waiting = None
        self.examined = 1
        try:
            for entry in self._candidates:
                if type(entry) is Wait:
                    self.waiting = entry.future
                    return
                op = compare_entry(entry, self._req)
                break
            else:  # pragma: no cover - a base lookup yields its entry or raises
                raise errors.NoSuchObject("")
        except RepoError as e:
            code, matched, message = errors.result_of(e)
            op = ber.ldap_result(ber.COMPARE_RESPONSE, code, matched.encode(), message.encode())
            self.code = code
            yield op
            return
        self.code = ResultCode.SUCCESS
        yield op


def extended(req: ExtendedRequest) -> bytes:
    """"Who am I?" answers the empty authzId of an anonymous session (RFC 4532); password
    modify is a write; any other requestName is a protocolError (RFC 4511 4.12)."""
    if req.name == WHO_AM_I:
        return ber.ldap_result(
            ber.EXTENDED_RESPONSE, ResultCode.SUCCESS, extra=ber.octets(b"", ber.RESPONSE_VALUE)
        )
    if req.name == PASSWORD_MODIFY:
        refuse_write()
    raise ProtocolError(f"unsupported extended operation {req.name.decode('ascii', 'replace')}")


class Search:
    """A search under way over one snapshot: entries are examined and encoded a slice at a
    time (`run`), and the SearchResultDone comes last.  `code` is set once it has been
    produced."""

    __slots__ = ("_candidates", "_predicate", "_selection", "_types_only", "_size_limit",
                 "_deadline", "_now", "_cost", "sent", "examined", "code", "waiting")

    def __init__(self, candidates: Iterator[Entry], predicate: Predicate, selection: Selection,
                 types_only: bool, size_limit: int, deadline: float | None,
                 now: Callable[[], float], cost: int = 1) -> None:
        self._candidates = candidates
        self._predicate = predicate
        self._selection = selection
        self._types_only = types_only
        self._size_limit = size_limit
        self._deadline = deadline
        self._now = now
        self._cost = max(1, cost)  # filter items evaluated per entry, at most
        self.sent = 0
        self.examined = 0  # entries examined by the latest run
        self.code: ResultCode | None = None
        # What the latest run stopped for, when the next candidate is still being read from
        # the store (see `directory.Wait`): the caller runs the search again once it is done.
        self.waiting: object | None = None

    def run(self, max_examined: int, slice_end: float | None = None) -> Iterator[bytes]:
        """Yield the protocolOps of the next matches among at most max_examined entries,
        then, once the search is over, its SearchResultDone.  The run also ends once the
        clock reaches `slice_end`, so that a slice is bounded in time as well as in entries.

        The caller may stop iterating at any point and call `run` again later: no entry is
        examined twice or skipped.  `examined` counts the entries of this run.
        """
        self.waiting = None
        try:
            deadline = self._deadline
            now = self._now
            if deadline is not None and now() >= deadline:
                self.examined = 0
                yield self._done(ResultCode.TIME_LIMIT_EXCEEDED)
                return
            predicate = self._predicate
            # How often to look at the clock: after about CLOCK_EVERY filter items evaluated,
            # so a costly filter is checked after each entry and a cheap one every few dozen.
            every = max(1, CLOCK_EVERY // self._cost)
            timed = deadline is not None or slice_end is not None
            examined = 0
            for entry in self._candidates:
                if type(entry) is Wait:
                    self.waiting = entry.future
                    self.examined = examined
                    return
                examined += 1
                if predicate(entry) is True:
                    if self._size_limit and self.sent >= self._size_limit:
                        self.examined = examined
                        yield self._done(ResultCode.SIZE_LIMIT_EXCEEDED)
                        return
                    self.sent += 1
                    self.examined = examined
                    yield entry.encode(self._selection, self._types_only)
                if examined >= max_examined:
                    self.examined = examined
                    return
                if timed and examined % every == 0:
                    t = now()
                    if deadline is not None and t >= deadline:
                        self.examined = examined
                        yield self._done(ResultCode.TIME_LIMIT_EXCEEDED)
                        return
                    if slice_end is not None and t >= slice_end:
                        self.examined = examined
                        return
            self.examined = examined
            yield self._done(ResultCode.SUCCESS)
        except RepoError as e:
            # Raised by candidates read from the store: an unknown subscriber base
            # (noSuchObject with its matchedDN), the store unavailable.
            code, matched, message = errors.result_of(e)
            yield self._done(code, matched.encode(), message.encode())  # type: ignore[arg-type]

    def _done(self, code: ResultCode, matched_dn: bytes = b"", message: bytes = b"") -> bytes:
        self.code = code
        return ber.ldap_result(ber.SEARCH_RESULT_DONE, code, matched_dn, message)


def plan_search(directory: Directory, req: SearchRequest, *, size_limit: int = 0,
                time_limit: float = 0, max_filter_items: int = DEFAULT_FILTER_ITEMS,
                max_filter_depth: int = DEFAULT_FILTER_DEPTH,
                now: Callable[[], float]) -> Search:
    """Check a search and position it on its first candidate.

    `size_limit` and `time_limit` are the server's (0: none); the smaller of the server's
    and the client's applies.  Raises NoSuchObject (with matchedDN) for an unknown base,
    InvalidDN for a base that does not parse, ProtocolError for an unknown scope,
    FilterTooLarge (adminLimitExceeded) and FilterTooDeep (unwillingToPerform) for a filter
    beyond the limits, and MalformedInput for a filter we cannot compile.
    """
    if req.scope not in (0, 1, 2):
        raise ProtocolError("bad scope")
    cost = check_limits(req.filter, max_filter_items, max_filter_depth)
    base = dnmod.normalise(req.base)
    predicate, hint = compile_filter(req.filter)
    selection = Selection.from_request(req.attributes)
    candidates = directory.candidates(base, req.scope, hint)
    # An unknown base raises NoSuchObject here, before anything is sent, not mid-search.
    first = next(candidates, None)
    if first is not None:
        candidates = chain((first,), candidates)
    size = min((x for x in (req.size_limit, size_limit) if x > 0), default=0)
    tl = min((x for x in (req.time_limit, time_limit) if x > 0), default=0)
    deadline = now() + tl if tl else None
    return Search(candidates, predicate, selection, req.types_only, size, deadline, now, cost)
