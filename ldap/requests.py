"""The requests the server answers, as plain values, and a lean decoder for SearchRequest,
the one request on the hot path.

ldaptor's object decoder costs about half of a never-seen search (it builds a class instance
per BER element and re-slices the buffer at each level); this one walks the bytes once with
`ber.header` and returns plain tuples.  Any structural error raises FrameError, which the
server answers with a Notice of Disconnection (protocolError), as for other malformed PDUs.
The other requests are decoded with ldaptor (`ldap.decode`) into the classes here.

Filter tuples (RFC 4511 4.5.1.7):
    ("and", [f, ...]) ("or", [f, ...]) ("not", f) ("present", attr)
    ("eq" | "ge" | "le" | "approx", attr, value)
    ("sub", attr, initial | None, [any, ...], final | None)
    ("ext", matchingRule | None, type | None, value, dnAttributes)
"""
from __future__ import annotations

from dataclasses import dataclass

from .ber import FrameError, header
from .errors import FilterTooDeep, FilterTooLarge

Filter = tuple


@dataclass(frozen=True, slots=True)
class SearchRequest:
    base: bytes
    scope: int
    deref: int
    size_limit: int
    time_limit: int
    types_only: bool
    filter: Filter
    attributes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class BindRequest:
    version: int
    name: bytes
    password: bytes  # simple authentication; empty for anonymous and unauthenticated binds
    sasl: bool


@dataclass(frozen=True, slots=True)
class CompareRequest:
    entry: bytes
    attribute: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class ExtendedRequest:
    name: bytes  # the requestName OID


@dataclass(frozen=True, slots=True)
class Control:
    oid: bytes
    critical: bool


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    h = header(buf, pos)
    if h is None or h[1] + h[2] > end:
        raise FrameError("truncated element")
    return h


def _int(buf: bytes, start: int, n: int) -> int:
    if n == 0 or n > 5:
        raise FrameError("bad integer")
    return int.from_bytes(buf[start:start + n], "big", signed=True)


_SIMPLE = {0xA3: "eq", 0xA5: "ge", 0xA6: "le", 0xA8: "approx"}
# Nesting deeper than this is not a real filter: the session ends.  The configurable limit
# (`max_filter_depth`, at most this) refuses one search instead.
MAX_FILTER_DEPTH = 64


class FilterLimits:
    """What one filter may hold: items (AND, OR, NOT, assertions, substring components) and
    depth of nesting.  Decoding stops as soon as either is passed, so an oversized filter
    costs the server no more than an allowed one."""

    __slots__ = ("max_items", "max_depth", "items")

    def __init__(self, max_items: int, max_depth: int) -> None:
        self.max_items = max_items
        self.max_depth = min(max_depth, MAX_FILTER_DEPTH)
        self.items = 0

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > self.max_items:
            raise FilterTooLarge(f"filter has more than {self.max_items} items")

    def enter(self, depth: int) -> None:
        if depth > self.max_depth:
            raise FilterTooDeep(f"filter nested deeper than {self.max_depth} levels")


def _filter(buf: bytes, pos: int, end: int, limits: FilterLimits,
            depth: int = 0) -> tuple[Filter, int]:
    if depth > MAX_FILTER_DEPTH:
        raise FrameError("filter nested too deep")
    limits.enter(depth)
    limits.count()
    tag, start, n = _tlv(buf, pos, end)
    stop = start + n
    if tag in (0xA0, 0xA1):
        items = []
        p = start
        while p < stop:
            f, p = _filter(buf, p, stop, limits, depth + 1)
            items.append(f)
        return ("and" if tag == 0xA0 else "or", items), stop
    if tag == 0xA2:
        f, p = _filter(buf, start, stop, limits, depth + 1)
        if p != stop:
            raise FrameError("trailing bytes in not")
        return ("not", f), stop
    if tag == 0x87:
        return ("present", buf[start:stop]), stop
    if tag in _SIMPLE:
        t1, s1, n1 = _tlv(buf, start, stop)
        t2, s2, n2 = _tlv(buf, s1 + n1, stop)
        if t1 != 0x04 or t2 != 0x04 or s2 + n2 != stop:
            raise FrameError("bad attribute value assertion")
        return (_SIMPLE[tag], buf[s1:s1 + n1], buf[s2:s2 + n2]), stop
    if tag == 0xA4:
        t1, s1, n1 = _tlv(buf, start, stop)
        t2, s2, n2 = _tlv(buf, s1 + n1, stop)
        if t1 != 0x04 or t2 != 0x30 or s2 + n2 != stop or n2 == 0:
            raise FrameError("bad substring filter")
        initial = final = None
        anys: list[bytes] = []
        p = s2
        while p < s2 + n2:
            t, s, k = _tlv(buf, p, s2 + n2)
            limits.count()
            v = buf[s:s + k]
            if t == 0x80 and initial is None and not anys and final is None:
                initial = v
            elif t == 0x81 and final is None:
                anys.append(v)
            elif t == 0x82 and final is None:
                final = v
            else:
                raise FrameError("bad substring filter")
            p = s + k
        return ("sub", buf[s1:s1 + n1], initial, anys, final), stop
    if tag == 0xA9:
        rule = atype = value = None
        dn_attrs = False
        p = start
        while p < stop:
            t, s, k = _tlv(buf, p, stop)
            if t == 0x81 and rule is None and atype is None and value is None:
                rule = buf[s:s + k]
            elif t == 0x82 and atype is None and value is None:
                atype = buf[s:s + k]
            elif t == 0x83 and value is None:
                value = buf[s:s + k]
            elif t == 0x84 and value is not None and k == 1:
                dn_attrs = buf[s] != 0
            else:
                raise FrameError("bad extensible match")
            p = s + k
        if value is None:
            raise FrameError("extensible match without a value")
        return ("ext", rule, atype, value, dn_attrs), stop
    raise FrameError(f"unknown filter tag 0x{tag:02x}")


def decode_search(op: bytes, limits: FilterLimits | None = None) -> SearchRequest:
    """Decode a SearchRequest protocolOp (tag 0x63 included).

    With `limits`, a filter beyond them raises FilterTooLarge or FilterTooDeep (errors of
    this one search, not of the session) as soon as the excess is seen."""
    if limits is None:
        limits = FilterLimits(max_items=len(op), max_depth=MAX_FILTER_DEPTH)
    tag, start, n = _tlv(op, 0, len(op))
    end = start + n
    if tag != 0x63 or end != len(op):
        raise FrameError("not a search request")
    fields = []
    p = start
    for want in (0x04, 0x0A, 0x0A, 0x02, 0x02, 0x01):
        t, s, k = _tlv(op, p, end)
        if t != want:
            raise FrameError("malformed search request")
        fields.append(op[s:s + k] if want == 0x04 else _int(op, s, k))
        p = s + k
    flt, p = _filter(op, p, end, limits)
    t, s, k = _tlv(op, p, end)
    if t != 0x30 or s + k != end:
        raise FrameError("malformed attribute list")
    attrs = []
    q = s
    while q < end:
        t, s2, k2 = _tlv(op, q, end)
        if t != 0x04:
            raise FrameError("malformed attribute list")
        attrs.append(op[s2:s2 + k2])
        q = s2 + k2
    base, scope, deref, size, time, types_only = fields
    if size < 0 or time < 0:
        raise FrameError("negative limit")
    return SearchRequest(base, scope, deref, size, time, bool(types_only), flt, tuple(attrs))
