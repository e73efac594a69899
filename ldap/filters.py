"""Search filters (RFC 4511 4.5.1), compiled once per request into a Python predicate.

Input is the tuple form of `ldap.requests` (`ldap.decode.from_ldaptor` converts ldaptor's
filter objects); output is a function of an `Entry` plus, when the filter pins an attribute
to one value (an equality, alone or inside an AND), an index hint the directory uses to skip
a full scan.  Attribute
names go through `schema`, so `(certificateRevocationList=*)`, `(2.5.4.39;binary=*)` and
`(CertificateRevocationList;binary=*)` are the same filter.

Evaluation is three-valued as RFC 4511 4.5.1.7 says: an item on an attribute description we
cannot hold (an unknown option, `;binary` on a text type) or with a matching rule we do not
implement is Undefined (so are ordering and substrings on the DER-valued certificate and
CRL types, which have no such rules), which NOT keeps Undefined, so `(!(mail;lang-en=x))` selects nothing
rather than everything.  Predicates return True, False or None (Undefined); an entry is
returned only for True.

Substring assertions on the RFC 4523 types (certificates and CRLs) are Undefined too: those
types define equality only, and a substring scan of a CRL costs time in proportion to its
size (megabytes), which no filter limit could bound.
"""
from __future__ import annotations

from typing import Callable

from publisher.errors import MalformedInput

from . import schema
from .entry import Entry
from .errors import FilterTooDeep, FilterTooLarge

Predicate = Callable[[Entry], "bool | None"]
IndexHint = tuple[str, "bytes | str"]


def _never(entry: Entry) -> bool:
    return False


def _always(entry: Entry) -> bool:
    return True


def _undefined(entry: Entry) -> None:
    return None


def check_limits(f: tuple, max_items: int, max_depth: int) -> int:
    """The number of items in a filter (each AND, OR, NOT, assertion and substring
    component counts one); FilterTooLarge or FilterTooDeep as soon as a limit is passed."""
    items = 0
    stack = [(f, 0)]
    while stack:
        g, depth = stack.pop()
        if depth > max_depth:
            raise FilterTooDeep(f"filter nested deeper than {max_depth} levels")
        items += 1
        kind = g[0]
        if kind in ("and", "or"):
            stack.extend((x, depth + 1) for x in g[1])
        elif kind == "not":
            stack.append((g[1], depth + 1))
        elif kind == "sub":
            items += (g[2] is not None) + len(g[3]) + (g[4] is not None)
        if items > max_items:
            raise FilterTooLarge(f"filter has more than {max_items} items")
    return items


def compile_filter(f: tuple) -> tuple[Predicate, IndexHint | None]:
    """Compile a filter in the tuple form of `ldap.requests`."""
    if not isinstance(f, tuple):
        raise TypeError(f"a filter is a tuple, not {type(f).__name__}")
    return _compile(f)


def _compile(f: tuple) -> tuple[Predicate, IndexHint | None]:
    kind = f[0]
    if kind == "and":
        parts = [_compile(x) for x in f[1]]
        preds = [p for p, _ in parts]
        hint = next((h for _, h in parts if h is not None), None)
        if not preds:
            return _always, None  # RFC 4526 absolute true
        if len(preds) == 1:
            return preds[0], hint

        def and_(entry: Entry) -> bool | None:
            result: bool | None = True
            for p in preds:
                r = p(entry)
                if r is False:
                    return False
                if r is None:
                    result = None
            return result

        return and_, hint
    if kind == "or":
        preds = [_compile(x)[0] for x in f[1]]
        if not preds:
            return _never, None  # RFC 4526 absolute false

        def or_(entry: Entry) -> bool | None:
            result: bool | None = False
            for p in preds:
                r = p(entry)
                if r:
                    return True
                if r is None:
                    result = None
            return result

        return or_, None
    if kind == "not":
        inner, _ = _compile(f[1])

        def not_(entry: Entry) -> bool | None:
            r = inner(entry)
            return None if r is None else not r

        return not_, None
    if kind == "present":
        d = schema.parse_description(f[1])
        if not d.usable:
            return _undefined, None
        key = d.key
        if key == "objectclass":
            return _always, None
        return (lambda entry: key in entry.norm), None
    if kind in ("eq", "approx"):
        d = schema.parse_description(f[1])
        if not d.usable:
            return _undefined, None
        key = d.key
        want = schema.normalise_value(key, f[2])

        def eq(entry: Entry) -> bool:
            values = entry.norm.get(key)
            return values is not None and want in values

        return eq, (key, want)
    if kind in ("ge", "le"):
        d = schema.parse_description(f[1])
        if not d.usable or (d.type is not None and not d.type.matching.orders):
            return _undefined, None
        key = d.key
        want = schema.normalise_value(key, f[2])
        ge = kind == "ge"

        def order(entry: Entry) -> bool:
            for v in entry.norm.get(key, ()):
                if type(v) is type(want) and (v >= want if ge else v <= want):  # type: ignore[operator]
                    return True
            return False

        return order, None
    if kind == "sub":
        return _substrings(*f[1:]), None
    if kind == "ext":
        # Only the plain form "(type:=value)" (equality by the type's own rule) is honoured;
        # a named matching rule we do not implement evaluates to Undefined.
        _, rule, atype, value, _dn = f
        if atype is None or rule is not None:
            return _undefined, None
        d = schema.parse_description(atype)
        if not d.usable:
            return _undefined, None
        key = d.key
        want = schema.normalise_value(key, value)
        return (lambda entry: want in entry.norm.get(key, ())), None
    raise MalformedInput(f"unsupported filter {kind!r}")


def _substrings(attr: bytes, initial: bytes | None, anys: list[bytes],
                final: bytes | None) -> Predicate:
    if initial is None and final is None and not anys:
        raise MalformedInput("empty substring filter")
    d = schema.parse_description(attr)
    if not d.usable or (d.type is not None and not d.type.matching.has_substrings):
        return _undefined
    key = d.key
    ini = None if initial is None else schema.normalise_value(key, initial)
    fin = None if final is None else schema.normalise_value(key, final)
    mids = [schema.normalise_value(key, a) for a in anys]
    kind = type(ini if ini is not None else fin if fin is not None else mids[0])

    def match_one(v: bytes | str) -> bool:
        pos = 0
        end = len(v)
        if ini is not None:
            if not v.startswith(ini):  # type: ignore[arg-type]
                return False
            pos = len(ini)
        if fin is not None:
            if len(fin) > end - pos or not v.endswith(fin):  # type: ignore[arg-type]
                return False
            end -= len(fin)
        for a in mids:
            k = v.find(a, pos, end)  # type: ignore[arg-type]
            if k < 0:
                return False
            pos = k + len(a)
        return True

    def substr(entry: Entry) -> bool:
        for v in entry.norm.get(key, ()):
            if type(v) is kind and match_one(v):
                return True
        return False

    return substr
