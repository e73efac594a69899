"""Search filters (RFC 4511 4.5.1), compiled once per request into a Python predicate.

Input is ldaptor's decoded filter objects; output is a function of an `Entry` plus, when the
filter pins an attribute to one value (an equality, alone or inside an AND), an index hint the
directory uses to skip a full scan.  Attribute names go through `schema`, so
`(certificateRevocationList=*)`, `(2.5.4.39;binary=*)` and `(CertificateRevocationList;binary=*)`
are the same filter.  Evaluation is three-valued as RFC 4511 4.5.1.7 says: an item on an
attribute description we cannot hold (an unknown option, `;binary` on a text type) or with a
matching rule we do not implement is Undefined, which NOT keeps Undefined, so
`(!(mail;lang-en=x))` selects nothing rather than everything.  Predicates return True, False
or None (Undefined); an entry is returned only for True.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ldaptor.protocols import pureldap as pl

from publisher.errors import MalformedInput

from . import schema

if TYPE_CHECKING:
    from .directory import Entry

Predicate = Callable[["Entry"], "bool | None"]
IndexHint = tuple[str, "bytes | str"]


def _never(entry: "Entry") -> bool:
    return False


def _undefined(entry: "Entry") -> None:
    return None


def _always(entry: "Entry") -> bool:
    return True


def _bytes(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    raise MalformedInput(f"bad filter value {v!r}")


def _value_of(ber: object) -> bytes:
    return _bytes(getattr(ber, "value", ber))


def compile_filter(f: object) -> tuple[Predicate, IndexHint | None]:
    """Compile a decoded filter; raises MalformedInput for shapes RFC 4511 does not allow."""
    if isinstance(f, pl.LDAPFilter_and):
        parts = [compile_filter(x) for x in f]
        preds = [p for p, _ in parts]
        hint = next((h for _, h in parts if h is not None), None)
        if not preds:
            return _always, None  # RFC 4526 absolute true

        def and_(entry: "Entry") -> bool | None:
            result: bool | None = True
            for p in preds:
                r = p(entry)
                if r is False:
                    return False
                if r is None:
                    result = None
            return result

        return (preds[0] if len(preds) == 1 else and_), hint
    if isinstance(f, pl.LDAPFilter_or):
        preds = [compile_filter(x)[0] for x in f]
        if not preds:
            return _never, None  # RFC 4526 absolute false

        def or_(entry: "Entry") -> bool | None:
            result: bool | None = False
            for p in preds:
                r = p(entry)
                if r:
                    return True
                if r is None:
                    result = None
            return result

        return or_, None
    if isinstance(f, pl.LDAPFilter_not):
        inner, _ = compile_filter(f.value)

        def not_(entry: "Entry") -> bool | None:
            r = inner(entry)
            return None if r is None else not r

        return not_, None
    if isinstance(f, pl.LDAPFilter_present):
        d = schema.parse_description(_value_of(f))
        if not d.usable:
            return _undefined, None
        key = d.key
        if key == "objectclass":
            return _always, None
        return (lambda entry: key in entry.norm), None
    if isinstance(f, (pl.LDAPFilter_equalityMatch, pl.LDAPFilter_approxMatch)):
        d = schema.parse_description(_value_of(f.attributeDesc))
        if not d.usable:
            return _undefined, None
        key = d.key
        want = schema.normalise_value(key, _value_of(f.assertionValue))

        def eq(entry: "Entry") -> bool:
            values = entry.norm.get(key)
            return values is not None and want in values

        return eq, (key, want)
    if isinstance(f, (pl.LDAPFilter_greaterOrEqual, pl.LDAPFilter_lessOrEqual)):
        d = schema.parse_description(_value_of(f.attributeDesc))
        if not d.usable:
            return _undefined, None
        key = d.key
        want = schema.normalise_value(key, _value_of(f.assertionValue))
        ge = isinstance(f, pl.LDAPFilter_greaterOrEqual)

        def order(entry: "Entry") -> bool:
            for v in entry.norm.get(key, ()):
                if type(v) is type(want) and (v >= want if ge else v <= want):  # type: ignore[operator]
                    return True
            return False

        return order, None
    if isinstance(f, pl.LDAPFilter_substrings):
        return _substrings(f), None
    if isinstance(f, pl.LDAPFilter_extensibleMatch):
        # Only the plain form "(type:=value)" (equality by the type's own rule) is honoured;
        # a named matching rule we do not implement evaluates to Undefined, i.e. FALSE.
        if f.type is None or f.matchingRule is not None:
            return _undefined, None
        d = schema.parse_description(_value_of(f.type))
        if not d.usable:
            return _undefined, None
        key = d.key
        want = schema.normalise_value(key, _value_of(f.matchValue))
        return (lambda entry: want in entry.norm.get(key, ())), None
    raise MalformedInput(f"unsupported filter {type(f).__name__}")


def _substrings(f: pl.LDAPFilter_substrings) -> Predicate:
    d = schema.parse_description(_bytes(f.type))
    if not d.usable:
        return _undefined
    key = d.key
    initial = final = None
    anys = []
    for s in f.substrings:
        value = schema.normalise_value(key, _value_of(s))
        if isinstance(s, pl.LDAPFilter_substrings_initial):
            if initial is not None or anys or final is not None:
                raise MalformedInput("substring 'initial' out of place")
            initial = value
        elif isinstance(s, pl.LDAPFilter_substrings_any):
            if final is not None:
                raise MalformedInput("substring 'any' after 'final'")
            anys.append(value)
        elif isinstance(s, pl.LDAPFilter_substrings_final):
            if final is not None:
                raise MalformedInput("two substring 'final' parts")
            final = value
        else:
            raise MalformedInput("bad substring filter")

    def match_one(v: bytes | str) -> bool:
        pos = 0
        end = len(v)
        if initial is not None:
            if not v.startswith(initial):  # type: ignore[arg-type]
                return False
            pos = len(initial)
        if final is not None:
            if len(final) > end - pos or not v.endswith(final):  # type: ignore[arg-type]
                return False
            end -= len(final)
        for a in anys:
            k = v.find(a, pos, end)  # type: ignore[arg-type]
            if k < 0:
                return False
            pos = k + len(a)
        return True

    def substr(entry: "Entry") -> bool:
        for v in entry.norm.get(key, ()):
            if type(v) is type(initial or final or anys[0]) and match_one(v):
                return True
        return False

    return substr
